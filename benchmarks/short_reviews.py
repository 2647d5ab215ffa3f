"""How trained models read short reviews, the kind visitors type, beside IMDB's long ones.

    python -m benchmarks.short_reviews --models model other-model --data IMDB --short SHORT

For each model folder, served as `infer.load` serves it (its backend and calibration): the
benchmark's fixed 2,000 IMDB test reviews and each short-review set, with a set's `kind` column
(typed reviews: plain, negation, contrast, sarcasm) read per kind; per set the share marked
unsure, the accuracy of the answers given and the wrong answers shown as confident; and the
training time and extra data from metrics.json. Prints two markdown tables. The short sets
compare and choose; nothing here trains on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.accuracy import TEST_REVIEWS, fixed_test_sample
from infer import load
from training import data, scoring


def measure(model_dir: Path, sets: dict[str, Any]) -> dict[str, Any]:
    """Metrics of one published model, as served, on every set."""
    classifier = load(model_dir)
    saved = json.loads((model_dir / "metrics.json").read_text())
    results = {name: scoring.test_split(classifier, split, name)[0] for name, split in sets.items()}
    return {
        "model": model_dir.name,
        "extra_data": saved["config"]["extra_data"],
        "train_seconds": saved["train"]["seconds"],
        "unsure_below": classifier.calibration.unsure_below,
        "short_temperature": classifier.calibration.short_temperature,
        "sets": results,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """Accuracy per set and kind, then per set: unsure share, accuracy of the rest, wrong
    answers shown above the unsure threshold."""
    names = list(rows[0]["sets"])
    kinds = {
        name: list(rows[0]["sets"][name].get("kinds", {}))
        for name in names
        if rows[0]["sets"][name].get("kinds")
    }
    heads = [*names, *(f"{name}: {kind}" for name, ks in kinds.items() for kind in ks)]
    lines = [
        "| model | train min | " + " | ".join(heads) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in heads) + " |",
    ]
    for row in rows:
        sets = row["sets"]
        cells = [f"{sets[name]['accuracy']:.1%}" for name in names]
        for name, ks in kinds.items():
            for kind in ks:
                m = sets[name]["kinds"][kind]
                right = round(m["accuracy"] * m["reviews"])
                cells.append(f"{m['accuracy']:.1%} ({right}/{m['reviews']})")
        minutes = row["train_seconds"] / 60
        lines.append(f"| {row['model']} | {minutes:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | unsure below | "
        + " | ".join(f"{name}: unsure, rest, wrong shown" for name in names)
        + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in names) + " |",
    ]
    for row in rows:
        cells = [
            f"{m['unsure_share']:.1%}, {m['accuracy_answered']:.1%}, {m['wrong_answered']}"
            for m in (row["sets"][name] for name in names)
        ]
        lines.append(f"| {row['model']} | {row['unsure_below']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    parser.add_argument("--data", required=True, help="the IMDB folder the models trained on")
    parser.add_argument("--short", required=True, help="folder of short-review sets")
    parser.add_argument(
        "--reviews", type=int, default=TEST_REVIEWS, help="IMDB test reviews (the table's 2,000)"
    )
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    imdb = fixed_test_sample(data.load_data(args.data), args.reviews)
    sets = {f"IMDB test ({args.reviews:,})": imdb} | data.load_short_sets(args.short)
    rows = [measure(folder, sets) for folder in args.models]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
