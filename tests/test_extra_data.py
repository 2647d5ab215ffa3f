"""`--extra-data`: more labelled texts from files or the Hub, for the training split only."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import make_frame, train_in_process

from serving import hub
from serving.model_folder import results_section
from training import data
from training import extra as sources
from training.config import LABELS, TrainConfig, UsageError


def test_a_parquet_file_and_a_hub_dataset_read_as_text_and_label(tmp_path, monkeypatch):
    import datasets

    make_frame(5, seed=3).to_parquet(tmp_path / "extra.parquet")
    assert len(sources.load_extra(str(tmp_path / "extra.parquet"), LABELS)) == 10
    # The Hub stood in for: stanfordnlp/sst2 names its text column `sentence`.
    sst2 = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(
            {"idx": [0, 1], "sentence": ["not bad at all", "a dull mess"], "label": [1, 0]}
        ),
        validation=datasets.Dataset.from_dict({"idx": [0], "sentence": ["x"], "label": [1]}),
    )
    asked = []
    monkeypatch.setattr(hub, "reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda name: asked.append(name) or sst2)
    extra = sources.load_extra("stanfordnlp/sst2:1", LABELS)
    assert asked == ["stanfordnlp/sst2"] and extra.column_names == ["text", "label"]
    assert extra["text"] == ["not bad at all", "a dull mess"]  # ROWS are drawn by add_extra


def test_a_hub_name_without_the_hub_fails_with_the_fix():
    with pytest.raises(
        UsageError, match=r"--extra-data rotten_tomatoes: .*unreachable.*local file"
    ):
        sources.load_extra("rotten_tomatoes", LABELS)


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
        sources.load_extra(str(path), LABELS)
    with pytest.raises(UsageError, match=r"no such \.csv, \.jsonl or \.parquet file"):
        sources.load_extra(str(tmp_path / "missing.parquet"), LABELS)


def test_rows_shared_with_validation_test_or_short_sets_are_dropped(data_dir):
    from datasets import Dataset

    loaded = data.load_data(str(data_dir))
    config = TrainConfig(subset=40, val_reviews=10, test_subset=20, data=str(data_dir))
    splits = data.make_splits(loaded, config)
    short = "the plot was n't awful and the cast was wonderful, truly."
    texts = [f"new review {i}" for i in range(40)] + [
        splits["test"]["text"][0],  # a test review
        splits["validation"]["text"][0].upper(),  # a validation review, cased otherwise
        "the plot wasn't awful and the cast",  # inside a short set's text, 26 letters
        "wonderful truly",  # inside it too, but common words: kept
        "1987",  # no word: SST-2 holds such phrases, and calibration refuses them
        "(",
    ]
    extra = Dataset.from_dict({"text": texts, "label": [1] * len(texts)})
    merged, counts = sources.add_extra(splits, {"extra.csv": extra}, [short], seed=0)
    assert counts == [
        {"source": "extra.csv", "rows": 46, "dropped": 5, "train": 39, "validation": 2}
    ]
    assert len(merged["train"]) == 40 + 39 and len(merged["validation"]) == 10 + 2
    added = set(merged["train"]["text"]) | set(merged["validation"]["text"])
    assert added >= {*texts[:40], "wonderful truly"} and not added & {*texts[40:43], *texts[44:]}
    assert merged["test"] is splits["test"]
    # Calibration weighs each source alike, so it needs to know which validation row is whose.
    rows = sources.validation_sources(merged["validation"], counts)
    assert rows == ["imdb"] * 10 + ["extra.csv"] * 2
    assert set(merged["validation"]["text"][10:]) <= set(texts[:40])
    assert merged["validation"]["text"][:10] == splits["validation"]["text"]
    # NAME:ROWS draws that many of the rows kept, the same ones for the same seed.
    _, (count,) = sources.add_extra(splits, {"extra.csv:20": extra}, [short], seed=0)
    assert (count["train"], count["validation"], count["dropped"]) == (19, 1, 5)


@pytest.mark.slow
def test_sources_and_kinds_of_review_are_reported(tmp_path, base_model, data_dir):
    parquet, jsonl = tmp_path / "critics.parquet", tmp_path / "phrases.jsonl"
    critics = make_frame(20, seed=7)
    pd.concat([critics, pd.DataFrame({"text": ["10,000"], "label": [1]})]).to_parquet(parquet)
    rows = make_frame(30, seed=8).to_dict("records")
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    short = tmp_path / "short"
    short.mkdir()
    typed = make_frame(6, seed=9).assign(kind=["plain", "negation", "contrast"] * 4)
    typed.to_csv(short / "typed.csv", index=False)

    output = train_in_process(
        tmp_path, base_model, data_dir, "--epochs", "1",
        "--extra-data", str(parquet), f"{jsonl}:40", "--short-data", str(short),
    )  # fmt: skip
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["config"]["extra_data"] == [str(parquet), f"{jsonl}:40"]
    assert metrics["data"]["extra"] == [
        {"source": str(parquet), "rows": 41, "dropped": 1, "train": 38, "validation": 2},
        {"source": str(jsonl), "rows": 60, "dropped": 0, "train": 38, "validation": 2},
    ]
    assert metrics["data"]["train"] == 120 + 38 + 38
    kinds = metrics["short"]["typed"]["kinds"]
    assert {kind: m["reviews"] for kind, m in kinds.items()} == {
        "plain": 4, "negation": 4, "contrast": 4,
    }  # fmt: skip
    groups = metrics["calibration"]["groups"]
    assert groups[str(parquet)] == groups[str(jsonl)] == 2  # their validation rows
    assert groups["IMDB reviews"] == metrics["data"]["validation"] - 4 and groups["IMDB snippets"]
    card = (output / "README.md").read_text()
    assert "and 4 texts of the extra data)" in card
    trained_on = (
        f"Trained on 120 reviews of `{data_dir.name}` and short texts: 38 of `critics.parquet` "
        "(2 more held out for validation, 1 dropped: evaluation texts, or no words); 38 of "
        "`phrases.jsonl`"
    )
    assert trained_on in " ".join(results_section(card).split())  # the app's About tab
    right = round(kinds["negation"]["accuracy"] * 4)
    assert f"| typed: negation | 4 | {right / 4:.1%} |" in card
