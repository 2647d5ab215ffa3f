"""Calibration after training: a temperature that makes probabilities honest, and the
threshold below which a review reads as mixed or unclear. Both go into calibration.json.

    calibration, fit = fit_calibration(classifier, texts, labels)
    calibration.temperature, calibration.windows_temperature, calibration.short_temperature
    # (3.5, 2.3, 7.1)

Fitted on held-out training-split data, never the test split: the validation reviews, one
snippet of each (`data.snippets`), and the training split's short reviews that neither
training nor validation used (`data.short_reviews`), since visitors type a line or two.
Temperature scaling (Guo et al. 2017), one temperature each for short texts, reviews read in
one window and reviews read in several, tempers each text's served probability
(`utils.served_probabilities`), so it never changes which label wins.

Measured on the default model (benchmarks/README.md): the short temperature fitted on
snippets alone (10.8) left short answers under-confident (ECE 0.063 and 0.083 on the short
dev sets), on short reviews alone (4.6) over-confident on Rotten Tomatoes (0.077); on both,
7.1: 0.044 and 0.025. One temperature for all reviews left IMDB's ECE at 0.036; reviews read
in several windows need a lower one (2.3 against 3.5): 0.024.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.data import snippets
from utils import CALIBRATION_FILE, Calibration, served_probabilities

# The unsure band: reviews answered outside it were right this often on the calibration data.
TARGET_ACCURACY = 0.9
TEMPERATURES = (0.05, 20.0)  # the search range; 1 leaves the model as trained


def calibration_data(split: Any, seed: int, short: dict[str, list]) -> tuple[list[str], list[int]]:
    """The reviews of `split`, one snippet of each, and the `short` reviews (`{"text": [...],
    "label": [...]}`, held out from training), with their labels."""
    extra = snippets(split["text"], split["label"], 1, seed)
    texts = list(split["text"]) + extra["text"] + list(short["text"])
    return texts, list(split["label"]) + extra["label"] + list(short["label"])


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
    one temperature for the texts of at most `short_tokens` tokens, one for the longer read in
    one window, one for those read in several."""
    logits, encoded = classifier.window_logits(texts, 32)
    owner, labels = np.asarray(encoded["review"]), np.asarray(labels)
    short = np.asarray(encoded["tokens"]) <= Calibration.short_tokens
    several = (np.bincount(owner, minlength=len(texts)) > 1) & ~short  # short comes first
    groups = {
        "temperature": ~short & ~several,
        "windows_temperature": several,
        "short_temperature": short,
    }
    temperatures: dict[str, float] = {}
    for name, group in groups.items():
        if group.sum() < 2:  # nothing to fit on: as trained, or as the one-window reviews
            temperatures[name] = temperatures.get("temperature", 1.0)
            continue
        texts_in = np.flatnonzero(group)
        windows = np.isin(owner, texts_in)
        renumbered = np.searchsorted(texts_in, owner[windows])
        temperatures[name] = round(fit_temperature(logits[windows], renumbered, labels[group]), 4)
    tempered = Calibration(**temperatures)
    probs = served_probabilities(logits, owner, tempered.temperatures(encoded))
    threshold = unsure_threshold(probs, labels)
    fit = {
        "texts": len(texts),
        "short_texts": int(short.sum()),
        "several_windows": int(several.sum()),
        "target_accuracy": TARGET_ACCURACY,
    }
    calibration = replace(tempered, unsure_below=threshold)
    return calibration, fit | {"unsure_share": float(calibration.unsure(probs).mean())}


def write_calibration(folder: Path, calibration: Calibration) -> None:
    """`calibration.json`, which `infer.load` reads."""
    (folder / CALIBRATION_FILE).write_text(json.dumps(asdict(calibration), indent=2) + "\n")
