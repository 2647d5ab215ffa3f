"""Fine-tune a sentiment model on IMDB and publish it to ./model, or re-test a published one.

    python main.py --subset 2000
    python main.py --subset 1000 --model PATH --data PATH   # without the Hugging Face Hub
    python main.py --config configs/standard.yaml --epochs 1   # a recipe file; flags win
    python main.py --resume                                 # continue a killed run
    python main.py evaluate --model-dir model --data PATH   # new metrics and reports, no training
    python main.py compare configs/*.yaml --subset 1000     # side by side, the best published
    python main.py search --trials 20 --subset 500          # Optuna over the learning recipe

Every field of `config.TrainConfig` is a flag with the same name and default; a config file
(JSON or YAML, or a published metrics.json) sets any of them, and flags override it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.config import (
    EXPECTED,
    SettingError,
    TrainConfig,
    UsageError,
    field_types,
    flag,
    read_config,
    typed,
)

TRAIN_HELP = "Fine-tune a transformer on movie reviews and publish it to --output-dir."


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after each flag's help, and the list of commands kept as written."""


def build_parser(prog: str | None = None, description: str = TRAIN_HELP) -> argparse.ArgumentParser:
    """One flag per TrainConfig field (`grad_accum` becomes `--grad-accum`), and `--config`."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--config",
        help="a recipe file (JSON or YAML, or a published metrics.json) setting any of the "
        "flags below; flags given here override it",
    )
    for spec in dataclasses.fields(TrainConfig):
        kind = field_types()[spec.name]
        if kind is bool:  # --gradient-checkpointing, --no-gradient-checkpointing
            options: dict = {"action": argparse.BooleanOptionalAction}
        elif typing.get_origin(kind) is tuple:  # `tuple[str, ...]`: the flag takes one or more
            options = {"nargs": "+"}
        else:
            options = {"type": flag_reader(spec.name)}
        parser.add_argument(
            flag(spec.name), default=spec.default, help=spec.metadata["help"], **options
        )
    return parser


def flag_reader(name: str) -> Any:
    """argparse's `type` for the flag of field `name`: `training.config.typed`, so flags are
    read as recipe files and metrics.json are."""

    def read(text: str) -> Any:
        try:
            return typed(name, text)
        except SettingError as error:
            raise argparse.ArgumentTypeError(f"{text!r}: {error}") from None

    read.__name__ = EXPECTED.get(field_types()[name], "value")  # argparse's word for a bad value
    return read


def parse_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """`argv` parsed with the `--config` file's settings as defaults, so flags override it."""
    known, _ = parser.parse_known_args(argv)
    if known.config:
        parser.set_defaults(**read_config(known.config))
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed flags (what `build_parser` added beyond its fields left out)."""
    names = {spec.name for spec in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{key: value for key, value in vars(args).items() if key in names})


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

    # Under torchrun every process runs this; process 0 speaks for all of them.
    quiet = os.environ.get("RANK", "0") != "0"
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()  # tokenizing 1,500 reviews takes a second or two
    transformers.utils.logging.disable_progress_bar()  # "Loading weights" on every load
    transformers.utils.logging.set_verbosity_error()


def build_train_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    parser.epilog, parser.formatter_class = commands_help(), HelpFormatter
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run into --output-dir, with the same settings, from its "
        "newest complete checkpoint",
    )
    return parser


def build_compare_parser() -> argparse.ArgumentParser:
    parser = build_parser(
        "main.py compare",
        "Train each recipe file on the same data, splits and seed; write comparison.csv, "
        ".md and .png under --output-dir and publish the best by validation F1 (never by "
        "test) to --publish-to. Flags apply to every recipe.",
    )
    parser.add_argument("recipes", nargs="+", help="config files (JSON or YAML), two or more")
    parser.add_argument("--publish-to", default="model", help="where the best model goes")
    parser.set_defaults(output_dir="comparison")
    return parser


def build_search_parser() -> argparse.ArgumentParser:
    parser = build_parser(
        "main.py search",
        "Search the learning recipe (learning rate, epochs, warm-up, weight decay) with "
        "Optuna for the best validation F1; the test split is never scored. Saves the best "
        "recipe as best.yaml under --output-dir and prints the command that trains it.",
    )
    parser.add_argument("--trials", type=int, default=10, help="trials the study should hold")
    parser.add_argument(
        "--storage",
        help="keep the study in this database (sqlite:///search.db), so a rerun continues it",
    )
    parser.set_defaults(output_dir="search")
    return parser


def commands_help() -> str:
    """The other commands, a line or two each, for `python main.py --help`."""
    import textwrap

    lines = ["commands: python main.py COMMAND [flags] (python main.py COMMAND --help for each)"]
    for name, build in COMMANDS.items():
        if name != "train":
            first = build().description.split(". ")[0].rstrip(".")
            lines += textwrap.wrap(
                first, 88, initial_indent=f"  {name:<10}", subsequent_indent=" " * 12
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Train, or run the command `argv` starts with (evaluate, compare, search); return the
    exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv[:1] and argv[0] in COMMANDS else "train"
    rest = argv[1:] if command != "train" else argv
    parser = COMMANDS[command]()
    try:
        args = parser.parse_args(rest) if command == "evaluate" else parse_config(parser, rest)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_console()
    output = args.model_dir if command == "evaluate" else args.output_dir
    try:
        if command == "evaluate":
            from training.retest import retest

            report = retest(args.model_dir, args.data, args.test_subset)
        elif command == "compare":
            import train
            from training.compare import compare

            recipes = recipes_of(args.recipes, rest)
            compare(recipes, train.run, Path(args.output_dir), Path(args.publish_to))
            return 0
        elif command == "search":
            import train
            from training.search import search

            search(config_of(args), train.prepare, args.trials, args.storage)
            return 0
        else:
            import train

            report = train.run(config_of(args), resume=args.resume)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = " Continue the run with --resume." if command == "train" else ""
        print(f"\ninterrupted: {output}/ is unchanged.{hint}", file=sys.stderr)
        return 130
    if report:  # the other processes of a torchrun leave the summary to process 0
        print(summary(report, output))
    return 0


def summary(report: dict, output: str | Path) -> str:
    """The line a run ends with: test metrics, the gain on the untrained head, where it went."""
    test, baseline = report["test"], report["baseline"]
    gain = ""
    if baseline:
        points = 100 * (test["accuracy"] - baseline["accuracy"])
        gain = f" ({points:+.1f} points on the untrained baseline)"
    return (
        f"Test on {test['reviews']:,} reviews: accuracy {test['accuracy']:.2%}{gain}, "
        f"precision {test['precision']:.2%}, recall {test['recall']:.2%}, F1 {test['f1']:.2%}, "
        f"ROC-AUC {test['roc_auc']:.3f} (best epoch {report['validation']['epoch']:g} by "
        f"validation F1). Model, metrics and reports in {output}/."
    )


def recipes_of(files: list[str], argv: list[str]) -> dict[str, TrainConfig]:
    """Each recipe file's TrainConfig, by file name, with the flags of `argv` over it; the
    comparison, not the file, says where runs go."""
    recipes = {}
    for file in files:
        parser = build_compare_parser()
        values = read_config(file)
        values.pop("output_dir", None)
        parser.set_defaults(**values)
        name = Path(file).stem
        if name in recipes:
            raise UsageError(f"compare: two recipe files are named {name}; rename one.")
        recipes[name] = config_of(parser.parse_args(argv))
    return recipes


COMMANDS = {
    "train": build_train_parser,
    "evaluate": build_evaluate_parser,
    "compare": build_compare_parser,
    "search": build_search_parser,
}


if __name__ == "__main__":
    sys.exit(main())
