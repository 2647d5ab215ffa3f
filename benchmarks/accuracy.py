"""Accuracy benchmark on real IMDB data: which recipe reads reviews best for its compute.

    python -m benchmarks.accuracy --model BASE --data IMDB   # every cell, in protocol order
    python -m benchmarks.accuracy ... --cells default head --seeds 42 43
    python -m benchmarks.accuracy ... --short SHORT   # short sets read too

Each cell fine-tunes the base model on a stratified subset of the training split and tests it
on one fixed, stratified sample of test reviews (the same for every cell). A finished cell is
appended to `results/accuracy.csv` at once, and cells already there are skipped, so the
protocol can run across several sittings; `results/accuracy.md` and `learning_curve.png` are
rewritten from the CSV after every cell. `--report` rewrites them without training.
About 470 lines, past the usual 350: the cells' table of flags, the protocol's runner and its
report are one measurement, read together.

With `--short`, each cell also reads every short-review set of that folder (one column each:
chosen on, never trained on). Cells marked `protocol=False` (the learning curve past 2,000
reviews: hours on a CPU) run only when `--cells` names them.

Each cell is `main.py` as shipped with some of its flags changed. Cells of earlier recipes,
whose settings the library no longer has, are in `results/history/` (benchmarks/NOTES.md).

About 470 lines, past the usual 350, kept as one file: the protocol's cells, one cell's run,
and the CSV, table and plot it keeps are one script a reader follows top to bottom.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import train
from training import data, scoring
from utils import HEAD_FRACTION

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
TEST_REVIEWS = 2000  # the fixed test sample, half of each label
TEST_SEED = 2026  # draws that sample; never changes, so every cell meets the same reviews
TUNING_REVIEWS = 1000  # held-out training reviews on which settings are chosen, never the test
COLUMNS = (
    "cell",
    "seed",
    "train_reviews",
    "max_length",
    "truncation",
    "head_fraction",
    "inference",
    "accuracy",
    "f1",
    "long_reviews",
    "long_accuracy",
    "best_epoch",
    "train_seconds",
    "train_reviews_per_second",
    "test_reviews_per_second",
    "tuning_accuracy",
    "last_epoch_accuracy",
    "wall_seconds",
    "finished",
    "machine",
)
SHORT_SUFFIX = "_accuracy"  # a short-review set's column: its name, then this


@dataclass(frozen=True)
class Cell:
    """One recipe: main.py's flags as shipped, with `overrides` (TrainConfig fields)."""

    name: str
    about: str
    overrides: dict[str, Any] = field(default_factory=dict)
    inference: tuple[str, ...] = ("head+tail", "sliding")  # strategies tested
    curve: str = ""  # the learning-curve line this cell is a point of, if any
    protocol: bool = True  # run when --cells names none; False: too long for a CPU sitting


DEFAULT_CURVE = "the default recipe"
CELLS = {
    cell.name: cell
    for cell in (
        Cell(
            "default",
            "main.py as shipped: head+tail (1/4 head) at 256 tokens, mean pooling, the head "
            "first fitted as a logistic regression, no dropout, the epoch picked on 500 more "
            "training-split reviews",
            curve=DEFAULT_CURVE,
        ),
        Cell(
            "head",
            "the default, trained on each review's first 256 tokens",
            {"truncation": "head"},
            ("head", "sliding"),
        ),
        Cell("random-head", "the default with --head-init random", {"head_init": "random"}),
        Cell(
            "cls", "the default with --pooling cls (the base model's own head)", {"pooling": "cls"}
        ),
        Cell("tokens-512", "the default at 512 tokens", {"max_length": 512}),
        *(
            Cell(
                f"default-{n}",
                f"the default on {n:,} training reviews",
                {"subset": n},
                curve=DEFAULT_CURVE,
                protocol=n <= 2000,  # 4,000 reviews train for 25 to 40 minutes on 2 cores
            )
            for n in (500, 2000, 4000, 8000, 16000)
        ),
    )
}
DEFAULT_SUBSET = 1000

logger = logging.getLogger("accuracy")


def fixed_test_sample(reviews: dict[str, Any], n: int = TEST_REVIEWS) -> Any:
    """`n` test reviews, stratified, drawn with TEST_SEED: the same in every cell."""
    rng = np.random.default_rng(TEST_SEED)
    labels = np.asarray(reviews["test"]["label"])
    rows = data.balanced_sample(labels, n, rng, "--test-reviews")
    return reviews["test"].select(rows)


