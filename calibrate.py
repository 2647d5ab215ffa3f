"""Calibration after training: a temperature that makes probabilities honest, and the
threshold below which a review reads as mixed or unclear. Both go into calibration.json.

    >>> calibration, fit = fit_calibration(classifier, texts, labels)  # doctest: +SKIP
    >>> calibration.temperature, calibration.short_temperature, calibration.unsure_below
    (1.6, 3.2, 0.7)

Fitted on held-out training-split data, never the test split: the validation reviews and one
snippet of each (`data.snippets`), since visitors type a line or two. Temperature scaling (Guo
et al. 2017), one temperature for reviews and one for short texts, tempers each text's served
probability (`utils.served_probabilities`), so it never changes which label wins.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from data import snippets
from utils import CALIBRATION_FILE, Calibration, served_probabilities

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
    for percent in range(50, 100):
        answered = top >= percent / 100
        if answered.any() and correct[answered].mean() >= target:
            return percent / 100
    return 0.99


def fit_calibration(
    classifier: Any, texts: list[str], labels: list[int]
) -> tuple[Calibration, dict[str, Any]]:
    """The Calibration of `classifier` fitted on (`texts`, `labels`), and what the fit saw:
    one temperature for the texts of at most `short_tokens` tokens, one for the longer."""
    logits, encoded = classifier.window_logits(texts, 32)
    owner, labels = np.asarray(encoded["review"]), np.asarray(labels)
    short = np.asarray(encoded["tokens"]) <= Calibration.short_tokens
    temperatures = {}
    for name, group in (("temperature", ~short), ("short_temperature", short)):
        if group.sum() < 2:  # nothing to fit on: as trained
            temperatures[name] = 1.0
            continue
        texts_in = np.flatnonzero(group)
        windows = np.isin(owner, texts_in)
        renumbered = np.searchsorted(texts_in, owner[windows])
        temperatures[name] = round(fit_temperature(logits[windows], renumbered, labels[group]), 4)
    tempered = Calibration(**temperatures)
    probs = served_probabilities(logits, owner, tempered.temperatures(encoded["tokens"]))
    threshold = unsure_threshold(probs, labels)
    fit = {
        "texts": len(texts),
        "short_texts": int(short.sum()),
        "target_accuracy": TARGET_ACCURACY,
    }
    calibration = replace(tempered, unsure_below=threshold)
    return calibration, fit | {"unsure_share": float(calibration.unsure(probs).mean())}


def write_calibration(folder: Path, calibration: Calibration) -> None:
    """`calibration.json`, which `infer.load` reads."""
    (folder / CALIBRATION_FILE).write_text(json.dumps(asdict(calibration), indent=2) + "\n")
