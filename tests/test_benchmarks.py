"""The benchmark scripts' own logic, on the tiny model: what they choose on must be unseen."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import MAX_LENGTH, make_frame

import infer
import train
from benchmarks import reading
from training import data
from training.config import saved_config
from utils import encode


def test_reading_compares_strategies_on_reviews_the_model_never_saw(model_dir, data_dir):
    loaded = data.load_data(str(data_dir))
    reviews = reading.unseen_reviews(model_dir, loaded, "train", 40)
    config = saved_config(json.loads((model_dir / "metrics.json").read_text())["config"], "")
    used = data.make_splits(loaded, config)
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


@pytest.mark.slow
def test_a_cell_trains_main_py_as_shipped_and_tests_each_reading(base_model, data_dir, tmp_path):
    from benchmarks import accuracy

    cell = accuracy.CELLS["default"]
    args = argparse.Namespace(subset=40, model=str(base_model), data=str(data_dir))
    config = accuracy.cell_config(cell, args, 1, tmp_path)
    set_by_the_benchmark = {"subset", "model", "data", "seed", "test_subset", "output_dir"}
    shipped = train.TrainConfig()
    assert {k: v for k, v in asdict(config).items() if k not in set_by_the_benchmark} == {
        k: v for k, v in asdict(shipped).items() if k not in set_by_the_benchmark
    }
    tiny = replace(config, max_length=MAX_LENGTH, val_reviews=12, learning_rate=2e-3)
    reviews = data.load_data(str(data_dir))
    test = accuracy.fixed_test_sample(reviews, 20)
    # A short set that is the test sample again reads as the served (sliding) row does.
    rows = accuracy.run_cell(cell, tiny, reviews, test, short={"again": test})
    assert [row["inference"] for row in rows] == ["head+tail", "sliding"]
    assert all(row["again_accuracy"] == rows[1]["accuracy"] for row in rows)
    tokens = encode(train.load_base(tiny)[0], test["text"])["tokens"]
    long = sum(n > MAX_LENGTH for n in tokens)
    assert all(row["long_reviews"] == long and 0 <= row["accuracy"] <= 1 for row in rows)
    accuracy.append_rows(tmp_path / "accuracy.csv", rows, accuracy.columns(rows))
    accuracy.write_report(accuracy.read_rows(tmp_path / "accuracy.csv"), tmp_path, "tiny", 20)
    table = (tmp_path / "accuracy.md").read_text()
    assert "| default | main.py as shipped" in table and "| again % |" in table
    assert f"Machine: {accuracy.machine()}." in table  # as the rows recorded it
    assert (tmp_path / "learning_curve.png").stat().st_size > 0


@pytest.mark.slow
def test_the_speed_table_gives_each_path_its_median_over_rounds(model_dir, data_dir):
    from benchmarks import inference

    measured = {
        name: inference.measure(model_dir, name, str(data_dir), 8)
        for name in ("pipeline", "torch fp32")
    }
    measured = json.loads(json.dumps(measured))  # latency keys as strings, as saved
    base = measured["pipeline"]
    assert len(base["labels"]) == 8 and base["reviews_per_s"] > 0

    def scaled(row: dict, factor: float, peak: float) -> dict:
        latency = {w: {**v, "p50_ms": v["p50_ms"] * factor} for w, v in row["latency"].items()}
        return {
            **row,
            "reviews_per_s": row["reviews_per_s"] / factor,
            "latency": latency,
            "peak_mb": peak,
        }

    rounds = [scaled(base, 1.0, 900.0), scaled(base, 3.0, 950.0), scaled(base, 1.5, 800.0)]
    row = inference.median_row(rounds)
    assert row["reviews_per_s"] == base["reviews_per_s"] / 1.5
    assert row["rounds"] == [r["reviews_per_s"] for r in rounds]
    assert row["latency"]["20"]["p50_ms"] == base["latency"]["20"]["p50_ms"] * 1.5
    assert row["peak_mb"] == 950.0
    assert rounds[1]["latency"] == scaled(base, 3.0, 0)["latency"]  # the rounds as they were
    _, gold = inference.reviews(str(data_dir), 8)
    lines = inference.table([row, measured["torch fp32"]], gold).splitlines()
    assert lines[2].startswith(f"| pipeline | head | {row['reviews_per_s']:.1f} | 1.00x |")
    assert "| 950 |" in lines[2] and lines[3].endswith("| 100.00% |")


@pytest.mark.slow
def test_the_scale_table_scores_every_row_on_each_path(model_dir, data_dir, tmp_path):
    from benchmarks import scale

    out = tmp_path / "scale.json"
    assert scale.main(
        ["--model-dir", str(model_dir), "--data", str(data_dir), "--rows", "250",
         "--paths", "list", "stream", "--out", str(out)]
    ) == 0  # fmt: skip
    rows = json.loads(out.read_text())
    assert [(row["path"], row["rows"]) for row in rows] == [("list", 250), ("stream", 250)]
    assert all(row["rows_per_second"] > 0 and row["peak_mb"] > 50 for row in rows)


def test_a_childs_peak_memory_is_its_own_not_its_parents():
    from benchmarks import scale

    held = bytearray(400 * 2**20)  # touched, so the parent's resident set holds 400 MB
    held[::4096] = b"\x01" * len(held[::4096])
    code = "from benchmarks.scale import peak_mb; print(peak_mb())"
    root = Path(__file__).parents[1]
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert 5 < int(child.stdout) < 300 < scale.peak_mb()


@pytest.mark.slow
def test_the_speed_benchmark_runs_as_documented_with_some_of_its_paths(
    model_dir, data_dir, tmp_path
):
    """`python -m benchmarks.inference` from the repository root with no PYTHONPATH: each path
    runs in a child process of its own, and a table without PyTorch fp32 says so."""
    import os

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    paths = ["pipeline", "onnx int8 (fused, served without AMX)"]
    command = [sys.executable, "-m", "benchmarks.inference", "--model-dir", str(model_dir)]
    command += ["--data", str(data_dir), "--reviews", "8", "--rounds", "1", "--paths", *paths]
    root = Path(__file__).parents[1]
    done = subprocess.run(
        [*command, "--out", str(tmp_path)], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (tmp_path / "inference.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [f"| {path}" for path in paths]
    assert all(line.endswith("| not measured |") for line in lines[2:])
    assert lines[2].split(" | ")[3] == "1.00x"


BENCHMARKS = sorted(
    path.stem
    for path in Path(__file__).parents[1].joinpath("benchmarks").glob("*.py")
    if path.stem != "__init__"
)


def run_documented(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m benchmarks.MODULE ARGS` as the docstrings write it: from the repository root,
    with no PYTHONPATH."""
    import os

    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("module", BENCHMARKS)