def cell_config(cell: Cell, args: argparse.Namespace, seed: int, work: Path) -> train.TrainConfig:
    overrides = {"subset": args.subset} | cell.overrides
    return train.TrainConfig(
        **overrides,
        model=args.model,
        data=args.data,
        seed=seed,
        test_subset=2,  # replaced by the fixed sample
        output_dir=str(work / "model"),
    )


def run_cell(
    cell: Cell, config: train.TrainConfig, reviews: dict, test: Any, short: dict | None = None
) -> list[dict]:
    """Train one cell and test it with each inference strategy; one CSV row per strategy, with
    the accuracy on each `short` set (name: dataset) read as served."""
    from transformers import set_seed

    started = time.perf_counter()
    splits = data.make_splits(reviews, config) | {"test": test}
    tokenizer, trainer = train.prepare(config, splits)
    kept = keep_last_epoch(trainer)
    set_seed(config.seed)
    trained = trainer.train()
    best = train.best_epoch(trainer.state.log_history)
    base = {
        "cell": cell.name,
        "seed": config.seed,
        "train_reviews": len(splits["train"]),
        "max_length": config.max_length,
        "truncation": config.truncation,
        "head_fraction": HEAD_FRACTION if config.truncation == "head+tail" else "",
        "best_epoch": best["epoch"],
        "train_seconds": round(trained.metrics["train_runtime"], 1),
        "train_reviews_per_second": round(trained.metrics["train_samples_per_second"], 2),
    }
    served = train.serving_classifier(trainer.model, tokenizer, config)
    base |= {
        name + SHORT_SUFFIX: round(scoring.test_split(served, split, name)[0]["accuracy"], 4)
        for name, split in (short or {}).items()
    }
    rows = []
    for strategy in cell.inference:
        logger.info("%s seed %d: testing with %s", cell.name, config.seed, strategy)
        result = _test(config, trainer, tokenizer, test, strategy)
        rows.append(base | {"inference": strategy} | result)
    # The chosen weights are the last epoch's unless an earlier epoch won: test them then.
    if best["epoch"] == trainer.state.epoch:
        accuracy = next(r["accuracy"] for r in rows if r["inference"] == config.truncation)
    else:
        accuracy = last_epoch_accuracy(trainer, tokenizer, config, test, kept)
    rows = [row | {"last_epoch_accuracy": round(accuracy, 4)} for row in rows]
    wall = round(time.perf_counter() - started, 1)
    ran = {"wall_seconds": wall, "finished": time.strftime("%Y-%m-%d %H:%M"), "machine": machine()}
    return [row | ran for row in rows]


def short_columns(rows: list[dict]) -> dict[str, str]:
    """The short-set columns these rows have, in the order they appear, by set name
    (`sst2_validation_accuracy`: `sst2_validation`)."""
    extra = [key for row in rows for key in row if key not in COLUMNS]
    return {key: key.removesuffix(SHORT_SUFFIX) for key in dict.fromkeys(extra)}


def columns(rows: list[dict]) -> tuple[str, ...]:
    """COLUMNS, then the short-set columns these rows have."""
    return COLUMNS + tuple(short_columns(rows))


