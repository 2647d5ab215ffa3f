"""Corrections from the page, and `--extra-data` adding them to the training split only."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import make_frame, train_in_process

import data
import feedback
from config import LABELS, TrainConfig, UsageError


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
    extra = data.load_extra(str(path), LABELS)
    assert extra.column_names == ["text", "label"]
    assert list(zip(extra["text"], extra["label"], strict=True)) == [
        ("great film", 1),
        ("dull film", 0),
    ]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("text,label\ngreat,maybe\n", "labels 'maybe' are not 0 or 1"),
        ("review,label\ngreat,1\n", "no 'text' column"),
    ],
)
def test_bad_extra_data_is_refused_before_training(tmp_path, content, says):
    path = tmp_path / "extra.csv"
    path.write_text(content)
    with pytest.raises(UsageError, match=says):
        data.load_extra(str(path), LABELS)
    with pytest.raises(UsageError, match=r"no such \.csv or \.jsonl file"):
        data.load_extra(str(tmp_path / "missing.csv"), LABELS)


def test_extra_rows_go_to_training_only_and_held_out_reviews_are_dropped(data_dir):
    loaded = data.load_data(str(data_dir))
    config = TrainConfig(subset=40, val_reviews=10, test_subset=20, data=str(data_dir))
    splits = data.make_splits(loaded, config)
    from datasets import Dataset

    leaked = splits["test"]["text"][0]
    extra = Dataset.from_dict({"text": ["brand new review", leaked], "label": [1, 0]})
    merged, dropped = data.add_extra(splits, extra, seed=0)
    assert dropped == 1
    assert len(merged["train"]) == 41 and "brand new review" in merged["train"]["text"]
    assert leaked not in merged["train"]["text"]
    assert merged["validation"] is splits["validation"] and merged["test"] is splits["test"]


def test_main_trains_with_extra_data(tmp_path, base_model, data_dir):
    extra = tmp_path / "extra.jsonl"
    rows = make_frame(5, seed=9).to_dict("records")
    extra.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = train_in_process(tmp_path, base_model, data_dir, "--extra-data", str(extra))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["config"]["extra_data"] == str(extra)
    assert metrics["data"]["train"] == 120 + 10
