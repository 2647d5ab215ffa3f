"""The server `python app.py` runs: the page, a REST API beside it, `guard.Guard` around both.

    POST /api/v1/predict  {"texts": [...]}   labels and probabilities per review
    GET  /healthz                            200 after a real forward pass; 503 and why if not
    GET  /docs                               the OpenAPI docs

Both APIs share one model (`MODEL_LOCK`: one forward pass at a time) and the same limit on
waiting requests, `MAX_QUEUE` each (the page's through Gradio's queue, REST's here); past it,
a fast 503 with a message.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, WithJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import classifier as infer
from serving import gpu
from serving.checks import MAX_REVIEW_CHARS
from serving.guard import Guard

# Bytes per request body, enforced by Starlette (guard.py answers its 413). A 100,000-character
# review (checks.MAX_REVIEW_CHARS) is 100 KB as ASCII and up to 600 KB JSON-escaped; 1 MiB
# leaves room for the request's other fields. The page's uploads take a 2 MiB file and its form.
MAX_BODY = 1024 * 1024
MAX_UPLOAD = 2 * 1024 * 1024
MAX_QUEUE = 64  # waiting requests, page and REST alike; past this, a fast "busy" answer
MAX_TEXTS = 64  # reviews per REST request; more go in several requests
# One forward pass at a time, page and REST alike: on 2 cores, two at once each run at half
# speed and both visitors wait longer.
MODEL_LOCK = threading.Lock()
log = logging.getLogger(__name__)


# The rules `checks.check_texts` applies, stated in the OpenAPI document so that a request
# the document allows is answered. `\p{L}`: a letter of any script, as `utils.has_words`
# finds one (JSON Schema patterns are ECMA-262 with Unicode classes, and search unanchored).
REVIEW_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REVIEW_CHARS,
    "pattern": r"\p{L}",
    "description": f"a movie review: at least one letter, at most {MAX_REVIEW_CHARS:,} characters",
}


class PredictRequest(BaseModel):
    """`POST /api/v1/predict`: one review, or a list of them. The whole body is at most
    1 MiB (413 past it)."""

    # The document states the rules; `checks.check_texts` enforces them with messages that
    # name the fix, where pydantic's would quote a regular expression.
    texts: Annotated[
        str | list[str],
        WithJsonSchema(
            {
                "anyOf": [
                    REVIEW_SCHEMA,
                    {"type": "array", "items": REVIEW_SCHEMA, "minItems": 1, "maxItems": MAX_TEXTS},
                ],
                "description": f"a review, or 1 to {MAX_TEXTS} reviews",
                "examples": [["A moving, beautifully acted film.", "Dull."]],
            }
        ),
    ]


class PredictResponse(BaseModel):
    """One entry per review, in order: the label, both probabilities, the unsure flag, any
    warning about the text, and how much of it was read."""

    predictions: list[dict[str, Any]]


class ErrorResponse(BaseModel):
    """Every refusal of the REST API: what was wrong and how to fix it."""

    detail: str = Field(examples=["Review 0 is empty: give the text of a movie review."])


class Health(BaseModel):
    """`GET /healthz`: `ok` with the labels, or `unavailable` with the reason (503)."""

    status: Literal["ok", "unavailable"]
    labels: list[str] | None = None
    detail: str | None = None


REFUSALS = {
    400: {"model": ErrorResponse, "description": "The body is not JSON."},
    413: {"model": ErrorResponse, "description": f"The body is over {MAX_BODY // 2**20} MiB."},
    422: {"model": ErrorResponse, "description": "A review that cannot be read, and why."},
    503: {"model": ErrorResponse, "description": "The server is busy, or has no model."},
}


def build_server(demo: gr.Blocks, model_dir: Path, css: str = "") -> Guard:
    """The whole server: REST routes, the page mounted at `/`, all behind `guard.Guard`."""
    api = FastAPI(
        title="Movie review sentiment API",
        description="Classify movie reviews as positive or negative.",
        max_body_size=MAX_UPLOAD,  # the largest any route takes: the page's uploads
    )
    api.add_exception_handler(RequestValidationError, _invalid_request)
    api.add_exception_handler(StarletteHTTPException, _refused)  # FastAPI's 400 is Starlette's
    waiting = 0

    @api.post(
        "/api/v1/predict",
        response_model=PredictResponse,
        responses=REFUSALS,
        max_body_size=MAX_BODY,
    )
    async def predict(request: PredictRequest) -> PredictResponse:
        """Label probabilities for each review, with the same model and calibration as the
        page. 422: a review that cannot be read; 413: too big; 503: busy or no model."""
        nonlocal waiting
        texts = [request.texts] if isinstance(request.texts, str) else request.texts
        if not 1 <= len(texts) <= MAX_TEXTS:
            raise HTTPException(422, f"Send 1 to {MAX_TEXTS} reviews; got {len(texts)}.")
        if waiting >= MAX_QUEUE:
            raise HTTPException(503, "The server is busy: try again in a few seconds.")
        waiting += 1
        try:
            classifier = await run_in_threadpool(_classifier_or_503, model_dir)
            predictions = await run_in_threadpool(_locked_classify, classifier, texts)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        finally:
            waiting -= 1
        return PredictResponse(predictions=[p.as_dict() for p in predictions])

    @api.get(
        "/healthz",
        response_model=Health,
        response_model_exclude_none=True,
        responses={503: {"model": Health}},
    )
    async def healthz() -> Any:
        """200 once the model answers a real review; 503 with the reason when it cannot."""
        try:
            classifier = await run_in_threadpool(_classifier_or_503, model_dir)
            await run_in_threadpool(_locked_classify, classifier, ["A fine film."])
        except HTTPException as error:
            return JSONResponse({"status": "unavailable", "detail": error.detail}, 503)
        return Health(status="ok", labels=list(classifier.labels))

    gr.mount_gradio_app(
        api,
        demo,
        path="/",
        theme=gr.themes.Soft(),
        css=css,
        show_error=False,  # an unexpected error's text stays in the log, not on the page
        enable_monitoring=False,
        max_file_size=MAX_UPLOAD,
    )
    # Around everything, Starlette's body limits included: it answers their 413 once the
    # client has sent its body, reading what the limits refused to read.
    methods = {route.path: route.methods for route in api.routes if isinstance(route, APIRoute)}
    too_large = (
        f"The request body is too large: send one review of at most {MAX_REVIEW_CHARS:,} "
        f"characters, or fewer reviews per request (the REST API reads {MAX_BODY // 2**20} MiB "
        f"a request, file uploads {MAX_UPLOAD // 2**20} MiB)."
    )
    return Guard(api, methods=methods, too_large=too_large)


async def _invalid_request(request: Request, error: Exception) -> JSONResponse:
    """FastAPI's own validation errors in the one error shape: a sentence naming the fix."""
    problems = "; ".join(
        f"{'.'.join(map(str, problem['loc'][1:])) or 'the body'}: {problem['msg']}"
        for problem in error.errors()  # type: ignore[attr-defined]
    )
    return JSONResponse(
        {"detail": f'Send JSON such as {{"texts": ["A fine film."]}} ({problems}).'}, 422
    )


