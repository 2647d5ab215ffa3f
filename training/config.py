"""The settings of a training run: one frozen dataclass, its checks, and how a saved run reads back.

    from training.config import TrainConfig
    TrainConfig(subset=1000).grad_accum
    # 2

`main.py` turns every field into a flag of the same name (`grad_accum` is `--grad-accum`), and
each run saves `as_saved(config)` in the model's metrics.json; `typed` reads a setting from a
flag, a recipe file or a metrics.json alike. About 390 lines, past the usual 350: one field per
setting, each with its help, and the checks and the one reader of the same fields.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils import STRATEGIES, TRAIN_STRATEGIES, check_strategy

# Class names by label id: the data's 0 is a negative review, 1 a positive one. They go into the
# model config (id2label), and every reader of the model takes them from there.
LABELS = ("NEGATIVE", "POSITIVE")
POOLINGS = ("auto", "mean", "cls")
HEAD_INITS = ("probe", "random")
REPORT_TO = ("none", "tensorboard", "mlflow", "wandb")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class UsageError(ValueError):
    """Bad settings or data, found before training; the message names the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """Every choice of a run; the defaults are the documented run (README, "Training")."""

    subset: int = field(
        default=2000,
        metadata={"help": "training reviews, balanced across labels (0: all but --val-reviews)"},
    )
    test_subset: int | None = field(
        default=None,
        metadata={"help": "test reviews, balanced (default: as many as --subset; 0: all)"},
    )
    # The best epoch is picked on these, never on the test split.
    val_reviews: int = field(
        default=500,
        metadata={"help": "training-split reviews beside --subset that pick the best epoch"},
    )
    model: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "base model: a Hugging Face Hub name or a local folder"},
    )
    data: str = field(
        default="stanfordnlp/imdb",
        metadata={
            "help": "a Hub dataset name, a folder with train/test .parquet, .csv or .jsonl "
            "(columns text, label), or an extracted aclImdb folder"
        },
    )
    extra_data: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "more labelled reviews for the training split only, one or more sources: "
            ".csv, .jsonl or .parquet files (text and label, or the app's feedback file) or "
            "Hub dataset names (rotten_tomatoes, stanfordnlp/sst2); SOURCE:ROWS takes ROWS "
            "of one at random. Rows equal to a validation, test or --short-data text are "
            "dropped"
        },
    )
    push_to_hub: str | None = field(
        default=None,
        metadata={
            "help": "also publish the model folder, with its card, to this Hub repository "
            "(owner/name); checked before training"
        },
    )
    short_data: str | None = field(
        default=None,
        metadata={
            "help": "a folder of short-review sets (.parquet, .csv or .jsonl; text, label) also "
            "tested after training and reported in metrics.json; never trained on"
        },
    )
    output_dir: str = field(default="model", metadata={"help": "where the model is published"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the training reviews"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak AdamW learning rate"})
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of optimizer steps spent warming up"}
    )
    weight_decay: float = field(
        default=0.01, metadata={"help": "AdamW's, on every weight but biases and LayerNorm"}
    )
    patience: int = field(
        default=0,
        metadata={"help": "stop after this many epochs without a better validation F1 (0: never)"},
    )
    train_layers: int = field(
        default=0,
        metadata={
            "help": "fine-tune only the top K encoder layers and the head; the embeddings and "
            "lower layers stay as pretrained (0: all)"
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "auto (bf16 on CUDA GPUs that have it, fp16 on older ones, fp32 on CPU), "
            "fp32, bf16 or fp16"
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in the backward pass: less memory, slower steps"},
    )
    # tokens; BERT and DistilBERT hold at most 512 positions.
    max_length: int = field(default=256, metadata={"help": "tokens read per review or window"})
    truncation: str = field(
        default="head+tail",
        metadata={"help": "how training cuts a long review: head, or head+tail (start and end)"},
    )
    inference_truncation: str = field(
        default="sliding",
        metadata={
            "help": "how infer.py and the app read a long review: head, head+tail, or sliding "
            "(all of it, in windows one after another)"
        },
    )
    pooling: str = field(
        default="auto",
        metadata={
            "help": "what the head reads: mean of the token states, cls (the base model's own "
            "head: a folder any pipeline loads), or auto (mean for sentence-transformers bases)"
        },
    )
    head_init: str = field(
        default="probe",
        metadata={
            "help": "the new head starts as a logistic regression on the training reviews "
            "(probe) or at random"
        },
    )
    seed: int = field(default=42, metadata={"help": "seeds sampling, splits, weights and order"})
    data_seed: int | None = field(
        default=None,
        metadata={
            "help": "seeds the draw of the splits alone (default: --seed), so runs of several "
            "seeds, or a student and its teacher, hold out the same texts"
        },
    )
    teacher: str | None = field(
        default=None,
        metadata={
            "help": "distil: a published model folder whose calibrated probabilities this "
            "model learns on every training text and --unlabelled-data text, half and half "
            "with the true labels where there are some; it must have drawn the same splits"
        },
    )
    unlabelled_data: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "texts without labels for --teacher to label and this model to learn: "
            ".csv, .jsonl or .parquet files with a text column, or Hub datasets (their "
            "unsupervised split, else train: stanfordnlp/imdb's 50,000 unlabelled reviews); "
            "SOURCE:ROWS takes ROWS of one at random. Texts equal to or inside a validation, "
            "test or --short-data text are dropped"
        },
    )
    batch_size: int = field(default=2, metadata={"help": "training reviews per device step"})
    grad_accum: int = field(
        default=2, metadata={"help": "device steps per optimizer update (effective batch 4)"}
    )
    # tokens, padded (texts x the longest): 2,048 holds 8 reviews of 256 tokens or about 100
    # sentences of 20. Steps of 2 short sentences waste the step (benchmarks/NOTES.md).
    batch_tokens: int = field(
        default=0,
        metadata={
            "help": "instead of --batch-size texts, each step takes texts of like length up to "
            "this many tokens, padding included (0: --batch-size texts per step)"
        },
    )
    report_to: str = field(
        default="none",
        metadata={
            "help": "also log the run: tensorboard (to runs/; tensorboard --logdir runs), mlflow "
            "(to mlflow.db here, or $MLFLOW_TRACKING_URI) or wandb (WANDB_MODE=offline: local)"
        },
    )

    def __post_init__(self) -> None:
        # A list from JSON or YAML, or one source as a string: what a config file may hold.
        for name in ("extra_data", "unlabelled_data"):
            sources = getattr(self, name)
            sources = (sources,) if isinstance(sources, str) else tuple(sources or ())
            object.__setattr__(self, name, sources)


