"""How trained models read short reviews, the kind visitors type, beside IMDB's long ones.

    python benchmarks/short_reviews.py --models model other-model --data ../shared/data/imdb \
        --short ../shared/data/short

For each model folder (as published, with its calibration): accuracy, ECE (15 bins) before and
after temperature scaling, the share marked unsure and the accuracy on the rest, on the
benchmark's fixed 2,000 IMDB test reviews and on each short-review set; its training time from
metrics.json; and its answers to the reviews typed in the app that once went wrong. Prints a
markdown table. The short sets compare and choose; nothing here trains on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accuracy import TEST_REVIEWS, fixed_test_sample

import data
import train
from infer import load

TYPED = {  # typed in the app on the default of 6197013; the wrong answers were 98-100% sure
    "Not bad at all.": "POSITIVE",
    "I expected little, but this film won me over: a sharp script, a warm lead performance "
    "and an ending that made me cry.": "POSITIVE",
    "It was okay, nothing special.": "NEGATIVE",
}


def measure(model_dir: Path, sets: dict[str, Any]) -> dict[str, Any]:
    """Metrics of one published model on every set, and its answers to TYPED."""
    classifier = load(model_dir)
    saved = json.loads((model_dir / "metrics.json").read_text())
    results = {name: train.test_split(classifier, split, name)[0] for name, split in sets.items()}
    typed = [
        {
            "text": text,
            "right": p.label == truth,
            "confidence": p.scores[p.label],
            "unsure": p.unsure,
        }
        for (text, truth), p in zip(TYPED.items(), classifier.classify(list(TYPED)), strict=True)
    ]
    return {
        "model": model_dir.name,
        # --snippets was measured, then removed: folders trained without it have no such key.
        "snippets": saved["config"].get("snippets", 0),
        "extra_data": saved["config"].get("extra_data"),
        "train_seconds": saved["train"]["seconds"],
        # IMDB's own reviews of at most 64 tokens the run held out (absent before 2026-12-04).
        "imdb_short_accuracy": saved["calibration"].get("short_reviews_accuracy"),
        "temperature": classifier.calibration.temperature,
        "windows_temperature": classifier.calibration.windows_temperature,
        "short_temperature": classifier.calibration.short_temperature,
        "unsure_below": classifier.calibration.unsure_below,
        "sets": results,
        "typed": typed,
    }


def table(rows: list[dict[str, Any]]) -> str:
    names = list(rows[0]["sets"])
    head = " | ".join(f"{name}: accuracy, ECE before → after, unsure, rest" for name in names)
    lines = [
        f"| model | train s | temperatures: reviews, several windows, short | unsure below "
        f"| {head} | held-out IMDB short reviews | typed: wrong shown above the threshold |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---" for _ in names) + " | ---: | ---: |",
    ]
    for row in rows:
        cells = []
        for name in names:
            m = row["sets"][name]
            cells.append(
                f"{m['accuracy']:.1%}, {m['uncalibrated']['ece']:.3f} → {m['ece']:.3f}, "
                f"{m['unsure_share']:.1%}, {m['accuracy_answered']:.1%}"
            )
        confident_wrong = sum(not t["right"] and not t["unsure"] for t in row["typed"])
        imdb_short = row["imdb_short_accuracy"]
        lines.append(
            f"| {row['model']} | {row['train_seconds']:.0f} "
            f"| {row['temperature']:.2f}, {row['windows_temperature']:.2f}, "
            f"{row['short_temperature']:.2f} "
            f"| {row['unsure_below']:.2f} | {' | '.join(cells)} "
            f"| {'—' if imdb_short is None else f'{imdb_short:.1%}'} "
            f"| {confident_wrong} of {len(row['typed'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="model folders")
    parser.add_argument("--data", required=True, help="the IMDB folder the models trained on")
    parser.add_argument("--short", required=True, help="folder of short-review sets")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    imdb = fixed_test_sample(data.load_data(args.data), TEST_REVIEWS)
    sets = {"IMDB test (2,000)": imdb} | data.load_short_sets(args.short)
    rows = [measure(folder, sets) for folder in args.models]
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    for row in rows:
        for typed in row["typed"]:
            verdict = "right" if typed["right"] else "WRONG"
            unsure = ", unsure" if typed["unsure"] else ""
            print(
                f"{row['model']}: {verdict} at {typed['confidence']:.1%}{unsure}: {typed['text']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
