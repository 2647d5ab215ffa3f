"""Pieces shared by training and inference: text cleaning, tokenizing, metric math.

Pure functions only: no disk, no network, no module state. Training (`train.py`) and serving
(`infer.py`) both call `encode`, so a review is cleaned and cut the same way in both.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

# Characters kept before tokenizing. 1.5x the longest IMDB review (13,704 characters), so no
# real review is cut here; a 10 MB paste is cut to this in microseconds instead of costing the
# tokenizer seconds. A 512-token window never needs more than about 4,000 characters of English.
MAX_CHARS = 20_000

_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


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


def binary_metrics(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 of label 1, and the confusion matrix (rows: true label).

    >>> binary_metrics([0, 1, 1], [0, 1, 0])["accuracy"]
    0.6666666666666666
    """
    # Imported here: scikit-learn costs a second at import, and the app never needs it.
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=[0, 1]).tolist(),
    }