def check_config(config: TrainConfig) -> None:
    """Raise UsageError for settings that cannot work, before anything is loaded."""
    for name in ("epochs", "learning_rate", "max_length", "batch_size", "grad_accum"):
        value = getattr(config, name)
        if value <= 0:
            raise UsageError(f"{flag(name)} must be positive, got {value}.")
    if config.subset < 0 or (config.test_subset is not None and config.test_subset < 0):
        raise UsageError("--subset and --test-subset count reviews: use 0 (all) or more.")
    if min(config.patience, config.train_layers, config.weight_decay, config.batch_tokens) < 0:
        raise UsageError(
            "--patience, --train-layers, --weight-decay and --batch-tokens take 0 or more."
        )
    if not 0 <= config.warmup_ratio < 1:
        raise UsageError(f"--warmup-ratio {config.warmup_ratio}: use a share from 0 to below 1.")
    if config.batch_tokens and config.batch_tokens < config.max_length:
        raise UsageError(
            f"--batch-tokens {config.batch_tokens} is below --max-length {config.max_length}: "
            f"give at least {config.max_length}, or 0 for --batch-size texts per step."
        )
    if config.val_reviews < 2:
        raise UsageError(
            f"--val-reviews {config.val_reviews}: use 2 or more (a review of each label)."
        )
    choices = {
        "truncation": TRAIN_STRATEGIES,
        "inference_truncation": STRATEGIES,
        "pooling": POOLINGS,
        "head_init": HEAD_INITS,
        "report_to": REPORT_TO,
        "precision": PRECISIONS,
    }
    for name, allowed in choices.items():
        try:
            check_strategy(getattr(config, name), allowed=allowed)
        except ValueError as error:
            raise UsageError(f"{flag(name)} {error}") from error
    if config.unlabelled_data and not config.teacher:
        raise UsageError(
            "--unlabelled-data needs --teacher FOLDER: a published model that labels them."
        )
    output = Path(config.output_dir)
    foreign = output.exists() and not (output / "config.json").is_file()
    if foreign and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(
            f"--output-dir {output} exists and is not a model folder; publishing would "
            "replace it. Choose another --output-dir or move that folder away."
        )


def split_seed(config: TrainConfig) -> int:
    """The seed that draws the splits: `--data-seed`, else `--seed`."""
    return config.seed if config.data_seed is None else config.data_seed