async def _refused(request: Request, error: Exception) -> JSONResponse:
    """An HTTPException in the one error shape; FastAPI's own 400 for a body that is not JSON
    says how to send one."""
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail
    if error.status_code == 400:
        detail = (
            'The body is not JSON: send {"texts": ["A fine film."]} with the header '
            "content-type: application/json."
        )
    return JSONResponse({"detail": detail}, error.status_code, headers=error.headers)


def _classifier_or_503(model_dir: Path) -> infer.Classifier:
    try:
        return infer.get_classifier(model_dir)
    except infer.ModelNotFoundError as error:
        raise HTTPException(503, str(error)) from None


def _locked_classify(classifier: infer.Classifier, texts: list[str]) -> list[infer.Prediction]:
    with MODEL_LOCK:
        return classifier.classify(texts)


def serve(demo: gr.Blocks, css: str, model_dir: Path, host: str, port: int) -> None:
    """Load and warm the model (the first visitor is not the slow one), then serve."""
    start = time.perf_counter()
    try:
        classifier = infer.get_classifier(model_dir)
        if not gpu.zero_gpu():  # there the GPU comes only inside a handler's call
            _locked_classify(classifier, ["A warm-up review."])
        log.info("Model %s/ ready in %.1f s", model_dir, time.perf_counter() - start)
    except infer.ModelNotFoundError as error:
        log.warning("Serving without a model: %s", error)
    server = build_server(demo, model_dir, css)
    print(f"Serving on http://{host}:{port} (REST API docs: http://{host}:{port}/docs)")
    uvicorn.run(server, host=host, port=port, log_level="warning", access_log=False)
