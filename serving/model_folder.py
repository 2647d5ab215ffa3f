"""Reading a model folder as `infer` serves it: the files it must hold, its tokenizer, its
calibration, the model behind it (ONNX when fresh, else PyTorch), and the results section
of its card for the app's About tab. Every way a folder
can be missing, half-copied, stale or foreign ends in ModelNotFoundError, whose message says
how to fix it; nothing here classifies.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from serving import calibration as calibration_file
from serving import gpu
from serving.calibration import CALIBRATION_FILE, Calibration
from serving.onnx_runtime import OnnxLoadError, OnnxModel, fresh_onnx
from serving.tokenizer import TOKENIZER_FILE, FolderTokenizer
from utils import RESULTS_HEADING

# `auto`: the folder's ONNX model when it is there and fresh (INT8, or bfloat16 on a CPU with
# AMX: 1.8 to 3.3 times PyTorch's speed on 2 cores, benchmarks/inference.py), else PyTorch;
# `onnx` or `torch` insist.
BACKENDS = ("auto", "onnx", "torch")
TRAIN_HINT = "train one with `python main.py --subset 2000`, or set MODEL_DIR to a model folder"
# Files a published model folder must hold; a folder without them is missing or half-copied.
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json")
log = logging.getLogger(__name__)


class ModelNotFoundError(FileNotFoundError):
    """The model folder is missing, incomplete or unreadable; the message says how to fix it."""


def check_model_dir(model_dir: str | Path) -> Path:
    """Return `model_dir` as a Path if it holds a complete model, else raise ModelNotFoundError.

    Cheap (a few `stat` calls, no loading), so the app can call it on every page view.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelNotFoundError(f"No model in '{path}/': {TRAIN_HINT}.")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"The model folder '{path}/' is incomplete (missing {', '.join(missing)}): "
            f"{TRAIN_HINT}."
        )
    return path


def _read_calibration(folder: Path) -> Calibration:
    """The calibration saved in `folder`, or ModelNotFoundError naming the fix."""
    try:
        return calibration_file.read(folder)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"The model in '{folder}/' has no readable {CALIBRATION_FILE} ({error}): it was "
            "saved by an earlier version of this project. Calibrate it with `python main.py "
            f"evaluate --model-dir {folder}`, or retrain it with `python main.py`."
        ) from error


def read_folder(
    model_dir: str | Path, backend: str, calibration: Calibration | None
) -> tuple[Path, Any, dict[str, Any], Calibration, Any]:
    """The folder's path, tokenizer, config (as JSON), calibration (`calibration` if given)
    and model (ONNX or PyTorch, as `backend` says), or ModelNotFoundError naming the fix."""
    path = check_model_dir(model_dir)
    # Training swaps a new folder in with one rename; if that happens while we read, the files
    # could come from two models. The folder's inode changes on a swap, so compare and retry.
    for _ in range(3):
        inode = path.stat().st_ino
        try:
            tokenizer = _tokenizer(path)
            # Read as JSON: with ONNX serving, PyTorch's model classes are never loaded (2 s).
            config = json.loads((path / "config.json").read_text())
            saved_calibration = calibration or _read_calibration(path)
            model = _onnx_model(path, backend) or on_gpu(torch_model(path))
        except ModelNotFoundError:
            raise
        # What a truncated, half-copied or foreign folder raises: unreadable JSON or weights
        # (SafetensorError), shapes that do not match the config (RuntimeError), odd values.
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as error:
            raise ModelNotFoundError(
                f"Could not load the model in '{path}/' ({first_line(error)}): {TRAIN_HINT}."
            ) from error
        if path.stat().st_ino == inode:
            break
    return path, tokenizer, config, saved_calibration, model


