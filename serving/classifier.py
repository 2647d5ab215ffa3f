"""The serving API: Prediction, Classifier, `load`, and the cached default classifier.

Loading a folder is `model_folder.py`'s, the input rules `checks.py`'s. `infer.py` at the top
is this API and its command line; the app, the server and training's checks use it from here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving import hub
from serving.calibration import Calibration, served_probabilities
from serving.checks import check_texts, text_warnings
from serving.model_folder import (
    BACKENDS,
    ModelNotFoundError,
    check_model_dir,
    labels_and_reading,
    read_folder,
)
from serving.onnx_runtime import OnnxModel
from utils import HEAD_FRACTION, MAX_CHARS, check_strategy, encode, top_label

DEFAULT_MODEL_DIR = "model"


def model_dir_from_env() -> Path:
    """The folder the app and CLI serve: `$MODEL_DIR`, else `model`."""
    return Path(os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))


def model_id_from_env() -> str | None:
    """`$MODEL_ID`: a Hub model repository to fill the served folder from when it has no
    model (a Space's first start); None when unset."""
    return os.environ.get("MODEL_ID") or None


@dataclass(frozen=True)
class Prediction:
    """One review's label probabilities, how many of its tokens the model read, and whether
    it reads as mixed or unclear (its top probability below the saved threshold)."""

    scores: dict[str, float]
    tokens: int  # the whole cleaned review, special tokens included
    read: int  # tokens the model saw; less than `tokens` when a long review was cut
    unsure: bool = False
    warnings: tuple[str, ...] = ()  # `checks.text_warnings`: what is unusual about the text
    chars: int = 0  # the text's length as given; past `utils.MAX_CHARS` the rest is not read

    @property
    def chars_read(self) -> int:
        """Characters the tokens counted in `tokens` come from: at most `utils.MAX_CHARS`."""
        return min(self.chars, MAX_CHARS)

    @property
    def label(self) -> str:
        """The most probable label."""
        return top_label(self.scores)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as `--json` prints it."""
        return {
            "label": self.label,
            "scores": self.scores,
            "unsure": self.unsure,
            "warnings": list(self.warnings),
            "tokens": self.tokens,
            "read": self.read,
            "chars": self.chars,
            "chars_read": self.chars_read,
        }


@dataclass(frozen=True)
class Classifier:
    """A loaded model and its tokenizer; `labels[i]` names class id i (from the model config).

    `model` is a PyTorch module, or an `onnx_runtime.OnnxModel` (see `backend`).

    `truncation` says how a review longer than `max_length` is read (see `utils.STRATEGIES`):
    `load` takes it from the model folder, where training saved it, and sets `folder`.
    """

    model: Any
    tokenizer: Any
    labels: tuple[str, ...]
    truncation: str
    head_fraction: float = HEAD_FRACTION
    calibration: Calibration = field(default_factory=Calibration)  # as trained
    folder: Path | None = None  # the model folder it was loaded from

    def __post_init__(self) -> None:
        check_strategy(self.truncation, self.head_fraction)

    @property
    def backend(self) -> str:
        """What runs the model: `onnx` (INT8 by ONNX Runtime, or bfloat16 by OpenVINO on a CPU
        with AMX: `model.runtime` says which) or `torch`."""
        return "onnx" if isinstance(self.model, OnnxModel) else "torch"

    @functools.cached_property
    def torch_model(self) -> Any:
        """The PyTorch model, for gradients ("Why?"): the one that serves, or where ONNX serves,
        the folder's PyTorch weights, loaded on first use and kept with this classifier (a
        reloaded folder is a new classifier, so retrained weights are never explained by old)."""
        if self.backend == "torch":
            return self.model
        if self.folder is None:
            raise ValueError(
                "This ONNX classifier does not know its model folder: load it with "
                "infer.load(FOLDER) to explain its answers."
            )
        from serving.model_folder import torch_model

        return torch_model(self.folder)

    @property
    def max_length(self) -> int:
        """Tokens read per window, saved with the tokenizer at training time."""
        return int(self.tokenizer.model_max_length)

    def predict(self, texts: str | Sequence[str], batch_size: int = 16) -> list[dict[str, float]]:
        """Probabilities of every label, keyed by name, for each text; each dict sums to 1.

        classifier.predict(["Dull.", "Wonderful!"])
        # [{'NEGATIVE': 0.97, 'POSITIVE': 0.03}, {'NEGATIVE': 0.02, 'POSITIVE': 0.98}]
        """
        return [prediction.scores for prediction in self.classify(texts, batch_size)]

    def classify(
        self,
        texts: str | Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], object] | None = None,
    ) -> list[Prediction]:
        """A Prediction (probabilities, tokens read of the review's total) for each text; one
        review may be given as a string. Anything else, or a text with no words or longer than
        `MAX_REVIEW_CHARS`, raises TypeError or ValueError naming the review and the fix.

        With `sliding`, a review's probabilities are the mean over its windows. `progress`, if
        given, is called as each batch ends with how many more reviews are done (a progress
        bar's `update`), counting a review's windows as its parts.

        p = classifier.classify(["Dull."])[0]
        p.label, p.read, p.tokens
        # ('NEGATIVE', 4, 4)
        """
        texts = check_texts(texts)
        if not texts:  # the tokenizer fails on an empty batch
            return []
        logits, encoded = self._window_logits(texts, batch_size, progress)
        temperatures = self.calibration.temperatures(encoded)
        means = served_probabilities(logits, encoded["review"], temperatures)
        unsure = self.calibration.unsure(means).tolist()
        return [
            Prediction(
                dict(zip(self.labels, row, strict=True)),
                tokens,
                read,
                unsure=flag,
                warnings=tuple(text_warnings(text)),
                chars=chars,
            )
            for text, row, flag, tokens, read, chars in zip(
                texts,
                means.tolist(),
                unsure,
                encoded["tokens"],
                encoded["read"],
                encoded["chars"],
                strict=True,
            )
        ]

    def window_logits(
        self,
        texts: Sequence[str],
        batch_size: int = 16,
        progress: Callable[[int], object] | None = None,
    ) -> tuple[np.ndarray, dict[str, list]]:
        """Raw logits (windows, labels) as float64, before calibration, and `utils.encode`'s
        output: `encoded["review"][i]` is the text window i belongs to."""
        return self._window_logits(check_texts(texts), batch_size, progress)

    def _window_logits(
        self, texts: list[str], batch_size: int, progress: Callable[[int], object] | None
    ) -> tuple[np.ndarray, dict[str, list]]:
        """`window_logits` for texts `check_texts` has passed."""
        encoded = encode(self.tokenizer, texts, self.truncation, self.head_fraction)
        ids = encoded["input_ids"]
        # Longest first, so each batch pads to similar lengths; results go back by window.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        logits = np.zeros((len(ids), len(self.labels)))
        pad = self.tokenizer.pad_token_id or 0
        reported = start = 0
        while start < len(order):
            alone = isinstance(self.model, OnnxModel) and self.model.alone(len(ids[order[start]]))
            chunk = order[start : start + (1 if alone else batch_size)]
            input_ids = np.full((len(chunk), len(ids[chunk[0]])), pad, dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            logits[chunk] = self._logits(input_ids, mask)
            start += len(chunk)
            if progress is not None:
                done = start * len(texts) // len(ids)
                progress(done - reported)
                reported = done
        return logits, encoded

    def _logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if isinstance(self.model, OnnxModel):
            return self.model.logits(input_ids, attention_mask)
        import torch

        device = self.model.device
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(device),
                attention_mask=torch.from_numpy(attention_mask).to(device),
            )
        return out.logits.double().cpu().numpy()


def load(
    model_dir: str | Path = DEFAULT_MODEL_DIR,
    truncation: str | None = None,
    calibration: Calibration | None = None,
    backend: str = "auto",
) -> Classifier:
    """Load a model folder written by `python main.py` (safetensors only, never the Hub).

    Long reviews are read as the folder says (`truncation` in its config.json, saved by
    training), and probabilities calibrated as its calibration.json says; pass `truncation` or
    `calibration` to override them. `backend` picks what runs the model (see `BACKENDS`).

    load("model").labels
    # ('NEGATIVE', 'POSITIVE')
    """
    if truncation is not None:
        check_strategy(truncation)
    if backend not in BACKENDS:
        raise ValueError(f"backend takes {', '.join(BACKENDS)}, got {backend!r}.")
    path, tokenizer, config, saved_calibration, model = read_folder(model_dir, backend, calibration)
    labels, saved = labels_and_reading(path, config)
    return Classifier(
        model=model,
        tokenizer=tokenizer,
        labels=labels,
        truncation=truncation or saved["inference"],
        head_fraction=saved["head_fraction"],
        calibration=saved_calibration,
        folder=path,
    )


_loaded: dict[Path, Classifier] = {}


def get_classifier(model_dir: str | Path | None = None) -> Classifier:
    """The classifier for `model_dir` (default `$MODEL_DIR`), loaded on first use, then reused.
    With `$MODEL_ID` set, the served folder is first downloaded from the Hub if it has no model."""
    path = Path(model_dir) if model_dir is not None else model_dir_from_env()
    if path not in _loaded:
        model_id = model_id_from_env()
        if model_id and path == model_dir_from_env() and not _holds_model(path):
            hub.download(model_id, path)  # once: afterwards the folder holds it
        _loaded[path] = load(path)
    return _loaded[path]


def _holds_model(path: Path) -> bool:
    try:
        check_model_dir(path)
    except ModelNotFoundError:
        return False
    return True


def reset() -> None:
    """Forget loaded classifiers (tests, or after retraining into the same folder)."""
    _loaded.clear()


def predict(texts: Sequence[str], model_dir: str | Path | None = None) -> list[dict[str, float]]:
    """Label probabilities for each text with the cached default classifier.

    predict(["An instant classic."])
    # [{'NEGATIVE': 0.01, 'POSITIVE': 0.99}]
    """
    return get_classifier(model_dir).predict(texts)
