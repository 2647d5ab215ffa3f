"""Calibration, the one home of it: how raw probabilities become honest ones, how that is
fitted after training, and `calibration.json`, which carries it inside the model folder.

    calibration, fit = fit(classifier, texts, labels)
    calibration.temperature, calibration.windows_temperature, calibration.short_temperature
    # (3.5, 2.3, 7.1)
    write(folder, calibration); read(folder) == calibration

Temperature scaling (Guo et al. 2017), one temperature each for short texts, reviews read in
one window and reviews read in several, tempers each text's served probability
(`served_probabilities`), so it never changes which label wins. Training fits it on held-out
training-split data, never the test split (`training/scoring.calibrated` chooses the texts).

Measured on the default model (benchmarks/NOTES.md): the short temperature fitted on
snippets alone (10.8) left short answers under-confident (ECE 0.063 and 0.083 on the short
dev sets), on short reviews alone (4.6) over-confident on Rotten Tomatoes (0.077); on both,
7.1: 0.044 and 0.025. One temperature for all reviews left IMDB's ECE at 0.036; reviews read
in several windows need a lower one (2.3 against 3.5): 0.024.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from utils import predicted_ids

CALIBRATION_FILE = "calibration.json"
# The unsure band: reviews answered outside it were right this often on the calibration data.
TARGET_ACCURACY = 0.9
TEMPERATURES = (0.05, 20.0)  # the search range; 1 leaves the model as trained


@dataclass(frozen=True)
class Calibration:
    """How raw probabilities become honest ones.

    A text's probabilities (the mean over its windows) are tempered, softmax(log p / T), with
    `short_temperature` for texts of at most `short_tokens` tokens (what visitors type),
    `windows_temperature` for reviews read in several windows (averaging them already tempers
    a little), `temperature` for the other reviews: above 1 the model was too sure of itself.
    A text whose top probability is then below `unsure_below` reads as mixed or unclear.
    Neither changes which label is more probable. The defaults leave the model as trained.
    """

    temperature: float = 1.0
    short_temperature: float = 1.0
    short_tokens: int = 64  # special tokens included; IMDB reviews are longer, a typed line not
    unsure_below: float = 0.5  # 0.5: never unsure
    windows_temperature: float = 1.0

    def unsure(self, probs: np.ndarray) -> np.ndarray:
        """Whether each row of served probabilities (texts, labels) reads as mixed or unclear."""
        return np.asarray(probs).max(axis=1) < self.unsure_below

    def temperatures(self, encoded: Mapping[str, Sequence[int]]) -> np.ndarray:
        """The temperature of each text `utils.encode` returned, by its length in tokens and
        how many windows read it."""
        tokens = np.asarray(encoded["tokens"])
        windows = np.bincount(np.asarray(encoded["review"], dtype=int), minlength=len(tokens))
        long = np.where(windows > 1, self.windows_temperature, self.temperature)
        return np.where(tokens <= self.short_tokens, self.short_temperature, long)


def served_probabilities(logits: np.ndarray, owner: Sequence[int], temperature: Any) -> np.ndarray:
    """P(each label) per text from its windows' raw logits: the softmax averaged over a text's
    windows (`owner[i]`: the text window i belongs to), then tempered, softmax(log p / T), with
    `temperature` one number or one per text. Tempering keeps each text's top label.

    >>> served_probabilities(np.array([[0.0, 2.0], [0.0, 0.0]]), [0, 0], 1.0).round(3)
    array([[0.31, 0.69]])
    """
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    owner = np.asarray(owner)
    sums = np.zeros((owner.max() + 1, logits.shape[1]))
    np.add.at(sums, owner, probs)
    mean = sums / np.bincount(owner)[:, None]
    scaled = np.log(mean.clip(1e-300)) / np.broadcast_to(temperature, len(mean))[:, None]
    tempered = np.exp(scaled - scaled.max(axis=1, keepdims=True))
    return tempered / tempered.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, owner: Sequence[int], labels: Sequence[int]) -> float:
    """The temperature that minimises the log loss of the served probabilities."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels)

    def loss(log_t: float) -> float:
        probs = served_probabilities(logits, owner, float(np.exp(log_t)))
        return -float(np.mean(np.log(probs[np.arange(len(labels)), labels].clip(1e-12))))

    low, high = np.log(TEMPERATURES)
    return float(np.exp(minimize_scalar(loss, bounds=(low, high), method="bounded").x))


