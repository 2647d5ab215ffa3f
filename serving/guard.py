"""What the server does to every request that no library does for it: closed routes, 405 with
`Allow`, the one error shape for a body too large, and security headers.

An ASGI middleware around the whole server (REST routes and the mounted Gradio app). The body
limits themselves are Starlette's (`FastAPI(max_body_size=...)`, per route in `server.py`):

- routes a public demo must not serve get 404: Gradio's live-reload stream (`/dev/reload`,
  a development tool) and the monitoring dashboard;
- a method a REST path does not serve gets 405 and an `Allow` header (RFC 9110, 15.5.6),
  where the page mounted at `/` would answer 404;
- a 413 says what to send instead, as `{"detail": ...}` like every other refusal, and is sent
  only once the client has finished sending: a client that writes its whole body before it
  reads (Python's urllib) otherwise meets a closed socket, "Broken pipe", not the answer;
- every response carries headers that stop content sniffing and framing by other sites
  (Hugging Face Spaces shows the app in a frame, so huggingface.co may frame it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bytes of a refused body read and dropped before its 413 is sent. Reading 16 MiB on loopback
# takes milliseconds; past it (a declared length above, or a stream that goes on), the answer
# goes out at once and the connection closes, as it must for a client that never stops.
MAX_DRAIN = 16 * 1024 * 1024
CLOSED_PREFIXES = ("/gradio_api/dev/", "/monitoring", "/gradio_api/monitoring")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (
        b"content-security-policy",
        b"frame-ancestors 'self' https://huggingface.co https://*.hf.space",
    ),
]


class Guard:
    """ASGI middleware around the whole app, outside Starlette's body limits (so it reads
    what they refused): `app = Guard(app)`."""

    def __init__(
        self,
        app: ASGIApp,
        methods: Mapping[str, Collection[str]] | None = None,
        too_large: str = "The request body is too large.",
    ):
        """`methods`: the methods each path of the REST API serves (others get 405);
        `too_large`: what a 413 says, naming the limits the server set."""
        self.app, self.too_large = app, too_large
        self.methods = dict(methods or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(CLOSED_PREFIXES):
            await _reply(send, 404, "Not found.")
            return
        allowed = self.methods.get(path)
        if allowed is not None and scope["method"] not in allowed:
            allow = ", ".join(sorted(allowed))
            await _reply(send, 405, f"{path} takes {allow} only.", [(b"allow", allow.encode())])
            return
        body = _Body(receive, scope)
        await self.app(scope, body.receive, _Answer(send, body, self.too_large).send)


class _Body:
    """The request's `receive`, noting whether the client has sent its whole body."""

    def __init__(self, receive: Receive, scope: Scope) -> None:
        self._receive, self.done = receive, False
        declared = dict(scope["headers"]).get(b"content-length", b"")
        self.declared = int(declared) if declared.isdigit() else None

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drain(self) -> None:
        """Read and drop the rest of the body, up to `MAX_DRAIN` bytes."""
        if self.declared is not None and self.declared > MAX_DRAIN:
            return
        dropped = 0
        while not self.done and dropped <= MAX_DRAIN:
            dropped += len((await self.receive()).get("body", b""))


class _Answer:
    """The app's `send`, with security headers on every response; a 413 is replaced by the one
    error shape, sent after the body is drained."""

    def __init__(self, send: Send, body: _Body, too_large: str) -> None:
        self._send, self.body, self.too_large, self.replaced = send, body, too_large, False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 413:
            self.replaced = True
            await self.body.drain()
            await _reply(self._send, 413, self.too_large)
            return
        if self.replaced:  # the body of the 413 replaced above
            return
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await self._send(message)


async def _reply(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        *SECURITY_HEADERS,
        *(headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
