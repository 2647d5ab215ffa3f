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
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import infer
from guard import MAX_UPLOAD, Guard

MAX_QUEUE = 64  # waiting requests, page and REST alike; past this, a fast "busy" answer
MAX_TEXTS = 64  # reviews per REST request; more go in several requests
# One forward pass at a time, page and REST alike: on 2 cores, two at once each run at half
# speed and both visitors wait longer.
MODEL_LOCK = threading.Lock()
log = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    """`POST /api/v1/predict`: one review, or a list of them."""

    texts: str | list[str] = Field(
        examples=[["A moving, beautifully acted film.", "Dull."]],
        description=f"a review, or up to {MAX_TEXTS} reviews",
    )


class PredictResponse(BaseModel):
    """One entry per review, in order: the label, both probabilities, the unsure flag, any
    warning about the text, and how much of it was read."""

    predictions: list[dict[str, Any]]


def build_server(demo: gr.Blocks, model_dir: Path, css: str = "") -> FastAPI:
    """The whole server: REST routes, the page mounted at `/`, all behind `guard.Guard`."""
    api = FastAPI(
        title="Movie review sentiment API",
        description="Classify movie reviews as positive or negative.",
    )
    api.add_middleware(Guard)
    waiting = 0

    @api.post("/api/v1/predict", response_model=PredictResponse)
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

    @api.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 once the model answers a real review; 503 with the reason when it cannot."""
        try:
            classifier = await run_in_threadpool(_classifier_or_503, model_dir)
            await run_in_threadpool(_locked_classify, classifier, ["A fine film."])
        except HTTPException as error:
            return JSONResponse({"status": "unavailable", "detail": error.detail}, 503)
        return JSONResponse({"status": "ok", "labels": list(classifier.labels)})

    return gr.mount_gradio_app(
        api,
        demo,
        path="/",
        theme=gr.themes.Soft(),
        css=css,
        show_error=False,  # an unexpected error's text stays in the log, not on the page
        enable_monitoring=False,
        max_file_size=MAX_UPLOAD,
    )


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
        _locked_classify(infer.get_classifier(model_dir), ["A warm-up review."])
        log.info("Model %s/ ready in %.1f s", model_dir, time.perf_counter() - start)
    except infer.ModelNotFoundError as error:
        log.warning("Serving without a model: %s", error)
    server = build_server(demo, model_dir, css)
    print(f"Serving on http://{host}:{port} (REST API docs: http://{host}:{port}/docs)")
    uvicorn.run(server, host=host, port=port, log_level="warning", access_log=False)