def keep_last_epoch(trainer: Any) -> dict[str, Any]:
    """Copy the weights as each epoch ends, into the dict returned: after training it holds the
    last epoch's weights, which the Trainer deletes when an earlier epoch scored better."""
    from transformers import TrainerCallback

    kept: dict[str, Any] = {}

    class Keep(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            kept.update({k: v.detach().clone() for k, v in kwargs["model"].state_dict().items()})

    trainer.add_callback(Keep())
    return kept


def last_epoch_accuracy(
    trainer: Any, tokenizer: Any, config: train.TrainConfig, test: Any, weights: dict
) -> float:
    """Test accuracy of the last epoch's weights, read as training read: how much choosing the
    epoch on the small validation split gained or lost. Diagnosis only; it chooses nothing."""
    import copy

    model = copy.deepcopy(trainer.model)
    model.load_state_dict(weights)
    as_trained = replace(config, inference_truncation=config.truncation)
    classifier = train.serving_classifier(model, tokenizer, as_trained)
    metrics, _ = scoring.test_split(classifier, test)
    return metrics["accuracy"]


def tuning_sample(
    reviews: dict, splits: dict, seed: int, n: int = TUNING_REVIEWS, what: str = "tuning sample"
) -> Any:
    """`n` training-split reviews, stratified, that the cell neither trained nor validated
    on: settings are compared here, so the test reviews choose nothing."""
    used = set(splits["train"]["text"]) | set(splits["validation"]["text"])
    free = [i for i, text in enumerate(reviews["train"]["text"]) if text not in used]
    labels = np.asarray(reviews["train"]["label"])[free]
    rng = np.random.default_rng(seed + TEST_SEED)
    rows = data.balanced_sample(labels, n, rng, what)
    return reviews["train"].select([free[i] for i in rows])


def _test(config: Any, trainer: Any, tokenizer: Any, test: Any, strategy: str) -> dict:
    """Accuracy, F1, accuracy on reviews longer than the budget, and test reviews/s."""
    classifier = train.serving_classifier(
        trainer.model, tokenizer, replace(config, inference_truncation=strategy)
    )
    metrics, rows = scoring.test_split(classifier, test)
    labels, predicted = np.asarray(test["label"]), np.asarray(rows["predicted"])
    long = np.asarray(rows["tokens"]) > config.max_length
    correct = predicted == labels
    return {
        "accuracy": round(metrics["accuracy"], 4),
        "f1": round(metrics["f1"], 4),
        "long_reviews": int(long.sum()),
        "long_accuracy": round(float(correct[long].mean()), 4),
        "test_reviews_per_second": metrics["reviews_per_second"],
    }


# ---------------------------------------------------------------------------------------------
# Results files


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def append_rows(path: Path, rows: list[dict], columns: Sequence[str] = COLUMNS) -> None:
    """Append finished rows; the file is flushed to disk before the next cell starts."""
    old = read_rows(path)
    new = not old or list(old[0]) != list(columns)
    if new and old:  # written before a column was added: rewrite it with the new header
        rows = [{key: row.get(key) or "" for key in columns} for row in old] + rows
    with path.open("w" if new else "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        if new:
            writer.writeheader()
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, {gpu}, Python {platform.python_version()}"
    )


def machines(rows: list[dict[str, str]]) -> str:
    """Where the rows ran, as they recorded it (rows before 2026-12-04 did not)."""
    named = sorted({row["machine"] for row in rows if row.get("machine")})
    if not named:
        return "Machine: not recorded."
    unnamed = "" if all(row.get("machine") for row in rows) else " Earlier rows: not recorded."
    return f"Machine: {'; '.join(named)}.{unnamed}"


def write_report(rows: list[dict[str, str]], folder: Path, model: str, test_reviews: int) -> None:
    """`accuracy.md` (a table, seeds pooled as mean ± half-range) and `learning_curve.png`."""
    groups: dict[tuple, list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["cell"], row["inference"]), []).append(row)

    def stat(items: list[dict[str, str]], key: str, scale: float = 1, digits: int = 1) -> str:
        values = [float(item[key]) * scale for item in items if item.get(key)]
        if not values:
            return "n/a"
        text = f"{np.mean(values):.{digits}f}"
        if len(values) > 1:
            text += f" ± {(max(values) - min(values)) / 2:.{digits}f}"
        return text

    shorts = short_columns(rows)
    lines = [
        f"Base model: `{Path(model).name}`. Test: the same {test_reviews:,} stratified IMDB test "
        f"reviews for every cell (seed {TEST_SEED}). {machines(rows)} "
        "With two seeds, a value reads mean ± half the spread.",
        "",
        "| cell | recipe | train reviews | tokens | trained on | read at test | seeds "
        "| accuracy % | on long reviews % (n) | F1 % | train s | train reviews/s "
        "| test reviews/s | held-out training reviews % | best epoch | last epoch's accuracy % |"
        + "".join(f" {name} % |" for name in shorts.values()),
        "| --- | --- | ---: | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- | ---: |" + " ---: |" * len(shorts),
    ]
    order = list(CELLS)
    for (name, inference), items in sorted(
        groups.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0])
    ):
        first = items[0]
        epochs = ", ".join(f"{float(item['best_epoch']):g}" for item in items)
        about = CELLS[name].about if name in CELLS else ""
        trained_on = first["truncation"]
        if trained_on == "head+tail" and first.get("head_fraction"):
            trained_on += f" ({float(first['head_fraction']):.0%} head)"
        lines.append(
            f"| {name} | {about} | {first['train_reviews']} | {first['max_length']} "
            f"| {trained_on} | {inference} "
            f"| {', '.join(item['seed'] for item in items)} | {stat(items, 'accuracy', 100)} "
            f"| {stat(items, 'long_accuracy', 100)} ({first['long_reviews']}) "
            f"| {stat(items, 'f1', 100)} | {stat(items, 'train_seconds', digits=0)} "
            f"| {stat(items, 'train_reviews_per_second', digits=2)} "
            f"| {stat(items, 'test_reviews_per_second')} | {stat(items, 'tuning_accuracy', 100)} "
            f"| {epochs} "
            f"| {stat(items, 'last_epoch_accuracy', 100)} |"
            + "".join(f" {stat(items, column, 100)} |" for column in shorts)
        )
    (folder / "accuracy.md").write_text("\n".join(lines) + "\n")
    plot_learning_curve(rows, folder / "learning_curve.png", test_reviews)


