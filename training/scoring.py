"""Scoring a model on a split: the metric, probabilities before and after calibration, the
unsure share, and the rows `report.py` draws from. Training validates and tests with it.

    metrics, rows = test_split(classifier, splits["test"])
    metrics["accuracy"], metrics["ece"], metrics["uncalibrated"]["ece"]
    # (0.895, 0.042, 0.072)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from serving import calibration as calibration_file
from serving.calibration import Calibration, served_probabilities
from training.data import snippets
from training.extra import validation_sources
from utils import encode, predicted_ids

logger = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 32  # reviews per step when validating and testing: memory, not results


def score(labels: Any, positive: Any) -> dict[str, Any]:
    """The project's metric (`sentiment_metric.py`, an `evaluate` module) of P(label 1)."""
    from sentiment_metric import SentimentMetric  # imports evaluate: 6-8 s, training only

    return SentimentMetric(keep_in_memory=True).compute(predictions=positive, references=labels)


def validation_metrics(prediction: Any) -> dict[str, float]:
    """The Trainer's `compute_metrics`: `score` of an epoch's validation logits."""
    logits = np.asarray(prediction.predictions, dtype=np.float64)
    positive = served_probabilities(logits, np.arange(len(logits)), 1.0)[:, 1]
    metrics = score(prediction.label_ids, positive)
    # The Trainer logs scalars, so the matrix travels as its four cells.
    (tn, fp), (fn, tp) = metrics.pop("confusion_matrix")
    return metrics | {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_split(classifier: Any, split: Any, desc: str = "Testing") -> tuple[dict, dict]:
    """Metrics of `classifier` on a split, with its timing, calibration before and after, and
    per review: text, label, P(label 1) raw and calibrated, predicted label id, unsure, length
    in tokens and tokens read. Shows a progress bar."""
    from tqdm.auto import tqdm

    started = time.perf_counter()
    with tqdm(total=len(split), desc=desc, unit="review", dynamic_ncols=True) as bar:
        logits, encoded = classifier.window_logits(split["text"], EVAL_BATCH_SIZE, bar.update)
    seconds = time.perf_counter() - started
    calibration = classifier.calibration
    temperatures = calibration.temperatures(encoded)
    probs = served_probabilities(logits, encoded["review"], temperatures)
    raw = served_probabilities(logits, encoded["review"], 1.0)
    metrics = score(split["label"], probs[:, 1])
    before = score(split["label"], raw[:, 1])
    predicted = predicted_ids(probs[:, 1])
    unsure = calibration.unsure(probs)
    right = predicted == np.asarray(split["label"])
    metrics |= {"uncalibrated": {key: before[key] for key in ("log_loss", "brier", "ece")}}
    metrics |= answered(right, unsure)
    if "kind" in split.column_names:  # a set of typed reviews: plain, negation, contrast...
        kinds = np.asarray(split["kind"])
        masks = {str(kind): kinds == kind for kind in dict.fromkeys(split["kind"])}
        metrics["kinds"] = {
            kind: {"reviews": int(mask.sum()), "accuracy": float(right[mask].mean())}
            | answered(right[mask], unsure[mask])
            for kind, mask in masks.items()
        }
    timing = {"seconds": round(seconds, 1), "reviews_per_second": round(len(split) / seconds, 1)}
    rows = {
        "text": split["text"],
        "label": split["label"],
        "positive": probs[:, 1],
        "raw_positive": raw[:, 1],
        "predicted": predicted.tolist(),
        "unsure": unsure.tolist(),
        "tokens": encoded["tokens"],
        "read": encoded["read"],
    }
    return {"reviews": len(split)} | metrics | timing, rows


def answered(right: np.ndarray, unsure: np.ndarray) -> dict[str, Any]:
    """The share marked unsure, the accuracy of the answers given, and the wrong answers given:
    those a visitor sees as a confident label."""
    shown = ~unsure
    return {
        "unsure_share": float(unsure.mean()),
        "accuracy_answered": float((right & shown).sum() / max(1, shown.sum())),
        "wrong_answered": int((~right & shown).sum()),
    }


def calibration_data(
    split: Any, seed: int, short: dict[str, list], sources: list[dict[str, Any]]
) -> tuple[list[str], list[int], list[str]]:
    """What calibration is fitted on, all held out from training, with the kind of each text:
    the IMDB reviews of `split`, one snippet of each (`data.snippets`), since visitors type a
    line or two, the `short` reviews (`{"text": [...], "label": [...]}`) and the rows of each
    extra source (`sources`: `extra.add_extra`'s counts). Never the test split."""
    rows = validation_sources(split, sources)
    imdb = [i for i, source in enumerate(rows) if source == "imdb"]
    reviews = {key: [split[key][i] for i in imdb] for key in ("text", "label")}
    extra = snippets(reviews["text"], reviews["label"], 1, seed)
    texts = list(split["text"]) + extra["text"] + list(short["text"])
    labels = list(split["label"]) + extra["label"] + list(short["label"])
    kinds = {"imdb": "IMDB reviews"}
    groups = [kinds.get(source, source) for source in rows]
    groups += ["IMDB snippets"] * len(extra["text"]) + ["short IMDB reviews"] * len(short["text"])
    return texts, labels, groups


def calibrated(
    classifier: Any,
    validation: Any,
    seed: int,
    short: dict[str, list],
    sources: list[dict[str, Any]],
) -> tuple[Any, dict[str, Any]]:
    """`classifier` with its calibration fitted on the validation split (its IMDB reviews, a
    snippet of each, each extra source's rows: `sources`, `extra.add_extra`'s counts) and the
    held-out `short` reviews (`data.short_reviews`) of at most 64 tokens
    (`serving/calibration.py`), and a summary of the fit for metrics.json."""
    tokens = encode(classifier.tokenizer, short["text"])["tokens"] if short["text"] else []
    keep = [i for i, n in enumerate(tokens) if n <= Calibration.short_tokens]
    short = {key: [short[key][i] for i in keep] for key in ("text", "label")}
    data = calibration_data(validation, seed, short, sources)
    calibration, fit = calibration_file.fit(classifier, *data)
    classifier = replace(classifier, calibration=calibration)
    fit["short_reviews"] = len(keep)
    # What the card can say of the texts visitors type: temperatures never change a label, so
    # these reviews, unseen by training and epoch choice, measure short-review accuracy.
    fit["short_reviews_accuracy"] = None
    if keep:
        from datasets import Dataset

        held_out, _ = test_split(classifier, Dataset.from_dict(short), "Short reviews (held out)")
        fit["short_reviews_accuracy"] = held_out["accuracy"]
    logger.info(
        "Calibrated on %d held-out texts (%d of them short reviews): temperature %.2f (%.2f "
        "for reviews read in several windows, %.2f for texts of at most %d tokens), unsure "
        "below %.0f%% (%.0f%% of them; each of its %d kinds of text weighs the same)",
        fit["texts"],
        fit["short_reviews"],
        calibration.temperature,
        calibration.windows_temperature,
        calibration.short_temperature,
        calibration.short_tokens,
        100 * calibration.unsure_below,
        100 * fit["unsure_share"],
        len(fit["groups"]),
    )
    return classifier, asdict(calibration) | fit
