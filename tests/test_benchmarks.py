"""The benchmark scripts' own logic, on the tiny model: what they choose on must be unseen."""

from __future__ import annotations

import json
import sys

import numpy as np
from conftest import ROOT

import infer
import train

sys.path.insert(0, str(ROOT / "benchmarks"))
import reading


def test_reading_compares_strategies_on_reviews_the_model_never_saw(model_dir, data_dir):
    data = train.load_data(str(data_dir))
    reviews = reading.unseen_reviews(model_dir, data, "train", 40)
    config = train.trained_config(json.loads((model_dir / "metrics.json").read_text())["config"])
    used = train.make_splits(data, config)
    seen = set(used["train"]["text"]) | set(used["validation"]["text"])
    assert len(reviews) == 40 and sum(reviews["label"]) == 20
    assert not seen & set(reviews["text"])

    classifier = infer.load(model_dir)  # serves sliding
    compared = reading.compare(classifier, reviews, ["head", "sliding"])
    rows = {row["strategy"]: row for row in compared}
    labels = np.asarray(reviews["label"])

    def correct(strategy: str) -> np.ndarray:
        reader = infer.load(model_dir, truncation=strategy)
        return np.array([p.label == "POSITIVE" for p in reader.classify(reviews["text"])]) == labels

    head, sliding = correct("head"), correct("sliding")
    assert rows["sliding"]["accuracy"] == sliding.mean()
    assert (rows["head"]["gained"], rows["head"]["lost"]) == (
        int((head & ~sliding).sum()),
        int((~head & sliding).sum()),
    )
    assert "gained" not in rows["sliding"]  # the served strategy is the reference
    assert "| sliding |" in reading.table(compared, "sliding", "about")


def test_the_default_cell_is_main_py_as_shipped():
    import accuracy

    shipped = train.TrainConfig()
    overrides = accuracy.CELLS["default"].overrides
    assert {key: getattr(shipped, key) for key in overrides} == overrides
