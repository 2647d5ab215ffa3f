"""Fine-tune a sentiment model on IMDB and publish it to ./model, or re-test a published one.

    python main.py --subset 2000
    python main.py --subset 1000 --model PATH --data PATH   # without the Hugging Face Hub
    python main.py evaluate --model-dir model --data PATH   # new metrics and reports, no training

Every field of `config.TrainConfig` is a flag with the same name and default.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from training.config import TrainConfig, UsageError, flag


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field (`grad_accum` becomes `--grad-accum`)."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a transformer on movie reviews and publish it to --output-dir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(TrainConfig)
    for spec in dataclasses.fields(TrainConfig):
        kind, many = hints[spec.name], {}
        if typing.get_origin(kind) is tuple:  # `tuple[str, ...]`: the flag takes one or more
            kind, many = typing.get_args(kind)[0], {"nargs": "+"}
        elif typing.get_origin(kind) is not None:  # `int | None`: the flag takes an int
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        parser.add_argument(
            flag(spec.name), type=kind, default=spec.default, help=spec.metadata["help"], **many
        )
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py evaluate",
        description="Re-test a published model and rewrite its metrics, plots, errors.csv and "
        "model card, without training. Test reviews are drawn as its training run drew them.",
    )
    parser.add_argument("--model-dir", type=Path, default=Path("model"), help="model folder")
    parser.add_argument(
        "--data", help="dataset as for training (default: the one it was tested on)"
    )
    parser.add_argument("--test-subset", type=int, help="test reviews (default: as saved; 0: all)")
    return parser


def configure_console() -> None:
    """Our log lines as plain messages; the libraries' own bars and notices off, so the console
    shows one bar per long phase (probe, training, testing) and a line per epoch."""
    import datasets
    import transformers

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()  # tokenizing 1,500 reviews takes a second or two
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" on every load
    transformers.utils.logging.set_verbosity_error()


def main(argv: Sequence[str] | None = None) -> int:
    """Train (or, after `evaluate`, re-test) from command-line flags; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    evaluating = argv[:1] == ["evaluate"]
    args = (
        build_evaluate_parser().parse_args(argv[1:])
        if evaluating
        else build_parser().parse_args(argv)
    )
    configure_console()
    output = args.model_dir if evaluating else args.output_dir
    try:
        if evaluating:
            from training.retest import retest

            report = retest(args.model_dir, args.data, args.test_subset)
        else:
            import train

            report = train.run(TrainConfig(**vars(args)))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {output}/ is unchanged.", file=sys.stderr)
        return 130
    test, baseline = report["test"], report["baseline"]
    gain = ""
    if baseline:
        points = 100 * (test["accuracy"] - baseline["accuracy"])
        gain = f" ({points:+.1f} points on the untrained baseline)"
    print(
        f"Test on {test['reviews']:,} reviews: accuracy {test['accuracy']:.2%}{gain}, "
        f"precision {test['precision']:.2%}, recall {test['recall']:.2%}, F1 {test['f1']:.2%}, "
        f"ROC-AUC {test['roc_auc']:.3f} (best epoch {report['validation']['epoch']:g} by "
        f"validation F1). Model, metrics and reports in {output}/."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
