"""Visitors' corrections: "Wrong label?" rows appended to a CSV that training can read back.

    record(Path("feedback"), "Not bad at all.", "NEGATIVE", "POSITIVE")
    # PosixPath('feedback/feedback.csv')

Columns text, predicted, corrected, time (UTC, ISO 8601). `python main.py --extra-data
feedback/feedback.csv` adds the rows to the training split only (`corrected` is the label).
One line per write under a lock, so two visitors never interleave a row.
"""

from __future__ import annotations

import csv
import threading
from datetime import UTC, datetime
from pathlib import Path

FILE = "feedback.csv"
COLUMNS = ("text", "predicted", "corrected", "time")
_lock = threading.Lock()


def record(folder: Path, text: str, predicted: str, corrected: str) -> Path:
    """Append one correction to `folder/feedback.csv` (made, with its header, if new)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    row = (text, predicted, corrected, datetime.now(UTC).isoformat(timespec="seconds"))
    with _lock:
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(COLUMNS)
            writer.writerow(row)
    return path
