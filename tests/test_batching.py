"""Length batching: batches of like-length texts within a token budget (`--batch-tokens`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MAX_LENGTH, train_args

import main
import train
from training import data
from training.batching import TokenBudgetSampler


def epoch_batches(sampler: TokenBudgetSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_text_once_an_epoch_and_no_batch_past_the_budget():
    rng = np.random.default_rng(0)
    # Mostly short sentences and some long reviews, as the typed-review recipe mixes them.
    lengths = np.concatenate([rng.integers(5, 30, 900), rng.integers(200, 257, 100)])
    sampler = TokenBudgetSampler(lengths.tolist(), max_tokens=1024, seed=7)
    for epoch in (0, 1):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler)
        seen = sorted(i for batch in batches for i in batch)
        assert seen == list(range(len(lengths)))
        for batch in batches:
            assert len(batch) * lengths[batch].max() <= 1024
    # Fixed batches of 2 would take 500 steps; 1024 tokens take about 20 + 900 * 17 / 1024.
    assert len(sampler) < 60
    # Short texts fill their batches: the short ones ride ~40 to a step, the long ones 4.
    sizes = [len(batch) for batch in epoch_batches(sampler, 0)]
    assert max(sizes) >= 30 and min(sizes) <= 5


def test_the_seed_and_the_epoch_reorder_the_batches_and_a_seed_repeats():
    lengths = [10, 11, 10, 12, 10, 11, 30, 31, 10, 12] * 20
    one, same = (TokenBudgetSampler(lengths, 64, seed=1) for _ in range(2))
    other = TokenBudgetSampler(lengths, 64, seed=2)
    assert epoch_batches(one, 0) == epoch_batches(same, 0)
    assert epoch_batches(one, 0) != epoch_batches(other, 0)
    assert epoch_batches(one, 0) != epoch_batches(one, 1)
    # Who shares a batch changes too, not only the order of the batches.
    pairs = {frozenset(batch) for batch in epoch_batches(one, 0)}
    assert pairs != {frozenset(batch) for batch in epoch_batches(other, 0)}


def test_a_text_longer_than_the_budget_goes_alone():
    batches = list(TokenBudgetSampler([300, 5, 5], max_tokens=256, seed=0))
    assert sorted(map(sorted, batches)) == [[0], [1, 2]]
    with pytest.raises(ValueError, match="positive"):
        TokenBudgetSampler([5], max_tokens=0, seed=0)


def test_training_batches_see_every_review_once_in_fewer_steps(tmp_path, base_model, data_dir):
    args = train_args(base_model, data_dir, tmp_path / "model", "--batch-tokens", "256")
    config = main.config_of(main.build_parser().parse_args(args))
    splits = data.make_splits(data.load_data(str(data_dir)), config)
    _, trainer = train.prepare(config, splits)
    loader = trainer.get_train_dataloader()
    seen = []
    for batch in loader:
        ids = batch["input_ids"]
        assert ids.numel() <= 256  # padded texts x longest, within the budget
        masks = batch["attention_mask"].bool()
        seen += [tuple(row[mask].tolist()) for row, mask in zip(ids, masks, strict=True)]
    expected = [tuple(ids) for ids in trainer.train_dataset["input_ids"]]
    assert sorted(seen) == sorted(expected)  # the same 120 reviews, each once
    assert len(loader) < len(expected) // 2 / 2  # a third of batch 2's 60 steps or fewer


@pytest.mark.slow
def test_a_run_with_a_token_budget_trains_and_publishes(tmp_path, base_model, data_dir):
    output = tmp_path / "model"
    flags = ["--batch-tokens", str(MAX_LENGTH * 8), "--grad-accum", "1"]
    assert main.main(train_args(base_model, data_dir, output, *flags)) == 0
    report = json.loads((output / "metrics.json").read_text())
    assert report["config"]["batch_tokens"] == MAX_LENGTH * 8
    steps = max(row["step"] for row in report["history"])
    # 6 epochs of 120 reviews: 180 updates at batch 2 x 2; about 8 reviews of up to 32 tokens
    # fit in 256, so under half as many.
    assert steps < 6 * 120 / 4 / 2
    assert report["test"]["accuracy"] > 0.7  # it learned


def test_a_budget_below_the_max_length_is_refused(tmp_path, base_model, data_dir, capsys):
    args = train_args(base_model, data_dir, tmp_path / "model", "--batch-tokens", "16")
    assert main.main(args) == 2
    assert "--batch-tokens 16 is below --max-length 32" in capsys.readouterr().err
