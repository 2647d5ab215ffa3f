"""Calibration after training: a temperature that makes probabilities honest, and the
threshold below which a review reads as mixed or unclear. Both go into calibration.json.

    >>> calibration, fit = fit_calibration(classifier, texts, labels)  # doctest: +SKIP
    >>> calibration.temperature, calibration.unsure_below
    (2.1, 0.81)

Fitted on held-out training-split data, never the test split: the validation reviews and one
snippet of each (`data.snippets`), since visitors type a line or two. Temperature scaling (Guo
et al. 2017) divides every logit by one number, so it never changes which label wins.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from data import snippets
from infer import Calibration, served_probabilities
from utils import CALIBRATION_FILE

# The unsure band: reviews answered outside it were right this often on the calibration data.
TARGET_ACCURACY = 0.9
TEMPERATURES = (0.05, 20.0)  # the search range; 1 leaves the model as trained


def calibration_data(split: Any, seed: int) -> tuple[list[str], list[int]]:
    """The reviews of `split` and one snippet of each, with their labels."""
    extra = snippets(split["text"], split["label"], 1, seed)
    return list(split["text"]) + extra["text"], list(split["label"]) + extra["label"]


def fit_temperature(logits: np.ndarray, owner: list[int], labels: list[int]) -> float:
    """The temperature that minimises the log loss of the served probabilities."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)

    def loss(log_t: float) -> float:
        probs = served_probabilities(logits, owner, float(np.exp(log_t)))
        return -float(np.mean(np.log(probs[np.arange(len(labels)), labels].clip(1e-12))))

    low, high = np.log(TEMPERATURES)
    return float(np.exp(minimize_scalar(loss, bounds=(low, high), method="bounded").x))


def unsure_threshold(
    probs: np.ndarray, labels: list[int], target: float = TARGET_ACCURACY
) -> float:
    """The lowest top probability, on a grid of 0.01, at or above which the answers were right
    at least `target` of the time; 0.5 (never unsure) when all of them already are."""
    top, correct = probs.max(axis=1), probs.argmax(axis=1) == np.asarray(labels)
    for threshold in np.arange(0.50, 0.995, 0.01):
        answered = top >= threshold
        if answered.any() and correct[answered].mean() >= target:
            return round(float(threshold), 2)
    return 0.99


def fit_calibration(
    classifier: Any, texts: list[str], labels: list[int]
) -> tuple[Calibration, dict[str, Any]]:
    """The Calibration of `classifier` fitted on (`texts`, `labels`), and what the fit saw."""
    logits, encoded = classifier.window_logits(texts, 32)
    temperature = fit_temperature(logits, encoded["review"], labels)
    probs = served_probabilities(logits, encoded["review"], temperature)
    threshold = unsure_threshold(probs, labels)
    unsure = probs.max(axis=1) < threshold
    fit = {
        "texts": len(texts),
        "target_accuracy": TARGET_ACCURACY,
        "unsure_share": float(unsure.mean()),
    }
    return Calibration(round(temperature, 4), threshold), fit


def write_calibration(folder: Path, calibration: Calibration) -> None:
    """`calibration.json`, which `infer.load` reads."""
    (folder / CALIBRATION_FILE).write_text(json.dumps(asdict(calibration), indent=2) + "\n")
