"""`python main.py compare A.yaml B.yaml ...`: recipes side by side on the same data, splits and
seed, in a table and a chart; the best by validation F1 (never by test) is published.

    compare({"standard": a, "high-lr": b}, train.run, Path("comparison"), Path("model"))

Each recipe trains into `OUTPUT/runs/NAME/`, a model folder of its own with its card and
metrics; `comparison.csv`, `comparison.md` and `comparison.png` sit in `OUTPUT/`.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.config import TrainConfig, UsageError, flag
from training.publish import publish

logger = logging.getLogger(__name__)

# What makes two runs comparable: the same reviews, drawn and split the same way.
SHARED = ("data", "extra_data", "subset", "test_subset", "val_reviews", "seed", "short_data")
COLUMNS = {  # column: (heading, format)
    "recipe": ("recipe", "{}"),
    "validation_f1": ("validation F1", "{:.2%}"),
    "best_epoch": ("best epoch", "{:g}"),
    "test_accuracy": ("test accuracy", "{:.2%}"),
    "test_f1": ("test F1", "{:.2%}"),
    "train_minutes": ("training (min)", "{:.1f}"),
}


def check_comparable(recipes: dict[str, TrainConfig]) -> None:
    """UsageError naming a setting the recipes disagree on that would make them incomparable."""
    if len(recipes) < 2:
        raise UsageError("compare needs two or more recipe files.")
    for name in SHARED:
        values = {recipe: getattr(config, name) for recipe, config in recipes.items()}
        if len(set(values.values())) > 1:
            given = ", ".join(f"{recipe}: {value!r}" for recipe, value in values.items())
            raise UsageError(
                f"The recipes differ in {name} ({given}), so they would not see the same "
                f"reviews. Remove it from the files, or set it for all: {flag(name)} VALUE."
            )


def compare(
    recipes: dict[str, TrainConfig],
    train: Callable[[TrainConfig], dict[str, Any]],
    output: Path,
    publish_to: Path,
) -> list[dict[str, Any]]:
    """Train every recipe with `train` (`train.run`), write the comparison, publish the best
    by validation F1 to `publish_to`; return the table's rows, best first."""
    check_comparable(recipes)
    rows = []
    for name, config in recipes.items():
        folder = output / "runs" / name
        logger.info("Recipe %s (%d of %d) into %s/", name, len(rows) + 1, len(recipes), folder)
        report = train(dataclasses.replace(config, output_dir=str(folder)))
        rows.append(row(name, report))
    rows.sort(key=lambda r: -r["validation_f1"])  # stable: ties keep the files' order
    write_comparison(rows, output)
    best = output / "runs" / rows[0]["recipe"]
    publish(lambda folder: shutil.copytree(best, folder, dirs_exist_ok=True), publish_to)
    logger.info(
        "Best by validation F1: %s (%.2f%%), published to %s/. Comparison in %s/comparison.md",
        rows[0]["recipe"],
        100 * rows[0]["validation_f1"],
        publish_to,
        output,
    )
    return rows


def row(name: str, report: dict[str, Any]) -> dict[str, Any]:
    """One recipe's line: validation and test figures, each short set's accuracy, time."""
    config = report["config"]
    out = {
        "recipe": name,
        "validation_f1": report["validation"]["f1"],
        "best_epoch": report["validation"]["epoch"],
        "test_accuracy": report["test"]["accuracy"],
        "test_f1": report["test"]["f1"],
    }
    out |= {f"{short}_accuracy": m["accuracy"] for short, m in report["short"].items()}
    out["train_minutes"] = report["train"]["seconds"] / 60
    keys = ("learning_rate", "epochs", "batch_size", "grad_accum", "weight_decay", "warmup_ratio")
    return out | {key: config[key] for key in keys} | {"train_layers": config["train_layers"]}


def write_comparison(rows: list[dict[str, Any]], output: Path) -> None:
    """comparison.csv (every column), comparison.md (the figures) and comparison.png."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / "comparison.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    shorts = [key for key in rows[0] if key.endswith("_accuracy") and key != "test_accuracy"]
    columns = {**COLUMNS, **{key: (key.removesuffix("_accuracy"), "{:.2%}") for key in shorts}}
    lines = [
        "| " + " | ".join(heading for heading, _ in columns.values()) + " |",
        "| --- |" + " ---: |" * (len(columns) - 1),
        *(
            "| " + " | ".join(fmt.format(r[key]) for key, (_, fmt) in columns.items()) + " |"
            for r in rows
        ),
        "",
        f"Sorted by validation F1; the first is published. Same data, splits and seed for all "
        f"({rows[0]['recipe']} best). Settings of each recipe: comparison.csv.",
    ]
    (output / "comparison.md").write_text("\n".join(lines) + "\n")
    plot_comparison(rows, shorts, output / "comparison.png")


def plot_comparison(rows: list[dict[str, Any]], shorts: list[str], path: Path) -> None:
    """Grouped bars: validation F1, test accuracy and F1, short-set accuracy per recipe, with
    each recipe's training minutes in a second panel."""
    import matplotlib.pyplot as plt
    import numpy as np

    keys = ["validation_f1", "test_accuracy", "test_f1", *shorts]
    names = [r["recipe"] for r in rows]
    x, width = np.arange(len(rows)), 0.8 / len(keys)
    fig, (bars, time) = plt.subplots(
        1, 2, figsize=(11, 5), dpi=120, gridspec_kw={"width_ratios": [3, 1]}
    )
    for i, key in enumerate(keys):
        values = [100 * r[key] for r in rows]
        bars.bar(x + (i - (len(keys) - 1) / 2) * width, values, width, label=key.replace("_", " "))
    low = min(100 * r[key] for r in rows for key in keys)
    bars.set(xticks=x, xticklabels=names, ylabel="%", ylim=(max(0, low - 5), 100))
    # Below the panel: inside it, the legend would hide the bars of the last recipes.
    bars.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    bars.set_title("Recipes on the same data (best by validation F1 first)")
    # Horizontal, so the recipes' names never overlap however long they are.
    time.barh(x, [r["train_minutes"] for r in rows], color="gray")
    time.set(yticks=x, yticklabels=names, xlabel="minutes", title="Training time")
    time.invert_yaxis()  # the same order as the bars, top to bottom
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
