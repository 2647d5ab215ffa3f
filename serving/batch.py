"""Whole files of reviews: read a CSV or TXT upload, classify every row, write the result CSV.

    texts = read_reviews(Path("reviews.csv"))        # a `text` column, or the only one
    table = classify_rows(classifier, texts)         # one row per review, in file order
    table.to_csv("labelled.csv", index=False)

A row that cannot be read (empty, no words, too long) gets no label and a note saying why;
the others are classified in one `classify` call, so a file takes as long as `infer` on the
same list. Serving side: imports nothing of training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from serving.checks import check_texts

MAX_ROWS = 2_000  # reviews per file: about 40 s of whole reviews on 2 cores
SUFFIXES = (".csv", ".txt")


class FileError(ValueError):
    """The upload cannot be read as reviews; the message says what to change."""


def read_reviews(path: Path, max_rows: int = MAX_ROWS) -> list[str]:
    """The reviews in a CSV (its `text` column, or its only column) or a TXT (one per line,
    blank lines skipped), or FileError naming the fix."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise FileError(f"'{path.name}' is not a .csv or .txt file: upload one of those.")
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        texts = [line for line in lines if line.strip()]
    else:
        # index_col=False: a first row with an unquoted comma ("Great film, loved it.") made
        # pandas take its first field as an index and leave every other row's text empty.
        # Rows longer than the header are an error, never cut short.
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    dtype=str,
                    keep_default_na=False,
                    index_col=False,
                    encoding_errors="replace",
                )
        except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeError) as error:
            raise FileError(
                f"'{path.name}' does not read as CSV ({error}): put reviews that hold commas in "
                "double quotes, or upload a .txt file with one review per line."
            ) from error
        except pd.errors.EmptyDataError:  # not a byte in it: no reviews, said below
            frame = pd.DataFrame({"text": []})
        if "text" in frame.columns:
            texts = frame["text"].tolist()
        elif len(frame.columns) == 1:
            texts = frame.iloc[:, 0].tolist()
        else:
            columns = ", ".join(map(str, frame.columns[:8]))
            raise FileError(
                f"'{path.name}' has columns {columns}: name the reviews' column `text`, or "
                "upload a file with one column."
            )
    if not texts:
        raise FileError(f"'{path.name}' holds no reviews.")
    if len(texts) > max_rows:
        raise FileError(
            f"'{path.name}' holds {len(texts):,} reviews; the limit is {max_rows:,} per file: "
            "split it."
        )
    return texts


def classify_rows(
    classifier: Any, texts: list[str], progress: Callable[[int], object] | None = None
) -> pd.DataFrame:
    """One row per text, in order: text, label, a probability per label, unsure, and a note
    (why a row was not read, or the first warning about its text)."""
    rows: list[dict[str, Any]] = []
    readable: list[int] = []
    for i, text in enumerate(texts):
        row = {"text": text, "label": "", **dict.fromkeys(classifier.labels), "unsure": None}
        try:
            check_texts([text])
            readable.append(i)
            row["note"] = ""
        except ValueError as error:
            row["note"] = str(error).replace("Review 0 ", "The review ", 1)
        rows.append(row)
    predictions = (
        classifier.classify([texts[i] for i in readable], progress=progress) if readable else []
    )
    for i, prediction in zip(readable, predictions, strict=True):
        rows[i] |= {"label": prediction.label, **prediction.scores, "unsure": prediction.unsure}
        rows[i]["note"] = prediction.warnings[0] if prediction.warnings else ""
    return pd.DataFrame(rows)


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """How many rows of a `classify_rows` table read positive, negative, mixed (unsure) or
    were not read: columns `verdict` and `reviews`, for the page's chart."""
    unsure = table["unsure"].fillna(False).astype(bool)
    verdicts = table["label"].str.lower().where(~unsure, "mixed").replace("", "not read")
    return verdicts.value_counts().rename_axis("verdict").reset_index(name="reviews")
