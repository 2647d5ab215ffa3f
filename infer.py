"""Classify movie reviews with a fine-tuned model folder: the serving API and its command line.

    from infer import load
    load("model").predict(["A moving, beautifully acted film."])
    # [{'NEGATIVE': 0.100, 'POSITIVE': 0.900}]
    load("model").classify(["A moving, beautifully acted film."])[0].read
    # 9

CLI: `python infer.py [--model-dir DIR] [--truncation STRATEGY] [--backend B] [--json] TEXT...`,
or one review per line on stdin, or a file of any size: `--input FILE --output FILE`
(`serving/stream.py`). The API lives in `serving/classifier.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from serving.checks import MAX_REVIEW_CHARS
from serving.classifier import (
    BACKENDS,
    Calibration,
    Classifier,
    ModelNotFoundError,
    Prediction,
    check_model_dir,
    check_texts,
    encode,
    get_classifier,
    load,
    model_dir_from_env,
    model_id_from_env,
    predict,
    reset,
    served_probabilities,
)
from utils import STRATEGIES

__all__ = [
    "BACKENDS",
    "MAX_REVIEW_CHARS",
    "Calibration",
    "Classifier",
    "ModelNotFoundError",
    "Prediction",
    "check_model_dir",
    "check_texts",
    "encode",
    "get_classifier",
    "load",
    "main",
    "model_dir_from_env",
    "model_id_from_env",
    "predict",
    "reset",
    "served_probabilities",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Classify movie reviews as positive or negative.",
        epilog="With no TEXT, reads one review per line from stdin (blank lines are skipped).",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="reviews to classify")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="model folder (default: $MODEL_DIR or model)"
    )
    parser.add_argument(
        "--truncation",
        choices=STRATEGIES,
        help="how to read reviews longer than the model's token budget "
        "(default: as saved with the model)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="what runs the model: auto (its ONNX model if the folder has it, else PyTorch), "
        "onnx or torch (default: auto)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of predictions")
    parser.add_argument(
        "--input",
        type=Path,
        help="a .csv, .jsonl or .parquet file of reviews, scored in chunks into --output "
        "(its columns kept, label, probabilities, unsure and note added); rerun the same "
        "command after an interruption to resume",
    )
    parser.add_argument("--output", type=Path, help="where --input's rows go, labelled")
    parser.add_argument("--column", default="text", help="--input's reviews column")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="what scores --input: this process, or Ray Data (a local Ray, or --ray-address)",
    )
    parser.add_argument("--ray-address", help="a Ray cluster to join (default: a local Ray)")
    parser.add_argument(
        "--actors", type=int, default=1, help="Ray actors, each with the model and one CPU"
    )
    args = parser.parse_args(argv)
    if (args.input is None) != (args.output is None):
        parser.error("--input and --output go together")
    if args.input is not None and args.texts:
        parser.error("pass TEXT arguments or --input, not both")

    if args.input is not None:
        return score_file_cli(args)
    texts = args.texts or [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not texts:
        parser.error("no reviews given: pass TEXT arguments or pipe one review per line")
    try:
        if args.truncation or args.backend != "auto":
            model_dir = args.model_dir or model_dir_from_env()
            classifier = load(model_dir, args.truncation, backend=args.backend)
        else:
            classifier = get_classifier(args.model_dir)
        predictions = classifier.classify(texts)
    except (ModelNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([p.as_dict() for p in predictions], indent=2))
    else:
        for p in predictions:
            cut = f" (read {p.read} of {p.tokens} tokens)" if p.read < p.tokens else ""
            if p.chars_read < p.chars:
                cut += f" (read the first {p.chars_read:,} of {p.chars:,} characters)"
            unsure = " (mixed or unclear)" if p.unsure else ""
            print(f"{p.label} {p.scores[p.label]:.1%}{unsure}{cut}")
            for warning in p.warnings:
                print(f"  note: {warning}")
    return 0


def score_file_cli(args: argparse.Namespace) -> int:
    """`--input FILE --output FILE`: every row scored, with a progress bar, resumable."""
    from tqdm.auto import tqdm

    from serving.stream import StreamError, score_file

    model_dir = args.model_dir or model_dir_from_env()
    try:
        with tqdm(desc=f"Scoring {args.input.name}", unit="row", dynamic_ncols=True) as bar:
            if args.engine == "ray":
                from serving.ray_scoring import score_file_ray

                check_model_dir(model_dir)
                done = score_file_ray(
                    model_dir, args.input, args.output, args.column, args.actors,
                    address=args.ray_address, progress=bar.update,
                    truncation=args.truncation, backend=args.backend,
                )  # fmt: skip
            else:
                classifier = load(model_dir, args.truncation, backend=args.backend)
                done = score_file(classifier, args.input, args.output, args.column, bar.update)
    except (ModelNotFoundError, StreamError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    resumed, line = done["resumed_from"], f"Labelled {done['rows']:,} rows into {args.output}"
    if resumed:
        line += f" (resumed at row {resumed:,}: an earlier run had done the rows before it)"
    print(line + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
