"""The benchmark scripts' own logic, on the tiny model: what they choose on must be unseen."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import MAX_LENGTH, ROOT

import infer
import train

sys.path.insert(0, str(ROOT / "benchmarks"))
import reading
from accuracy import read_rows as accuracy_rows


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


def test_the_recipe_the_sweep_chose_is_the_default_cell():
    import accuracy
    import sweep

    chosen = sweep.RECIPES["probe-one-rate-dropout-0"].overrides
    assert sweep.BASE | chosen == accuracy.CELLS["default"].overrides


def test_sweep_runs_each_recipe_and_seed_once_and_resumes(base_model, data_dir, tmp_path):
    import sweep

    argv = [
        "--model", str(base_model), "--data", str(data_dir), "--out", str(tmp_path),
        "--recipes", "base", "smooth-0.1", "--seeds", "1", "2", "--workers", "2",
        "--subset", "40", "--val-reviews", "12", "--max-length", str(MAX_LENGTH),
        "--tuning-reviews", "20", "--test-reviews", "20", "--scratch", str(tmp_path / "work"),
    ]  # fmt: skip
    assert sweep.main(argv) == 0
    rows = accuracy_rows(tmp_path / "sweep.csv")
    assert sorted((r["recipe"], r["seed"]) for r in rows) == [
        ("base", "1"), ("base", "2"), ("smooth-0.1", "1"), ("smooth-0.1", "2"),
    ]  # fmt: skip
    assert all(0 <= float(r["tuning_accuracy"]) <= 1 for r in rows)
    assert not list(tmp_path.glob("rows-*.csv"))  # merged into sweep.csv
    assert not list((tmp_path / "work").glob("*"))  # each run's checkpoints removed
    report = (tmp_path / "sweep.md").read_text()
    assert "| smooth-0.1 | label smoothing 0.1 | 2 |" in report
    assert sweep.main(argv) == 0  # everything done: nothing runs again
    assert accuracy_rows(tmp_path / "sweep.csv") == rows


def test_sweep_extras_set_the_schedule_and_a_smoothed_mean_loss(base_model, data_dir, tmp_path):
    import sweep
    import torch
    from torch import nn

    config = train.TrainConfig(
        model=str(base_model), data=str(data_dir), subset=20, val_reviews=4,
        max_length=MAX_LENGTH, output_dir=str(tmp_path / "model"),
        checkpoint_dir=str(tmp_path / "checkpoints"),
    )  # fmt: skip
    splits = train.make_splits(train.load_data(str(data_dir)), config)
    _, trainer = train.prepare(config, splits)
    trainer.model.eval()  # whatever --dropout says: the loss is compared with one computed apart
    sweep.apply_extras(trainer, {"label_smoothing": 0.2, "schedule": "cosine"})
    assert trainer.args.lr_scheduler_type == "cosine"
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    logits = trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    expected = nn.functional.cross_entropy(logits, batch["labels"], label_smoothing=0.2)
    loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=torch.tensor(4))
    assert torch.allclose(loss, expected)  # a micro-batch mean, as the model's own loss is


def test_sweep_gains_are_paired_by_seed_with_their_standard_error():
    import sweep

    def row(recipe: str, seed: int, tuning: float) -> dict[str, str]:
        return {
            "recipe": recipe, "seed": str(seed), "tuning_accuracy": str(tuning),
            "test_accuracy": "0.8", "test_head_tail_accuracy": "0.8", "best_epoch": "2",
        }  # fmt: skip

    rows = [row("base", 1, 0.80), row("base", 2, 0.90), row("base", 3, 0.70)]
    rows += [row("probe", 1, 0.81), row("probe", 2, 0.93)]  # seed 3 not run
    lines = {line["recipe"]: line for line in sweep.summary(rows)}
    gain, error = lines["probe"]["tuning_accuracy_gain"]
    assert (gain, error) == (pytest.approx(2.0), pytest.approx(1.0))  # +1 and +3 points
    assert lines["probe"]["tuning_accuracy"][0] == pytest.approx(87.0)
    assert "tuning_accuracy_gain" not in lines["base"]
