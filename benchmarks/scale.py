"""Scoring files as large as a shop's reviews: `infer.py --input` (serving/stream.py) against
`classify` on an in-memory list of the same rows, and Ray Data with 1 and 2 actors.

    python -m benchmarks.scale --model-dir model --data IMDB --rows 25000 --paths list stream \
        ray1 ray2
    python -m benchmarks.scale --model-dir model --data IMDB --rows 250000 --paths stream

The rows are IMDB's test reviews, repeated to `--rows`, in a parquet file with an id column.
Each path runs in a fresh process: rows/s count the scoring alone (the model is loaded
before the clock starts; reading and writing the files are inside it, as users meet them);
peak memory is that process's own high-water resident set, `VmHWM` (Ray's actors are
processes of their own, so its figure is the driver's). Ray actors get one CPU each, and Ray
sets OMP_NUM_THREADS to it, which ONNX Runtime follows (`serving/onnx_runtime.threads`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

PATHS = ("list", "stream", "ray1", "ray2")


def make_input(data: str, rows: int, folder: Path) -> Path:
    """IMDB's test reviews repeated to `rows` rows, with an id, as parquet."""
    import pandas as pd

    from training.data import load_data

    texts = list(load_data(data)["test"]["text"])
    path = folder / f"reviews-{rows}.parquet"
    repeats = -(-rows // len(texts))
    frame = pd.DataFrame({"id": range(rows), "text": (texts * repeats)[:rows]})
    frame.to_parquet(path, index=False)
    return path


def measure(path: str, model_dir: Path, source: Path, scratch: Path) -> dict[str, float]:
    """Run one path in this process: the rows scored, the seconds and rows/s."""
    import pandas as pd

    from serving.classifier import load

    output = scratch / f"out-{path}.parquet"
    if path == "list":
        classifier = load(model_dir)
        texts = pd.read_parquet(source)["text"].tolist()
        started = time.perf_counter()
        rows = len(classifier.classify(texts))
    elif path == "stream":
        from serving.stream import score_file

        classifier = load(model_dir)
        started = time.perf_counter()
        rows = score_file(classifier, source, output)["rows"]
    else:
        import ray

        from serving.ray_scoring import runtime_env, score_file_ray

        ray.init(num_cpus=2, runtime_env=runtime_env(), log_to_driver=False)
        started = time.perf_counter()  # the actors load the model inside the clock
        rows = score_file_ray(model_dir, source, output, actors=int(path[-1]))["rows"]
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": round(seconds, 1), "rows_per_second": round(rows / seconds, 1)}


def peak_mb() -> int:
    """This process's peak resident set in MB. Not `ru_maxrss`: a spawned child starts with
    its parent's (it read 1,023 MB for a stream that peaked at 609: the parent held the
    250,000 reviews it had just written). /proc's VmHWM is the process's own."""
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return round(kib / 1024)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", required=True, help="the IMDB folder (its test split)")
    parser.add_argument("--rows", type=int, nargs="+", default=[25_000])
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)  # PATH SOURCE SCRATCH
    args = parser.parse_args(argv)
    if args.child:
        path, source, scratch = args.child
        result = measure(path, args.model_dir, Path(source), Path(scratch))
        print(json.dumps(result | {"peak_mb": peak_mb()}))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for rows in args.rows:
            source = make_input(args.data, rows, Path(scratch))
            for path in args.paths:
                command = [sys.executable, "-m", "benchmarks.scale", "--model-dir"]
                command += [str(args.model_dir), "--data", args.data, "--child"]
                done = subprocess.run(
                    [*command, path, str(source), scratch], capture_output=True, text=True
                )
                if done.returncode:
                    print(done.stderr[-3000:], file=sys.stderr)
                    return done.returncode
                result = {"path": path} | json.loads(done.stdout.strip().splitlines()[-1])
                results.append(result)
                print(json.dumps(result), flush=True)
    print("| path | rows | seconds | rows/s | peak MB |\n| --- | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['path']} | {r['rows']:,} | {r['seconds']} | {r['rows_per_second']} "
            f"| {r['peak_mb']:,} |"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