def plot_learning_curve(rows: list[dict[str, str]], path: Path, test_reviews: int) -> None:
    """Accuracy against training reviews, a line per recipe (cells marked `curve`) and test
    set: the IMDB test reviews, and each short-review set the rows hold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = {"accuracy": f"IMDB test ({test_reviews:,})"} | short_columns(rows)
    lines: dict[str, dict[int, list[float]]] = {}
    for row in rows:
        cell = CELLS.get(row["cell"])
        if cell and cell.curve and row["inference"] == row["truncation"]:
            for column, name in sets.items():
                if row.get(column):
                    points = lines.setdefault(f"{cell.curve}: {name}", {})
                    reviews = int(row["train_reviews"])
                    points.setdefault(reviews, []).append(100 * float(row[column]))
    if not lines:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for label, points in lines.items():
        sizes = sorted(points)
        means = [np.mean(points[n]) for n in sizes]
        spread = [(max(points[n]) - min(points[n])) / 2 for n in sizes]
        ax.errorbar(sizes, means, yerr=spread, marker="o", capsize=4, label=label)
        for n, mean in zip(sizes, means, strict=True):
            ax.annotate(f"{mean:.1f}", (n, mean), textcoords="offset points", xytext=(0, 7))
    sizes = sorted({n for points in lines.values() for n in points})
    ax.set_xscale("log", base=2)  # the curve's cells double the reviews: equal steps
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.minorticks_off()
    ax.set(
        xlabel="Reviews trained on",
        ylabel="Accuracy (%)",
        title="Learning curve (error bars: half the spread over seeds)",
    )
    ax.margins(x=0.08, y=0.15)  # room for the labels above the points
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="base model folder")
    parser.add_argument("--data", required=True, help="folder with train/test parquet files")
    parser.add_argument(
        "--cells",
        nargs="+",
        choices=list(CELLS),
        default=[name for name, cell in CELLS.items() if cell.protocol],
        help="cells, in order (default: the protocol's)",
    )
    parser.add_argument(
        "--subset", type=int, default=DEFAULT_SUBSET, help="training reviews where a cell sets none"
    )
    parser.add_argument(
        "--test-reviews", type=int, default=TEST_REVIEWS, help="size of the fixed test sample"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[42], help="one run per seed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--short", help="folder of short-review sets each cell also reads")
    parser.add_argument("--report", action="store_true", help="rewrite the table and plot only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "accuracy.csv"
    if args.report:
        write_report(read_rows(csv_path), args.out, args.model, args.test_reviews)
        return 0

    reviews = data.load_data(args.data)
    test = fixed_test_sample(reviews, args.test_reviews)
    short = data.load_short_sets(args.short) if args.short else {}
    for name in args.cells:
        for seed in args.seeds:
            done = {(row["cell"], int(row["seed"])) for row in read_rows(csv_path)}
            if (name, seed) in done:
                logger.info("%s seed %d: already in %s, skipped", name, seed, csv_path)
                continue
            work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
            try:
                config = cell_config(CELLS[name], args, seed, work)
                logger.info("%s seed %d: %s", name, seed, dataclasses.asdict(config))
                rows = run_cell(CELLS[name], config, reviews, test, short)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            append_rows(csv_path, rows, columns(read_rows(csv_path) + rows))
            write_report(read_rows(csv_path), args.out, args.model, args.test_reviews)
            for row in rows:
                logger.info("RESULT %s", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
