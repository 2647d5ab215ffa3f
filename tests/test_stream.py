"""Scoring whole files of any size: `python infer.py --input FILE --output FILE`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_frame, run_script

import infer
from serving import stream
from serving.model_folder import labels_and_reading

UNREADABLE = {9_000: "", 14_321: "12345 !!!"}  # rows that cannot be read, in the middle


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,002 reviews with an id column, two of them unreadable, as a CSV."""
    frame = make_frame(10_001, seed=5).sample(frac=1, random_state=0).reset_index(drop=True)
    frame.insert(0, "id", [f"r{i}" for i in range(len(frame))])
    for row, text in UNREADABLE.items():
        frame.loc[row, "text"] = text
    path = tmp_path_factory.mktemp("big") / "reviews.csv"
    frame.to_csv(path, index=False)
    return path


def score(model_dir: Path, source: Path, output: Path, *extra: str):
    args = ["--model-dir", str(model_dir), "--input", str(source), "--output", str(output)]
    return run_script("infer.py", *args, *extra, timeout=600)


def read_text(path: Path) -> pd.DataFrame:
    """A CSV as the stream reads it: every column text, empty fields "" (not NaN)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def assert_same_rows(path: Path, expected: Path, labels: list[str]) -> None:
    """`path` holds `expected`'s rows, columns, labels, flags and notes, and its probabilities (a
    column per name in `labels`) to 1e-6: fp32 windows are read in batches, and a probability's
    last digits depend on which rows share its batch; Ray's batches are not the local engine's
    chunks."""
    got, want = read_text(path), read_text(expected)
    assert got.columns.tolist() == want.columns.tolist()
    others = [column for column in want.columns if column not in labels]
    pd.testing.assert_frame_equal(got[others], want[others])
    # Unread rows have no probabilities: "" in the file, NaN here, equal in both.
    got_scores, want_scores = (
        frame[labels].replace("", "nan").astype(float) for frame in (got, want)
    )
    pd.testing.assert_frame_equal(got_scores, want_scores, rtol=0, atol=1e-6)


def model_labels(model_dir: Path) -> list[str]:
    """The folder's label names in class order, as serving reads them."""
    config = json.loads((model_dir / "config.json").read_text())
    return list(labels_and_reading(model_dir, config)[0])


@pytest.fixture(scope="module")
def whole(model_dir, big_csv, tmp_path_factory) -> Path:
    """The file scored in one uninterrupted run."""
    output = tmp_path_factory.mktemp("whole") / "labelled.csv"
    result = score(model_dir, big_csv, output)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Labelled 20,002 rows" in result.stdout and "resumed" not in result.stdout
    return output


def test_every_row_comes_out_in_order_with_a_note_where_it_cannot_be_read(
    model_dir, big_csv, whole
):
    source = read_text(big_csv)
    out = read_text(whole)
    assert len(out) == 20_002 and out["id"].tolist() == source["id"].tolist()
    # The input's own label column stays; the prediction gets its own name beside it.
    assert list(out.columns) == [
        "id", "text", "label", "label_predicted", "NEGATIVE", "POSITIVE", "unsure", "note"
    ]  # fmt: skip
    for row in UNREADABLE:
        assert out.loc[row, "label_predicted"] == "" and out.loc[row, "note"].startswith(
            "The review"
        )
    # The same labels as classifying the rows as one list.
    sample = source["text"].iloc[:300].tolist()
    expected = [p.label for p in infer.load(model_dir).classify(sample)]
    assert out["label_predicted"].iloc[:300].tolist() == expected
    assert not stream.parts_dir(whole).exists()


@pytest.mark.slow
def test_a_run_killed_part_way_resumes_to_the_same_file(model_dir, big_csv, whole, tmp_path):
    output = tmp_path / "labelled.csv"
    args = ["--model-dir", str(model_dir), "--input", str(big_csv), "--output", str(output)]
    killer = (
        "import os, signal, sys, infer\nfrom serving import stream\n"
        "write, written = stream.write_atomic, []\n"
        "def write_then_die(table, path):\n"
        "    write(table, path)\n"
        "    written.append(path)\n"
        "    if len(written) == 2:\n"
        "        path.with_name('part-000002.csv.tmp').write_text('half a part')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "stream.write_atomic = write_then_die\n"
        f"infer.main({args!r})\n"
    )
    assert run_script("-c", killer).returncode == -signal.SIGKILL
    assert not output.exists()
    result = score(model_dir, big_csv, output)
    assert result.returncode == 0, result.stderr[-2000:]
    resumed = 2 * stream.CHUNK_ROWS
    assert f"resumed at row {resumed:,}" in result.stdout
    assert output.read_bytes() == whole.read_bytes()


