"""What the server refuses before the app sees a request: oversized bodies, closed routes.

An ASGI middleware around the whole server (REST routes and the mounted Gradio app):

- a body over its route's cap gets 413 before more than the cap is read: a declared
  Content-Length is checked first, and a chunked body is read into memory only up to the cap;
- routes a public demo must not serve get 404: Gradio's live-reload stream (`/dev/reload`,
  a development tool) and the monitoring dashboard;
- a method a REST path does not serve gets 405 and an `Allow` header (RFC 9110, 15.5.6),
  where the page mounted at `/` would answer 404;
- every response carries headers that stop content sniffing and framing by other sites
  (Hugging Face Spaces shows the app in a frame, so huggingface.co may frame it).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any

from serving.checks import MAX_REVIEW_CHARS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Bytes per request body. A 100,000-character review (checks.MAX_REVIEW_CHARS) is 100 KB as
# ASCII and up to 600 KB JSON-escaped; 1 MiB leaves room for the request's other fields.
MAX_BODY = 1024 * 1024
# Bytes per uploaded file, and the form around it.
MAX_UPLOAD = 2 * 1024 * 1024
UPLOAD_PATHS = ("/gradio_api/upload",)
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
    """ASGI middleware: `app = Guard(app)`, or `fastapi_app.add_middleware(Guard)`."""

    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY,
        max_upload: int = MAX_UPLOAD,
        methods: Mapping[str, Collection[str]] | None = None,
    ):
        """`methods`: the methods each path of the REST API serves (others get 405)."""
        self.app, self.max_body, self.max_upload = app, max_body, max_upload
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
        cap = self.max_upload if path.startswith(UPLOAD_PATHS) else self.max_body
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > cap):
            await _reply(send, 413, _too_large(cap))
            return
        if declared is None and scope["method"] in ("POST", "PUT", "PATCH"):
            body = await _read_capped(receive, cap)
            if body is None:
                await _reply(send, 413, _too_large(cap))
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, _with_headers(send))


def _too_large(cap: int) -> str:
    return (
        f"The request is larger than {cap // 1024:,} KiB: send one review of at most "
        f"{MAX_REVIEW_CHARS:,} characters, or fewer reviews per request."
    )


async def _read_capped(receive: Receive, cap: int) -> bytes | None:
    """A chunked body read whole, or None as soon as it passes `cap` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits on the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _with_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
        await send(message)

    return send_with_headers


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
