"""The fast CPU path: running a model folder's ONNX graphs (`training/export.py` writes them).

`infer` serves `model_quantized.onnx` (INT8) when it is there and fresh, else plain PyTorch,
with a log line saying why. On a CPU with bfloat16 matrix units (Intel AMX), OpenVINO runs the
fused fp32 graph in bfloat16 instead: faster than INT8 there, and closer to fp32 (see
`RUNTIMES`). A manifest beside the graphs holds the SHA-256 of the weights and the config they
came from: a retrained or edited folder makes them stale, never silently wrong.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from serving.calibration import Calibration

ONNX_FILE = "model_quantized.onnx"
# The same fused graph in fp32, for windows of at most SHORT_TOKENS tokens: INT8 cost short
# reviews 1.26 points of SST-2 accuracy (79.59% to 78.33%) and they are cheap in fp32 anyway.
SHORT_FILE = "model_fp32.onnx"
SHORT_TOKENS = Calibration.short_tokens  # 64 with [CLS] and [SEP]: what visitors type
MANIFEST_FILE = "model_quantized.json"
# What the ONNX file is made from; a change to either makes it stale.
SOURCE_FILES = ("model.safetensors", "config.json")
# What runs the ONNX graphs. On 2 cores with AMX (benchmarks/NOTES.md, "Serving speed"),
# OpenVINO reads the fp32 graph in bfloat16 on the matrix units: a 400-word review's three
# windows in 23 ms against ONNX Runtime INT8's 37, a 20-word one in 1.6 ms against 3.6, every
# label of 1,000 IMDB test reviews as fp32's (probabilities within 0.006). Without AMX, bfloat16
# is emulated or dropped to fp32 (72 ms), and ONNX Runtime's INT8 serves.
RUNTIMES = ("openvino-bf16", "onnxruntime")
# ONNX Runtime's SkipLayerNormalization (residual Add and LayerNorm in one op) took 250 to 280
# us on a [256, 384] window where Add then LayerNormalization took 57 to 80, on 2 cores: 12 of
# them were 3 ms of a 16 ms INT8 window. Neither the fusion tool nor the session fuses them.
UNFUSED = ["SkipLayerNormFusion"]

log = logging.getLogger(__name__)


def source_digest(model_dir: Path) -> dict[str, str]:
    """SHA-256 of each file the ONNX model is made from (about 0.2 s for 90 MB)."""
    digests = {}
    for name in SOURCE_FILES:
        sha = hashlib.sha256()
        with open(model_dir / name, "rb") as handle:
            while block := handle.read(1 << 20):
                sha.update(block)
        digests[name] = sha.hexdigest()
    return digests


def threads() -> int:
    """CPU cores this process may use (a container's share, not the host's count), or fewer
    when OMP_NUM_THREADS says so: Ray sets it to each actor's CPUs, so actors sharing a
    machine do not each take all of it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    given = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(given)) if given.isdigit() and int(given) > 0 else cores


class OnnxLoadError(RuntimeError):
    """The ONNX file is truncated, foreign or otherwise unreadable by its runtime."""


def matrix_units(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX): its flag in
    `cpuinfo`, by default Linux's /proc/cpuinfo (False where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    return "amx_bf16" in cpuinfo.split()


class OnnxModel:
    """The ONNX model of a folder, `logits(ids, mask)` as numpy, run by `runtime` (default: as
    `RUNTIMES` says for this CPU). With ONNX Runtime: `model_quantized.onnx`, and
    `model_fp32.onnx` for short windows when it lies beside it; with OpenVINO, `model_fp32.onnx`
    in bfloat16 for every window."""

    def __init__(self, path: Path, runtime: str | None = None) -> None:
        fp32 = path.with_name(SHORT_FILE)
        if runtime is None:
            bf16 = matrix_units() and fp32.is_file() and find_spec("openvino") is not None
            runtime = RUNTIMES[0] if bf16 else RUNTIMES[1]
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime takes {', '.join(RUNTIMES)}, got {runtime!r}.")
        self.runtime = runtime
        if runtime == "openvino-bf16":
            self.session, self.short = _OpenVinoSession(fp32), None
            return
        self.session = ort_session(path)
        self.short = ort_session(fp32) if fp32.is_file() and path.name == ONNX_FILE else None

    def alone(self, tokens: int) -> bool:
        """Whether a window of `tokens` must be read in a call of its own: INT8 quantizes a
        call's activations with one scale for the whole batch, so a review's answer would
        depend on its batch mates (by up to 0.11 in probability, benchmarks/NOTES.md); alone,
        it is the same in a file, at the same speed on 2 cores (79 reviews/s, against 82 in
        batches of 8). fp32 and bfloat16 have no such scale and read in batches: bfloat16 read
        159 reviews/s in 16s against 129 one by one (each probability within 0.005 of the
        review's alone); the teacher's fp32 graph read 512 SST-2 sentences in 16s at 35.5 ms a
        text against 50.7 alone (2-core AVX2 EPYC)."""
        return self.runtime == "onnxruntime" and not self._short_serves(tokens)

    def _short_serves(self, tokens: int) -> bool:
        return self.short is not None and tokens <= SHORT_TOKENS

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        short = self._short_serves(input_ids.shape[1])
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return (self.short if short else self.session).run(None, feed)[0]


def ort_session(path: Path) -> Any:
    """An ONNX Runtime CPU session on every core this process may use, or OnnxLoadError."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its warnings are about graph internals
    # ONNX Runtime's own exception types, none of them a RuntimeError.
    unreadable = (state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf)
    unreadable += (state.NoSuchFile, state.NotImplemented, state.RuntimeException)
    try:
        return ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED
        )
    except unreadable as error:
        raise OnnxLoadError(str(error)) from error


class _OpenVinoSession:
    """An OpenVINO CPU model in bfloat16 with ONNX Runtime's `run(None, feed)`. Calls take
    turns: an infer request holds its buffers, and the app may call from several threads."""

    def __init__(self, path: Path) -> None:
        import openvino

        settings = {
            "PERFORMANCE_HINT": "LATENCY",  # one review at a time, on every core
            "INFERENCE_NUM_THREADS": threads(),
            "INFERENCE_PRECISION_HINT": "bf16",
        }
        try:
            compiled = openvino.Core().compile_model(str(path), "CPU", settings)
        except RuntimeError as error:  # OpenVINO raises it for a missing or unreadable file
            raise OnnxLoadError(str(error)) from error
        self.request = compiled.create_infer_request()
        self.lock = threading.Lock()

    def run(self, _outputs: None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            return [self.request.infer(feed)[0].copy()]  # the request reuses its output buffer


def fresh_onnx(model_dir: Path) -> tuple[Path | None, str]:
    """The ONNX file of `model_dir` if it was made from the weights and config now there,
    else None; and why, for the log."""
    path, manifest = model_dir / ONNX_FILE, model_dir / MANIFEST_FILE
    if not path.is_file() or not manifest.is_file():
        return None, f"no {ONNX_FILE} (make it with `python -m training.export {model_dir}`)"
    try:
        saved = json.loads(manifest.read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"{MANIFEST_FILE} is unreadable ({error})"
    try:
        if saved != source_digest(model_dir):
            return None, (
                f"{ONNX_FILE} is stale: the weights or config changed since it was made "
                f"(remake it with `python -m training.export {model_dir}`)"
            )
    except OSError as error:
        return None, f"the files it was made from are unreadable ({error})"
    return path, "fresh"
