"""How fast each serving path reads reviews on this CPU, against `transformers.pipeline`.

    python -m benchmarks.inference --model-dir model --data IMDB

One published model folder, the same balanced IMDB test reviews (default 1,000, drawn as
`accuracy.py` draws its fixed sample), the same 256-token reading. Each path runs in its own
process (so peak memory is its own) with every core this process may use:

- `pipeline`: `transformers.pipeline("text-classification", batch_size=32, truncation=True)`,
  the baseline every ratio is against;
- ours at the same reading (`head`): PyTorch fp32, PyTorch dynamic INT8 (Linear layers),
  ONNX Runtime fp32 (fused), ONNX Runtime INT8 (fused: what `infer` serves without AMX),
  OpenVINO bfloat16 on the fused fp32 graph (what it serves with AMX);
- ours at the default reading (`sliding`, the whole review): PyTorch fp32, ONNX Runtime INT8
  and OpenVINO bfloat16;
- on a CUDA GPU also: the pipeline in fp32 on the GPU (the GPU rows' baseline) and what `infer`
  serves there, PyTorch in bf16 (fp16 on GPUs without it), at both readings.

For each: reviews/s over the whole list, p50 and p95 latency of one review of about 20 and
about 400 words (30 calls each, after 3 to warm up), peak resident memory, accuracy, and
agreement of labels with PyTorch fp32 at the same reading. Every path runs `--rounds` times
(3), the paths taking turns, and each figure is its median over the rounds: on a shared
2-core machine one path read 75 to 92 reviews/s within ten minutes, so paths measured once,
one after another, compare moments as much as paths. Prints a markdown table and writes it,
with each round's reviews/s, to benchmarks/results/inference.{md,json} (or `--out DIR`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

PATHS = {  # name: (reading, what runs the model)
    "pipeline": ("head", "pipeline"),
    "torch fp32": ("head", "torch"),
    "torch int8 (dynamic)": ("head", "torch-int8"),
    "onnx fp32 (fused)": ("head", "onnx-fp32"),
    "onnx int8 (fused, served without AMX)": ("head", "onnxruntime"),
    "openvino bf16 (fused, served with AMX)": ("head", "openvino-bf16"),
    "sliding: torch fp32": ("sliding", "torch"),
    "sliding: onnx int8 (served without AMX)": ("sliding", "onnxruntime"),
    "sliding: openvino bf16 (served with AMX)": ("sliding", "openvino-bf16"),
}
GPU_PATHS = {  # on a CUDA GPU, against the pipeline on the same GPU
    "gpu: pipeline fp32": ("head", "pipeline-cuda"),
    "gpu: torch half (served)": ("head", "cuda-half"),
    "sliding: gpu: torch half (served)": ("sliding", "cuda-half"),
}
REPEATS, WARMUP = 30, 3
RESULTS = ROOT / "benchmarks" / "results"


def reviews(data_dir: str, n: int) -> tuple[list[str], list[int]]:
    from benchmarks.accuracy import fixed_test_sample
    from training import data

    sample = fixed_test_sample(data.load_data(data_dir), n)
    return list(sample["text"]), list(sample["label"])


def single(texts: list[str], words: int) -> str:
    """The review whose word count is nearest `words`."""
    return min(texts, key=lambda text: abs(len(text.split()) - words))


def classifier_for(model_dir: Path, reading: str, runner: str, scratch: Path) -> Any:
    """The library's classifier with the model `runner` names swapped in."""
    import torch

    import infer
    from serving.onnx_runtime import ONNX_FILE, RUNTIMES, OnnxModel
    from training.export import export_onnx, fuse

    classifier = infer.load(model_dir, truncation=reading, backend="torch")
    if runner == "cuda-half":
        return classifier  # as infer serves on a GPU (serving/gpu.py)
    # The CPU paths in fp32 on the CPU, also on a machine with a GPU.
    classifier = dataclasses.replace(classifier, model=classifier.model.float().to("cpu"))
    if runner in RUNTIMES:  # as infer serves the folder's file on a CPU with AMX, or without
        return dataclasses.replace(classifier, model=OnnxModel(model_dir / ONNX_FILE, runner))
    if runner == "torch-int8":
        model = torch.ao.quantization.quantize_dynamic(
            classifier.model, {torch.nn.Linear}, dtype=torch.qint8
        )
        return dataclasses.replace(classifier, model=model)
    if runner == "onnx-fp32":
        model = classifier.model
        model.set_attn_implementation("eager")
        export_onnx(model, scratch / "plain.onnx")
        fuse(scratch / "plain.onnx", scratch / "fused.onnx", model)
        return dataclasses.replace(classifier, model=OnnxModel(scratch / "fused.onnx"))
    return classifier


