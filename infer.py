"""Classify movie reviews with a fine-tuned model folder: the serving API and its command line.

    from infer import load
    load("model").predict(["A moving, beautifully acted film."])
    # [{'NEGATIVE': 0.100, 'POSITIVE': 0.900}]
    load("model").classify(["A moving, beautifully acted film."])[0].read
    # 9

CLI: `python infer.py [--model-dir DIR] [--truncation STRATEGY] [--backend B] [--json] TEXT...`,
or one review per line on stdin. The API lives in `serving/classifier.py`.
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
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(main())