def test_every_benchmark_starts_as_documented(module):
    done = run_documented(module, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--" in done.stdout  # its flags, as argparse lists them


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "flags", "printed"),
    [
        ("reading", ["--reviews", "20", "--strategies", "head", "sliding"], "| sliding |"),
        ("attributions", ["--words", "40"], "| 8 |"),
        ("scale", ["--rows", "300", "--paths", "list", "stream"], "stream"),
        ("batch_tab", ["--reviews", "20"], "20 reviews"),
    ],
)
def test_benchmarks_run_as_documented_on_a_tiny_model(model_dir, data_dir, module, flags, printed):
    done = run_documented(module, "--model-dir", str(model_dir), "--data", str(data_dir), *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert printed in done.stdout


@pytest.mark.slow
def test_the_short_review_table_runs_as_documented(model_dir, data_dir, tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    typed = make_frame(6, seed=9).assign(kind=["plain", "negation"] * 6)
    typed.to_csv(short / "typed.csv", index=False)
    args = ["--models", str(model_dir), "--data", str(data_dir), "--short", str(short)]
    done = run_documented("short_reviews", *args, "--reviews", "20")
    assert done.returncode == 0, done.stderr[-2000:]
    head, _, row = done.stdout.splitlines()[:3]
    assert "| IMDB test (20) | typed | typed: plain | typed: negation |" in head
    assert row.startswith(f"| {model_dir.name} |") and row.count("/6) |") == 2  # 6 per kind


@pytest.mark.slow
def test_the_load_benchmark_runs_as_documented(model_dir, tmp_path):
    flags = ["--clients", "2", "--seconds", "3", "--soak", "20", "--out", str(tmp_path)]
    done = run_documented("load", "--model-dir", str(model_dir), *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "MB at 5," in done.stdout  # memory read after a quarter of a short soak
    assert (tmp_path / "load.md").read_text() in done.stdout  # written where --out says
