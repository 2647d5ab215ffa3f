"""Pieces shared by training and inference: text cleaning, tokenizing, metric math.

Pure functions only: no disk, no network, no module state. Training (`train.py`) and serving
(`infer.py`) both call `encode`, so a review is cleaned and cut the same way in both.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

# Characters kept before tokenizing. 1.5x the longest IMDB review (13,704 characters), so no
# real review is cut here; a 10 MB paste is cut to this in microseconds instead of costing the
# tokenizer seconds. A 512-token window never needs more than about 4,000 characters of English.
MAX_CHARS = 20_000

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


def looks_like_path(name: str) -> bool:
    """Whether `name` is meant as a folder rather than a Hub id (`name` or `owner/name`).

    >>> looks_like_path("./model"), looks_like_path("stanfordnlp/imdb")
    (True, False)
    """
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def clean_text(text: str) -> str:
    """Return the review as a reader sees it: IMDB's `<br />` tags and entities gone, spaces single.

    >>> clean_text("Great film.<br /><br />Loved it &amp; more")
    'Great film. Loved it & more'
    """
    text = _BREAK.sub(" ", text[:MAX_CHARS])
    return _SPACE.sub(" ", html.unescape(text)).strip()


def encode(tokenizer: Any, texts: Sequence[str], **kwargs: Any) -> Any:
    """Clean and tokenize `texts`, truncated to the tokenizer's saved `model_max_length`.

    Training pads per batch (its collator); inference passes `padding=True, return_tensors="pt"`.

    >>> encode(tokenizer, ["A fine film."])["input_ids"]  # doctest: +SKIP
    [[101, 1037, 2986, 2143, 1012, 102]]
    """
    return tokenizer([clean_text(t) for t in texts], truncation=True, **kwargs)


def token_lengths(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Tokens in each cleaned text before truncation, special tokens included.

    >>> token_lengths(tokenizer, ["A fine film."])  # doctest: +SKIP
    [6]
    """
    cleaned = [clean_text(t) for t in texts]
    return [len(ids) for ids in tokenizer(cleaned, truncation=False, verbose=False)["input_ids"]]


def binary_metrics(labels: Sequence[int], positive: Sequence[float]) -> dict[str, Any]:
    """Metrics of label 1 from the probability of label 1 per review; the cut is at 0.5.

    Accuracy, precision, recall, F1, ROC-AUC, log loss and the confusion matrix (rows: true label).

    >>> binary_metrics([0, 1, 1], [0.2, 0.9, 0.4])["accuracy"]
    0.6666666666666666
    """
    # Imported here: scikit-learn costs a second at import, and the app never needs it.
    from sklearn import metrics

    labels, positive = np.asarray(labels), np.asarray(positive, dtype=np.float64)
    predictions = (positive > 0.5).astype(int)
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    both = len(np.unique(labels)) == 2  # ROC-AUC needs both labels among the reviews
    return {
        "accuracy": float(metrics.accuracy_score(labels, predictions)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "roc_auc": float(metrics.roc_auc_score(labels, positive)) if both else None,
        "log_loss": float(metrics.log_loss(labels, positive, labels=[0, 1])),
        "confusion_matrix": metrics.confusion_matrix(labels, predictions, labels=[0, 1]).tolist(),
    }


def positive_probability(logits: Any) -> Any:
    """Softmax probability of label 1 for each row of a (reviews, 2) array of logits."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, 1] / shifted.sum(axis=1)