def labels_and_reading(path: Path, config: dict[str, Any]) -> tuple[tuple[str, ...], dict]:
    """The label names by class id, and how to read long reviews, from a folder's config."""
    try:
        labels = tuple(config["id2label"][str(i)] for i in range(len(config["id2label"])))
    except (KeyError, TypeError) as error:
        raise ModelNotFoundError(
            f"The config.json in '{path}/' names no labels ({error}): {TRAIN_HINT}."
        ) from error
    saved = config.get("truncation")
    if not isinstance(saved, dict) or not {"inference", "head_fraction"} <= set(saved):
        raise ModelNotFoundError(
            f"The model in '{path}/' does not say how to read long reviews (no `truncation` "
            "settings in its config.json): it was saved by an earlier version of this project "
            "or by another tool. Retrain it with `python main.py`."
        )
    return labels, saved


def _tokenizer(path: Path) -> Any:
    """The folder's tokenizer: from its tokenizer.json with `tokenizers` alone (what serving
    installs), else transformers' (`transformers_tokenizer`)."""
    if (path / TOKENIZER_FILE).is_file():
        return FolderTokenizer.from_folder(path)
    return transformers_tokenizer(path)


def transformers_tokenizer(path: Path) -> Any:
    """The folder's tokenizer in transformers, of the class its tokenizer_config.json names
    (what training tokenizes with, and what a pipeline takes). AutoTokenizer would read
    config.json first, whose model type is ours, and ask about remote code."""
    import transformers

    name = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    tokenizer_class = getattr(transformers, name, None) if isinstance(name, str) else None
    if tokenizer_class is None:
        return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    return tokenizer_class.from_pretrained(path, local_files_only=True)


def _onnx_model(path: Path, backend: str) -> OnnxModel | None:
    """The folder's fresh ONNX model; None (and a log line) to fall back to PyTorch. On a
    GPU `auto` means PyTorch in half precision: the ONNX graphs are for CPUs."""
    if backend == "torch" or (backend == "auto" and gpu.cuda()):
        return None
    onnx_file, why = fresh_onnx(path)
    if onnx_file is not None:
        try:
            return OnnxModel(onnx_file)
        except OnnxLoadError as error:
            why = f"{onnx_file.name} does not load ({first_line(error)})"
    if backend == "onnx":
        raise ModelNotFoundError(f"No usable ONNX model in '{path}/': {why}.")
    log.warning("Serving '%s/' with PyTorch: %s.", path, why)
    return None


def torch_model(path: Path) -> Any:
    """The PyTorch model in `path`, in eval mode, in fp32 on the CPU (as the exporter reads it)."""
    from transformers import AutoModelForSequenceClassification

    import pooling

    pooling.register()  # folders trained with --pooling mean (the default) load without remote code
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, local_files_only=True, use_safetensors=True, output_loading_info=True
    )
    # Weights that do not fit the config load "successfully" with random layers in place.
    mismatched = {key if isinstance(key, str) else key[0] for key in info["mismatched_keys"]}
    unfitted = set(info["missing_keys"]) | mismatched
    if unfitted:
        raise ModelNotFoundError(
            f"The weights in '{path}/' do not match its config.json ({len(unfitted)} "
            f"tensors missing or of another shape, e.g. {sorted(unfitted)[0]}): the files "
            f"come from different models. {TRAIN_HINT[0].upper()}{TRAIN_HINT[1:]}."
        )
    return model.eval()


def on_gpu(model: Any) -> Any:
    """`model` as served: on a GPU if there is one, in bf16 where the GPU has it, else fp16
    (agreement with fp32: `benchmarks/inference.py`); on the CPU as it is."""
    if not gpu.cuda():
        return model
    import torch

    half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return model.to("cuda", dtype=half)


def first_line(error: BaseException) -> str:
    """The first line of an error's message, without the long tails some loaders print."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def results_section(card: str) -> str:
    """The results section of the model card that training published, without image links."""
    start = card.find(RESULTS_HEADING)
    if start < 0:
        return ""
    end = card.find("\n## ", start + len(RESULTS_HEADING))
    section = card[start : end if end >= 0 else None]
    return "\n".join(line for line in section.splitlines() if not line.startswith("!["))