def as_saved(config: TrainConfig) -> dict[str, Any]:
    """`config` as metrics.json holds it and `saved_config` reads it back: JSON's lists for
    tuples."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }


def flag(name: str) -> str:
    """The command-line flag of a TrainConfig field: `grad_accum` is `--grad-accum`."""
    return "--" + name.replace("_", "-")


def saved_config(saved: dict[str, Any], where: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a published model, from the `config` of its metrics.json, with the
    `overrides` that are not None. Settings added since take their defaults, which are what
    runs did before them; a setting this version does not know raises UsageError.

    saved_config(json.loads(Path("model/metrics.json").read_text())["config"], "model").seed
    # 42
    """
    values = config_values(saved, where)
    return TrainConfig(**values | {k: v for k, v in overrides.items() if v is not None})


def read_config(path: str | Path) -> dict[str, Any]:
    """The settings a config file holds (JSON or YAML: field names as keys, `grad_accum` or
    `grad-accum`), checked and typed; a published metrics.json is read for its `config`.
    Errors name the file and the fix."""
    import yaml  # JSON is YAML too, so one reader serves both

    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise UsageError(f"--config {path}: cannot read it ({error}).") from error
    if isinstance(loaded, dict) and isinstance(loaded.get("config"), dict):
        loaded = loaded["config"]  # a metrics.json: its run's settings
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: hold a mapping of settings, such as epochs: 3.")
    return config_values(loaded, f"--config {path}")


def config_values(saved: dict[str, Any], where: str) -> dict[str, Any]:
    """`saved` with keys as TrainConfig's field names and each value as `typed` reads it;
    UsageError naming `where` for an unknown setting or a value of the wrong type."""
    values = {str(key).replace("-", "_"): value for key, value in saved.items()}
    unknown = sorted(set(values) - set(field_types()))
    if unknown:
        raise UsageError(
            f"{where} holds settings this version of the project does not know "
            f"({', '.join(unknown)}): remove them (python main.py --help lists the known "
            "ones), or, for a published model, retrain it with python main.py."
        )
    try:
        return {name: typed(name, value) for name, value in values.items()}
    except SettingError as error:
        raise UsageError(f"{where}: {error.name} is {error.value!r}; {error}.") from None


class SettingError(ValueError):
    """A value a setting cannot take; its message says what to give."""

    def __init__(self, name: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.name, self.value = name, value


# What a value of each kind looks like, for the errors.
EXPECTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def typed(name: str, value: Any) -> Any:
    """`value` as TrainConfig's field `name` holds it: the one reader of settings, for a flag's
    text, a recipe file's value and a saved metrics.json's alike (pydantic over the field's
    type: "3" and 3.0 are 3, "5e-5" is 5e-05, one source as text is a tuple of one).
    SettingError, saying what to give, for anything else.

    >>> typed("epochs", "3"), typed("extra_data", "a.csv"), typed("test_subset", None)
    (3.0, ('a.csv',), None)
    """
    from pydantic import ValidationError

    kind = field_types()[name]
    element = next((arg for arg in typing.get_args(kind) if arg is not type(None)), kind)
    if typing.get_origin(kind) is tuple and isinstance(value, str):
        value = (value,)
    if isinstance(value, bool) and element is not bool:  # YAML's yes/no are not numbers
        raise SettingError(name, value, f"give {EXPECTED.get(element, 'text')}")
    try:
        return _adapter(name).validate_python(value)
    except ValidationError:
        raise SettingError(name, value, f"give {EXPECTED.get(element, 'text')}") from None


@functools.cache
def field_types() -> dict[str, Any]:
    """Each TrainConfig field's type, by name."""
    return typing.get_type_hints(TrainConfig)


@functools.cache
def _adapter(name: str) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(field_types()[name])


# Files and model-card metadata by which a base says it was pretrained to be read by the mean
# of its token states (sentence-transformers: modules.json names its pooling module).
SENTENCE_MARKERS = ("modules.json", "config_sentence_transformers.json", "1_Pooling/config.json")


def resolve_pooling(config: TrainConfig) -> TrainConfig:
    """`config` with `--pooling auto` made explicit: `mean` for a base pretrained with mean
    pooling (all-MiniLM-L6-v2: 87.0% against 85.8% with its own head, benchmarks/NOTES.md),
    `cls` otherwise, so `distilbert-base-uncased` gives a folder any `pipeline()` loads."""
    if config.pooling != "auto":
        return config
    return dataclasses.replace(config, pooling="mean" if mean_pooled(config.model) else "cls")


def mean_pooled(model: str) -> bool:
    """Whether the base `model` (a folder or a Hub name) is a sentence-transformers model."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        card = folder / "README.md"
        tagged = card.is_file() and "library_name: sentence-transformers" in card.read_text()
        return tagged or any((folder / name).is_file() for name in SENTENCE_MARKERS)
    from serving import hub

    return hub.has_file(model, SENTENCE_MARKERS[0])  # unreachable: load_base says so
