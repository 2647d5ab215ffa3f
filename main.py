"""Fine-tune a sentiment model on IMDB and publish it to ./model.

    python main.py --subset 2000
    python main.py --subset 1000 --model PATH --data PATH   # without the Hugging Face Hub

Every field of `train.TrainConfig` is a flag with the same name and default.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Sequence

import train


def build_parser() -> argparse.ArgumentParser:
    """One flag per TrainConfig field (`grad_accum` becomes `--grad-accum`)."""
    parser = argparse.ArgumentParser(
        description="Fine-tune a transformer on movie reviews and publish it to --output-dir.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(train.TrainConfig)
    for spec in dataclasses.fields(train.TrainConfig):
        kind = hints[spec.name]
        if typing.get_origin(kind) is not None:  # `int | None`: the flag takes an int
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        parser.add_argument(
            "--" + spec.name.replace("_", "-"),
            type=kind,
            default=spec.default,
            help=spec.metadata["help"],
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run training from command-line flags; return the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = train.TrainConfig(**vars(args))
    try:
        report = train.run(config)
    except train.UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {config.output_dir}/ is unchanged.", file=sys.stderr)
        return 130
    test = report["test"]
    print(
        f"Test on {test['reviews']:,} reviews: accuracy {test['accuracy']:.2%}, "
        f"precision {test['precision']:.2%}, recall {test['recall']:.2%}, F1 {test['f1']:.2%} "
        f"(best epoch {report['validation']['epoch']:g} by validation F1). "
        f"Model published to {config.output_dir}/ in {report['seconds']:.0f} s."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