def test_parquet_and_jsonl_keep_their_columns(model_dir, tmp_path):
    frame = make_frame(30, seed=3).rename(columns={"text": "review"})
    frame["stars"] = range(len(frame))
    for suffix in (".parquet", ".jsonl"):
        source, output = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(source)
        else:
            frame.to_json(source, orient="records", lines=True)
        assert score(model_dir, source, output, "--column", "review").returncode == 0
        out = pd.read_parquet(output) if suffix == ".parquet" else pd.read_json(output, lines=True)
        assert out["stars"].tolist() == list(range(60))
        assert set(out["label_predicted"]) <= {"NEGATIVE", "POSITIVE"}


def test_bad_inputs_name_the_fix(model_dir, big_csv, tmp_path):
    result = score(model_dir, big_csv, tmp_path / "out.csv", "--column", "review")
    assert result.returncode == 2 and "has no column 'review'" in result.stderr
    assert "--column NAME" in result.stderr
    result = score(model_dir, tmp_path / "missing.csv", tmp_path / "out.csv")
    assert result.returncode == 2 and "no such file" in result.stderr
    result = score(model_dir, big_csv, tmp_path / "out.xlsx")
    assert result.returncode == 2 and "use a .csv, .jsonl or .parquet file" in result.stderr


def test_unfinished_parts_of_another_input_are_never_mixed_in(model_dir, big_csv, tmp_path):
    output = tmp_path / "out.csv"
    parts = stream.parts_dir(output)
    parts.mkdir()
    (parts / stream.MANIFEST).write_text('{"input": "/elsewhere.csv", "column": "text"}')
    result = score(model_dir, big_csv, output)
    assert result.returncode == 2 and "another input or model (/elsewhere.csv" in result.stderr
    assert f"rm -r {parts}" in result.stderr


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray of 2 CPUs for the session's tests."""
    ray = pytest.importorskip("ray")
    from serving.ray_scoring import runtime_env

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env())
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_the_ray_engine_writes_the_local_engines_rows(
    model_dir, big_csv, whole, tmp_path, local_ray
):
    from serving.ray_scoring import score_file_ray

    output = tmp_path / "labelled.csv"
    done = score_file_ray(model_dir, big_csv, output, actors=2)
    assert done["rows"] == 20_002
    assert_same_rows(output, whole, model_labels(model_dir))


@pytest.mark.slow
def test_two_ray_actors_label_a_parquet_file_as_the_local_engine(
    model_dir, big_csv, whole, tmp_path, local_ray
):
    from serving.ray_scoring import score_file_ray

    # Ray 2.60's new parquet reader waited for ever for a CPU the two actors held.
    source = tmp_path / "reviews.parquet"
    read_text(big_csv)[:3000].to_parquet(source, row_group_size=500)
    output = tmp_path / "labelled.parquet"
    assert score_file_ray(model_dir, source, output, actors=2)["rows"] == 3000
    expected = read_text(whole)[:3000]
    out = pd.read_parquet(output)
    assert out["text"].tolist() == expected["text"].tolist()
    assert out["label"].fillna("").tolist() == expected["label"].tolist()


@pytest.mark.slow
def test_a_ray_rerun_after_a_stopped_run_says_it_starts_over(
    model_dir, big_csv, whole, tmp_path, local_ray, caplog
):
    from serving.ray_scoring import score_file_ray
    from serving.stream import parts_dir

    output = tmp_path / "labelled.csv"
    parts = parts_dir(output)
    parts.mkdir(parents=True)
    (parts / "part-0123abcd.csv").write_text("text,label\nleft over,POSITIVE\n")  # a killed run's
    with caplog.at_level("WARNING", logger="serving.ray_scoring"):
        assert score_file_ray(model_dir, big_csv, output, actors=1)["rows"] == 20_002
    assert "scoring starts over" in caplog.text
    assert_same_rows(output, whole, model_labels(model_dir))  # the old part is not in it
    assert not parts.exists()
