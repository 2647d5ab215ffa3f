"""How a trained model should read long reviews, chosen on reviews it never saw, not the test set.

    python -m benchmarks.reading --model-dir model --data IMDB --reviews 3000
    python -m benchmarks.reading ... --split test --reviews 0 --strategies head+tail sliding

Tests one published model with each way of reading (`utils.STRATEGIES`) on the same reviews
and prints a markdown table: accuracy, accuracy on reviews longer than the model's budget,
reviews per second, and, paired against the strategy the folder serves, how many
reviews each strategy gets right that it got wrong and the reverse, with McNemar's exact
p-value. `--split train` (the default) draws training-split reviews that neither trained nor
validated the model (its metrics.json names them), so a choice made here leaves the test set
untouched; `--split test` reports on the benchmark's fixed test sample (`--reviews 0`: all).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.accuracy import fixed_test_sample, tuning_sample
from infer import load
from training import data, scoring
from training.config import saved_config
from utils import STRATEGIES


def unseen_reviews(model_dir: Path, reviews: dict[str, Any], split: str, n: int) -> Any:
    """`n` balanced reviews of `split` that the model in `model_dir` was not trained or
    validated on: its saved settings and seed redraw the reviews it used."""
    if split == "test":
        return fixed_test_sample(reviews, n)
    saved = json.loads((model_dir / "metrics.json").read_text())["config"]
    config = saved_config(saved, str(model_dir))
    used = data.make_splits(reviews, config)
    return tuning_sample(reviews, used, config.seed, n, "--reviews")


def compare(classifier: Any, reviews: Any, strategies: Sequence[str]) -> list[dict[str, Any]]:
    """One row per strategy; `paired_*` count reviews against the model's own strategy."""
    from scipy.stats import binomtest

    labels = np.asarray(reviews["label"])
    correct, rows = {}, []
    for strategy in strategies:
        reading = replace(classifier, truncation=strategy)
        metrics, per_review = scoring.test_split(reading, reviews)
        correct[strategy] = np.asarray(per_review["predicted"]) == labels
        long = np.asarray(per_review["tokens"]) > classifier.max_length
        rows.append(
            {
                "strategy": strategy,
                "accuracy": metrics["accuracy"],
                "long": int(long.sum()),
                "long_accuracy": float(correct[strategy][long].mean()),
                "reviews_per_second": metrics["reviews_per_second"],
            }
        )
    own = correct.get(classifier.truncation)
    for row in rows:
        if own is None or row["strategy"] == classifier.truncation:
            continue
        gained = int((correct[row["strategy"]] & ~own).sum())
        lost = int((~correct[row["strategy"]] & own).sum())
        row |= {"gained": gained, "lost": lost}
        row["p"] = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    return rows


def table(rows: list[dict[str, Any]], own: str, about: str) -> str:
    lines = [
        about,
        "",
        f"| read as | accuracy % | on long reviews % (n) | right where {own} was wrong "
        f"| wrong where {own} was right | McNemar p | reviews/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        paired = [str(row.get("gained", "")), str(row.get("lost", ""))]
        p = f"{row['p']:.3f}" if "p" in row else ""
        lines.append(
            f"| {row['strategy']} | {100 * row['accuracy']:.2f} "
            f"| {100 * row['long_accuracy']:.2f} ({row['long']}) | {' | '.join(paired)} | {p} "
            f"| {row['reviews_per_second']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"), help="a trained model")
    parser.add_argument("--data", required=True, help="the data it was trained on")
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--reviews", type=int, default=3000, help="balanced; 0: all (test)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    args = parser.parse_args(argv)
    if args.split == "train" and args.reviews == 0:
        parser.error("--reviews 0 takes a whole split, which only --split test allows.")

    classifier = load(args.model_dir)
    reviews = unseen_reviews(args.model_dir, data.load_data(args.data), args.split, args.reviews)
    rows = compare(classifier, reviews, args.strategies)
    where = (
        "training-split reviews it neither trained nor validated on"
        if args.split == "train"
        else "test reviews"
    )
    about = (
        f"`{args.model_dir}` (serves {classifier.truncation}, {classifier.max_length} tokens "
        f"per window) on {len(reviews):,} {where}."
    )
    print(table(rows, classifier.truncation, about))
    return 0


if __name__ == "__main__":
    sys.exit(main())