def unsure_threshold(
    probs: np.ndarray,
    labels: Sequence[int],
    target: float = TARGET_ACCURACY,
    weights: Sequence[float] | None = None,
) -> float:
    """The lowest top probability, on a grid of 0.01, at or above which the answers were right
    at least `target` of the time, each answer counted with its weight (all 1 by default);
    0.5 (never unsure) when all of them already are."""
    top, correct = probs.max(axis=1), predicted_ids(probs[:, 1]) == np.asarray(labels)
    weights = np.ones(len(top)) if weights is None else np.asarray(weights, dtype=float)
    for percent in range(50, 100):
        answered = top >= percent / 100
        if answered.any() and np.average(correct[answered], weights=weights[answered]) >= target:
            return percent / 100
    return 0.99


def group_weights(groups: Sequence[str]) -> np.ndarray:
    """One weight per text so that each group of texts weighs the same in total.

    >>> group_weights(["review", "phrase", "phrase", "phrase"]).round(3)
    array([0.5  , 0.167, 0.167, 0.167])
    """
    names, index, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    return 1 / (len(names) * counts[index])


def fit(
    classifier: Any, texts: list[str], labels: list[int], groups: Sequence[str] | None = None
) -> tuple[Calibration, dict[str, Any]]:
    """The Calibration of `classifier` (anything with `window_logits`, as `infer.Classifier`)
    fitted on (`texts`, `labels`), and what the fit saw: one temperature for the texts of at
    most `short_tokens` tokens, one for the longer read in one window, one for those read in
    several. `groups` names the kind of each text (whole reviews, snippets, each extra source):
    each kind weighs the same in the unsure threshold, so 2,700 easy phrases cannot set the
    band for every review (measured: benchmarks/NOTES.md, "Typed reviews")."""
    logits, encoded = classifier.window_logits(texts, 32)
    owner, labels = np.asarray(encoded["review"]), np.asarray(labels)
    groups = ["texts"] * len(texts) if groups is None else list(groups)
    short = np.asarray(encoded["tokens"]) <= Calibration.short_tokens
    several = (np.bincount(owner, minlength=len(texts)) > 1) & ~short  # short comes first
    kinds = {
        "temperature": ~short & ~several,
        "windows_temperature": several,
        "short_temperature": short,
    }
    temperatures: dict[str, float] = {}
    for name, kind in kinds.items():
        if kind.sum() < 2:  # nothing to fit on: as trained, or as the one-window reviews
            temperatures[name] = temperatures.get("temperature", 1.0)
            continue
        texts_in = np.flatnonzero(kind)
        windows = np.isin(owner, texts_in)
        renumbered = np.searchsorted(texts_in, owner[windows])
        temperatures[name] = round(fit_temperature(logits[windows], renumbered, labels[kind]), 4)
    tempered = Calibration(**temperatures)
    probs = served_probabilities(logits, owner, tempered.temperatures(encoded))
    threshold = unsure_threshold(probs, labels, weights=group_weights(groups))
    calibration = replace(tempered, unsure_below=threshold)
    return calibration, {
        "texts": len(texts),
        "groups": dict(Counter(groups)),
        "short_texts": int(short.sum()),
        "several_windows": int(several.sum()),
        "target_accuracy": TARGET_ACCURACY,
        "unsure_share": float(calibration.unsure(probs).mean()),
    }


def write(folder: Path, calibration: Calibration) -> None:
    """`folder`'s calibration.json."""
    (folder / CALIBRATION_FILE).write_text(json.dumps(asdict(calibration), indent=2) + "\n")


def read(folder: Path) -> Calibration:
    """The calibration `write` saved in `folder`; OSError when the file is missing, ValueError
    when it is not one (`model_folder` turns both into the fix)."""
    saved = json.loads((folder / CALIBRATION_FILE).read_text())
    try:
        calibration = Calibration(
            temperature=float(saved["temperature"]),
            short_temperature=float(saved["short_temperature"]),
            short_tokens=int(saved["short_tokens"]),
            unsure_below=float(saved["unsure_below"]),
            windows_temperature=float(saved["windows_temperature"]),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{CALIBRATION_FILE} lacks or mistypes {error}") from error
    temperatures = (
        calibration.temperature,
        calibration.short_temperature,
        calibration.windows_temperature,
    )
    if min(temperatures) <= 0 or not 0.5 <= calibration.unsure_below < 1:
        raise ValueError(f"{CALIBRATION_FILE} holds {saved}, out of range")
    return calibration