def measure(model_dir: Path, name: str, data_dir: str, n: int) -> dict[str, Any]:
    """One path's figures; runs in a child process of its own."""
    texts, _ = reviews(data_dir, n)
    reading, runner = (PATHS | GPU_PATHS)[name]
    with tempfile.TemporaryDirectory() as scratch:
        if runner in ("pipeline", "pipeline-cuda"):
            import transformers

            import infer
            from serving.model_folder import transformers_tokenizer

            plain = infer.load(model_dir, backend="torch")
            device = "cuda" if runner == "pipeline-cuda" else "cpu"
            model = plain.model.float().to(device)
            # The pipeline takes transformers' own tokenizer (serving reads tokenizer.json alone).
            tokenizer = transformers_tokenizer(model_dir)
            pipe = transformers.pipeline("text-classification", model=model, tokenizer=tokenizer)
            label_of = {label: i for i, label in enumerate(plain.labels)}

            def run(batch: list[str]) -> list[int]:
                out = pipe(batch, batch_size=32, truncation=True)
                return [label_of[row["label"]] for row in out]
        else:
            classifier = classifier_for(model_dir, reading, runner, Path(scratch))

            def run(batch: list[str]) -> list[int]:
                return [classifier.labels.index(p.label) for p in classifier.classify(batch)]

        run(texts[:8])  # warm up
        started = time.perf_counter()
        labels = run(texts)
        seconds = time.perf_counter() - started
        latency = {}
        for words in (20, 400):
            text = single(texts, words)
            for _ in range(WARMUP):
                run([text])
            times = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                run([text])
                times.append(time.perf_counter() - start)
            latency[words] = {
                "words": len(text.split()),
                "p50_ms": 1000 * float(np.percentile(times, 50)),
                "p95_ms": 1000 * float(np.percentile(times, 95)),
            }
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "path": name,
        "reading": reading,
        "reviews_per_s": len(texts) / seconds,
        "latency": latency,
        "peak_mb": peak,
        "labels": labels,
    }


def median_row(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One path's rounds as one row: each figure's median (peak memory: the highest)."""
    row = dict(rounds[0], rounds=[r["reviews_per_s"] for r in rounds])
    row["reviews_per_s"] = float(np.median(row["rounds"]))
    row["peak_mb"] = max(r["peak_mb"] for r in rounds)
    row["latency"] = {
        words: first
        | {
            key: float(np.median([r["latency"][words][key] for r in rounds]))
            for key in ("p50_ms", "p95_ms")
        }
        for words, first in rounds[0]["latency"].items()
    }
    return row


def table(rows: list[dict[str, Any]], gold: list[int]) -> str:
    """A markdown row per path; a ratio or an agreement whose reference path was not among
    the measured ones says so."""
    pipelines = {r["path"]: r for r in rows if "pipeline" in r["path"]}
    fp32 = {r["reading"]: r["labels"] for r in rows if r["path"].endswith("torch fp32")}
    lines = [
        "| path | reading | reviews/s | vs pipeline | p50 / p95, ~20 words | vs pipeline "
        "| p50 / p95, ~400 words | vs pipeline | peak MB | accuracy | agrees with fp32 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def ratio(ours: float, base: dict[str, Any] | None, *keys: str) -> str:
        if base is None:
            return "not measured"
        for key in keys:
            base = base[key]
        return f"{ours / base:.2f}x"

    for r in rows:
        base = pipelines.get("gpu: pipeline fp32" if "gpu" in r["path"] else "pipeline")
        short, long = r["latency"]["20"], r["latency"]["400"]
        accuracy = np.mean(np.asarray(r["labels"]) == np.asarray(gold))
        reference = fp32.get(r["reading"])  # PyTorch fp32 at this reading, if it was measured
        agree = (
            f"{np.mean(np.asarray(r['labels']) == np.asarray(reference)):.2%}"
            if reference is not None
            else "not measured"
        )
        lines.append(
            f"| {r['path']} | {r['reading']} | {r['reviews_per_s']:.1f} "
            f"| {ratio(r['reviews_per_s'], base, 'reviews_per_s')} "
            f"| {short['p50_ms']:.1f} / {short['p95_ms']:.1f} ms "
            f"| {ratio(short['p50_ms'], base, 'latency', '20', 'p50_ms')} "
            f"| {long['p50_ms']:.1f} / {long['p95_ms']:.1f} ms "
            f"| {ratio(long['p50_ms'], base, 'latency', '400', 'p50_ms')} "
            f"| {r['peak_mb']:.0f} | {accuracy:.2%} | {agree} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--data", default="stanfordnlp/imdb")
    parser.add_argument("--reviews", type=int, default=1000)
    parser.add_argument(
        "--paths",
        nargs="+",
        choices=[*PATHS, *GPU_PATHS],
        help="default: every CPU path, and the GPU paths when PyTorch sees a CUDA GPU",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each path, in turns")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for inference.md and inference.json"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model_dir, args.child, args.data, args.reviews)))
        return 0
    if args.paths is None:
        import torch

        args.paths = [*PATHS, *(GPU_PATHS if torch.cuda.is_available() else ())]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.paths}
    for round_ in range(1, args.rounds + 1):
        for name in args.paths:
            # As a module from the repository root, as documented: its imports need the root.
            command = [sys.executable, "-m", "benchmarks.inference", "--child", name]
            command += ["--model-dir"]
            command += [str(args.model_dir), "--data", args.data, "--reviews", str(args.reviews)]
            out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            rate = runs[name][-1]["reviews_per_s"]
            print(f"round {round_}, {name}: {rate:.1f} reviews/s", file=sys.stderr)
    runs = json.loads(json.dumps(runs))  # latency keys as strings, as saved
    rows = [median_row(rounds) for rounds in runs.values()]
    _, gold = reviews(args.data, args.reviews)
    markdown = table(rows, gold)
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "inference.md").write_text(markdown + "\n")
    (args.out / "inference.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
