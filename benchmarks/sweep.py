"""Recipe search: many recipes over many seeds, chosen on held-out training reviews.

    python benchmarks/sweep.py --model FOLDER --data FOLDER --out DIR --workers 8 --minutes 7
    python benchmarks/sweep.py --report --out DIR          # rewrite DIR/sweep.md from the CSV

Made for a GPU, where a 1,000-review run takes seconds instead of minutes: `--workers`
processes share it, each claiming the next (recipe, seed) job until `--minutes` have passed.
A job trains as `benchmarks/accuracy.py` does (1,000 training reviews, the epoch picked on 500
more), then reads, with sliding windows, 2,000 *tuning* reviews (training-split reviews the run
neither trained nor validated on: recipes are compared there) and the benchmark's fixed 2,000
test reviews (reported beside, never chosen on). Rows go to `DIR/sweep.csv` as jobs finish;
jobs already there are skipped, so a search can resume. Times are the GPU's: a recipe's CPU
cost is measured by `benchmarks/accuracy.py` on the machine the time budget is set for.

Some recipes change what `TrainConfig` has no flag for (label smoothing, the rate's schedule):
they are applied to the Trainer here, and a setting becomes a flag once it earns its place in
the default (as `--dropout` did).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # accuracy.py, beside this file

import accuracy

import train

# Every recipe is this one with its overrides: main.py's recipe when the search was run.
BASE = accuracy.HEAD_RATE
TUNING_REVIEWS = 2000  # held-out training reviews per job: one standard error is 0.75 points
SEEDS = tuple(range(42, 50))
COLUMNS = (
    "recipe",
    "seed",
    "tuning_accuracy",
    "test_accuracy",
    "test_head_tail_accuracy",
    "validation_f1",
    "best_epoch",
    "train_seconds",
    "device",
    "finished",
)

logger = logging.getLogger("sweep")


@dataclass(frozen=True)
class Recipe:
    """The `base` recipe with TrainConfig `overrides` and Trainer `extras` (no flag yet)."""

    name: str
    about: str
    overrides: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # label_smoothing, schedule


# LP-FT as published: the head fitted first, then learning at the encoder's rate.
PROBE_ONE_RATE = {"head_init": "probe", "head_learning_rate": None}
RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe("base", "main.py as shipped when the search ran: the new head at 1e-3"),
        Recipe("lr-8e-5", "the encoder at 8e-5", {"learning_rate": 8e-5}),
        Recipe("lr-3e-5", "the encoder at 3e-5", {"learning_rate": 3e-5}),
        Recipe("head-lr-3e-3", "the head at 3e-3", {"head_learning_rate": 3e-3}),
        Recipe("warmup-0", "no warm-up", {"warmup_ratio": 0.0}),
        Recipe("dropout-0", "no dropout in the encoder or head", {"dropout": 0.0}),
        Recipe("smooth-0.1", "label smoothing 0.1", extras={"label_smoothing": 0.1}),
        Recipe("cosine", "cosine decay after warm-up", extras={"schedule": "cosine"}),
        Recipe("constant", "a constant rate after warm-up", extras={"schedule": "constant"}),
        Recipe("probe", "the head first fitted as a logistic regression", {"head_init": "probe"}),
        Recipe(
            "probe-one-rate",
            "the fitted head learning at the encoder's 5e-5 (LP-FT as published)",
            PROBE_ONE_RATE,
        ),
        Recipe(
            "probe-one-rate-dropout-0",
            "probe-one-rate without dropout",
            PROBE_ONE_RATE | {"dropout": 0.0},
        ),
        Recipe(
            "probe-one-rate-warmup-0",
            "probe-one-rate without warm-up",
            PROBE_ONE_RATE | {"warmup_ratio": 0.0},
        ),
        Recipe(
            "probe-one-rate-dropout-0-warmup-0",
            "probe-one-rate without dropout or warm-up",
            PROBE_ONE_RATE | {"warmup_ratio": 0.0, "dropout": 0.0},
        ),
        Recipe(
            "epochs-3-grouped",
            "3 epochs, batches grouped by length (1.3x the CPU time)",
            {"epochs": 3.0, "group_by_length": True},
        ),
        Recipe(
            "lr-1e-4-decay-0.8",
            "the top layer at 1e-4, each below at 0.8 times the one above",
            {"learning_rate": 1e-4, "layer_decay": 0.8},
        ),
        Recipe("head-fraction-0.5", "head+tail with half from the start", {"head_fraction": 0.5}),
    )
}


def apply_extras(trainer: Any, extras: dict[str, Any]) -> None:
    """Set the Trainer's label smoothing and schedule as `extras` says."""
    from torch import nn

    if "label_smoothing" in extras:
        # The mean over the micro-batch, as the model's own loss is (see train.build_trainer).
        smoothing = extras["label_smoothing"]

        def smoothed(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
            return nn.functional.cross_entropy(outputs["logits"], labels, label_smoothing=smoothing)

        trainer.compute_loss_func = smoothed
    if "schedule" in extras:
        trainer.args.lr_scheduler_type = {
            "cosine": "cosine",
            "constant": "constant_with_warmup",
        }[extras["schedule"]]


def run_job(recipe: Recipe, seed: int, data: dict, test: Any, args: argparse.Namespace) -> dict:
    """Train `recipe` on `seed`; its accuracy on the tuning and test reviews, read sliding."""
    import torch
    from transformers import set_seed

    sizes = {"val_reviews": args.val_reviews, "max_length": args.max_length}
    cell = accuracy.Cell(recipe.name, recipe.about, BASE | sizes | recipe.overrides)
    work = Path(args.scratch) / f"{recipe.name}-{seed}"
    config = accuracy.cell_config(cell, args, seed, work)
    splits = train.make_splits(data, config) | {"test": test}
    tokenizer, trainer = train.prepare(config, splits)
    apply_extras(trainer, recipe.extras)
    set_seed(seed)
    try:
        trained = trainer.train()
    finally:
        shutil.rmtree(work, ignore_errors=True)  # two checkpoints of 90 MB for MiniLM
    best = train.best_epoch(trainer.state.log_history)
    classifier = train.serving_classifier(trainer.model, tokenizer, config)
    tuning = accuracy.tuning_sample(data, splits, seed, args.tuning_reviews)
    tuned, _ = train.test_split(classifier, tuning, 64)
    tested, _ = train.test_split(classifier, test, 64)
    head_tail, _ = train.test_split(replace(classifier, truncation="head+tail"), test, 64)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {
        "recipe": recipe.name,
        "seed": seed,
        "tuning_accuracy": round(tuned["accuracy"], 4),
        "test_accuracy": round(tested["accuracy"], 4),
        "test_head_tail_accuracy": round(head_tail["accuracy"], 4),
        "validation_f1": round(best["f1"], 4),
        "best_epoch": best["epoch"],
        "train_seconds": round(trained.metrics["train_runtime"], 1),
        "device": device,
        "finished": time.strftime("%Y-%m-%d %H:%M"),
    }


def jobs(recipes: Sequence[str], seeds: Sequence[int]) -> list[tuple[str, int]]:
    """Every (recipe, seed), a seed at a time: a search cut short has every recipe on the
    same seeds, not some recipes on all of them."""
    return [(recipe, seed) for seed in seeds for recipe in recipes]


def claim(folder: Path, index: int) -> bool:
    """Whether this process won job `index` (a file created once, atomically, by one winner)."""
    try:
        os.close(os.open(folder / f"job-{index}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def worker(args: argparse.Namespace) -> int:
    """Claim and run jobs until none is left or the deadline has passed."""
    import datasets

    datasets.disable_progress_bars()
    out, done = Path(args.out), {(row["recipe"], int(row["seed"])) for row in read(args.out)}
    data = train.load_data(args.data)
    test = accuracy.fixed_test_sample(data, args.test_reviews)
    claims = out / "claims"
    for index, (name, seed) in enumerate(jobs(args.recipes, args.seeds)):
        if time.time() > args.stop_at:
            break
        if (name, seed) in done or not claim(claims, index):
            continue
        started = time.perf_counter()
        row = run_job(RECIPES[name], seed, data, test, args)
        # Kept on disk the moment the job ends: a search cut short keeps its finished jobs.
        accuracy.append_rows(out / f"rows-{args.worker}.csv", [row], COLUMNS)
        logger.info("RESULT %s (%.0f s)", row, time.perf_counter() - started)
    return 0


def read(folder: Path | str) -> list[dict[str, str]]:
    """The finished rows: sweep.csv and any worker's rows not yet merged into it."""
    rows = []
    for path in sorted(Path(folder).glob("*.csv")):
        if path.name == "sweep.csv" or path.name.startswith("rows-"):
            rows += accuracy.read_rows(path)
    return rows


def merge(folder: Path) -> list[dict[str, str]]:
    """Fold the workers' rows into sweep.csv (one row per recipe and seed) and remove theirs."""
    rows = {(row["recipe"], row["seed"]): row for row in read(folder)}
    merged = sorted(rows.values(), key=lambda r: (int(r["seed"]), order(r["recipe"])))
    partial = folder / "sweep.csv.partial"
    partial.unlink(missing_ok=True)  # left by a merge cut short
    accuracy.append_rows(partial, merged, COLUMNS)
    partial.replace(folder / "sweep.csv")
    for path in folder.glob("rows-*.csv"):
        path.unlink()
    return merged


def order(name: str) -> int:
    return list(RECIPES).index(name) if name in RECIPES else len(RECIPES)


def summary(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Per recipe: mean and standard deviation of each accuracy over its seeds, and its mean
    difference from `base` on the seeds both ran, with that difference's standard error."""
    by: dict[str, dict[int, dict[str, str]]] = {}
    for row in rows:
        by.setdefault(row["recipe"], {})[int(row["seed"])] = row
    base = by.get("base", {})
    table = []
    for name in sorted(by, key=order):
        runs = by[name]
        line: dict[str, Any] = {"recipe": name, "seeds": len(runs)}
        for key in ("tuning_accuracy", "test_accuracy", "test_head_tail_accuracy"):
            values = np.array([float(r[key]) for r in runs.values()]) * 100
            line[key] = (values.mean(), values.std(ddof=1) if len(values) > 1 else float("nan"))
            paired = [100 * (float(runs[s][key]) - float(base[s][key])) for s in runs if s in base]
            if name != "base" and len(paired) > 1:
                error = np.std(paired, ddof=1) / np.sqrt(len(paired))
                line[f"{key}_gain"] = (float(np.mean(paired)), float(error))
        line["best_epochs"] = ", ".join(f"{float(r['best_epoch']):g}" for r in runs.values())
        table.append(line)
    return table


def write_report(rows: list[dict[str, str]], folder: Path) -> None:
    """`sweep.md`: the summary, recipes in the order RECIPES lists them."""

    def pm(pair: tuple[float, float] | None) -> str:
        if pair is None:
            return "n/a"
        mean, spread = pair
        return f"{mean:.2f}" if np.isnan(spread) else f"{mean:.2f} ± {spread:.2f}"

    devices = sorted({row["device"] for row in rows})
    lines = [
        f"Device: {', '.join(devices)}. Each run trains as `benchmarks/accuracy.py`'s cells "
        "do, on its seed. Accuracy (%) read sliding: mean ± standard deviation over "
        "seeds; gain: the mean paired difference from `base` on the same seeds ± its "
        "standard error.",
        "",
        "| recipe | about | seeds | tuning accuracy | tuning gain | test accuracy | test gain "
        "| test head+tail | best epochs |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for line in summary(rows):
        recipe = RECIPES.get(line["recipe"])
        lines.append(
            f"| {line['recipe']} | {recipe.about if recipe else ''} | {line['seeds']} "
            f"| {pm(line['tuning_accuracy'])} | {pm(line.get('tuning_accuracy_gain'))} "
            f"| {pm(line['test_accuracy'])} | {pm(line.get('test_accuracy_gain'))} "
            f"| {pm(line['test_head_tail_accuracy'])} | {line['best_epochs']} |"
        )
    (folder / "sweep.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="base model folder")
    parser.add_argument("--data", help="folder with train/test parquet files")
    parser.add_argument("--out", type=Path, default=accuracy.RESULTS / "sweep", help="results")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--subset", type=int, default=accuracy.DEFAULT_SUBSET)
    parser.add_argument("--val-reviews", type=int, default=BASE["val_reviews"])
    parser.add_argument("--max-length", type=int, default=256, help="tokens per window")
    parser.add_argument("--tuning-reviews", type=int, default=TUNING_REVIEWS)
    parser.add_argument("--test-reviews", type=int, default=accuracy.TEST_REVIEWS)
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the device")
    parser.add_argument("--minutes", type=float, default=60, help="no job starts after this")
    parser.add_argument("--scratch", default="/tmp/sweep", help="per-job checkpoints")
    parser.add_argument("--report", action="store_true", help="rewrite sweep.md only")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--stop-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.worker is not None:
        return worker(args)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        if not (args.model and args.data):
            parser.error("--model and --data are needed to train (or give --report)")
        claims = args.out / "claims"
        claims.mkdir(exist_ok=True)
        for old in claims.iterdir():  # claims of an earlier sitting: its rows say what is done
            old.unlink()
        stop_at = time.time() + 60 * args.minutes
        command = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
        workers = [
            subprocess.Popen([*command, "--worker", str(i), "--stop-at", str(stop_at)])
            for i in range(args.workers)
        ]
        failed = sum(process.wait() != 0 for process in workers)
        if failed:
            logger.error("%d of %d workers failed; finished jobs are kept", failed, len(workers))
    rows = merge(args.out)
    write_report(rows, args.out)
    logger.info("%d jobs in %s", len(rows), args.out / "sweep.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
