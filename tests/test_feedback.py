"""Corrections from the page, recorded for `--extra-data` (tests/test_extra_data.py)."""

from __future__ import annotations

import csv

from serving import feedback
from training import extra as sources
from training.config import LABELS


def test_corrections_are_appended_with_one_header(tmp_path):
    folder = tmp_path / "fb"
    feedback.record(folder, "Not bad at all.", "NEGATIVE", "POSITIVE")
    path = feedback.record(folder, 'A "quoted", multi\\nline one', "POSITIVE", "NEGATIVE")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(feedback.COLUMNS) and len(rows) == 3
    assert rows[2][:3] == ['A "quoted", multi\\nline one', "POSITIVE", "NEGATIVE"]


def test_the_feedback_file_reads_as_extra_training_data(tmp_path):
    folder = tmp_path / "fb"
    feedback.record(folder, "great film", "NEGATIVE", "POSITIVE")
    path = feedback.record(folder, "dull film", "POSITIVE", "NEGATIVE")
    extra = sources.load_extra(str(path), LABELS)
    assert extra.column_names == ["text", "label"]
    assert list(zip(extra["text"], extra["label"], strict=True)) == [
        ("great film", 1),
        ("dull film", 0),
    ]
