"""Fine-tune a transformer on movie reviews and publish it as a model folder.

    >>> from train import TrainConfig, run
    >>> run(TrainConfig(subset=2000))["test"]["accuracy"]  # doctest: +SKIP
    0.89

The steps, in order: check the settings, load and check the data, carve balanced splits, build
the model, fine-tune with the Trainer (best epoch by validation F1), test once, publish atomically.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from report import CARD_FILE, ERRORS_FILE, PLOTS, truncated_share, write_reports
from utils import (
    HEAD_FRACTION,
    STRATEGIES,
    binary_metrics,
    encode,
    looks_like_path,
    positive_probability,
)

logger = logging.getLogger(__name__)

# Class names by label id: the data's 0 is a negative review, 1 a positive one. They go into
# the model config (id2label), and every reader of the model takes them from there.
LABELS = ("NEGATIVE", "POSITIVE")
DATA_SUFFIXES = (".parquet", ".csv", ".jsonl")
REPORT_TO = ("none", "tensorboard")
POOLINGS = ("mean", "cls")
HEAD_INITS = ("random", "probe")
PROBE_C = 1.0  # inverse L2 strength of the probe; sklearn's default
TENSORBOARD_DIR = Path("runs")


class UsageError(ValueError):
    """Bad settings or data, found before training; the message names the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. The defaults are the documented run; `main.py` makes each a flag."""

    subset: int = field(
        default=2000,
        metadata={"help": "training reviews, balanced across labels; 0: all but --val-reviews"},
    )
    test_subset: int | None = field(
        default=None,
        metadata={"help": "test reviews, balanced (default: same as --subset; 0: all)"},
    )
    val_reviews: int = field(
        default=500,
        metadata={
            "help": "training-split reviews beside --subset, balanced, on which the best epoch "
            "is picked; 0 holds out --val-fraction of --subset instead"
        },
    )
    val_fraction: float = field(
        default=0.1,
        metadata={"help": "with --val-reviews 0: share of --subset held out (stratified)"},
    )
    model: str = field(
        default="distilbert-base-uncased",
        metadata={"help": "base model: a Hugging Face Hub name or a local folder"},
    )
    data: str = field(
        default="stanfordnlp/imdb",
        metadata={
            "help": "a Hub dataset name, a folder with train/test .parquet, .csv or .jsonl "
            "files (columns text, label), or an extracted aclImdb folder"
        },
    )
    output_dir: str = field(default="model", metadata={"help": "where the model is published"})
    checkpoint_dir: str = field(
        default="checkpoints",
        metadata={"help": "scratch folder for per-epoch checkpoints (removed after success)"},
    )
    epochs: float = field(default=2.0, metadata={"help": "passes over the training split"})
    learning_rate: float = field(default=5e-5, metadata={"help": "peak AdamW learning rate"})
    # A random head starts with weights about 0.02 in size, where a logistic regression on
    # MiniLM's mean token states has about 0.5, and AdamW at 5e-5 moves a weight by at most about
    # 0.0125 in the 500 updates of two epochs: with --head-init random, the head at 1e-3 tested
    # 0.25 to 0.8 points more accurate on three seeds. The default head starts fitted (probe),
    # so it learns at --learning-rate (README, "Accuracy benchmark").
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "peak learning rate of the new classifier head, the layers outside the base "
            "model (default: --learning-rate; 1e-3 helps a random head, --head-init random)"
        },
    )
    layer_decay: float = field(
        default=1.0,
        metadata={
            "help": "each layer of the base model learns at this times the rate of the layer "
            "above it, the top one at --learning-rate; 1: all alike"
        },
    )
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of optimizer steps spent warming up"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    # tokens; longer reviews are cut. DistilBERT and BERT hold at most 512 positions.
    max_length: int = field(default=256, metadata={"help": "tokens read per review"})
    truncation: str = field(
        default="head+tail",
        metadata={
            "help": "how training cuts a review longer than --max-length: 'head' keeps its "
            "start, 'head+tail' its start and end (see --head-fraction), 'sliding' one of its "
            "overlapping windows per epoch, a different one each epoch (validation: head+tail)"
        },
    )
    head_fraction: float = field(
        default=HEAD_FRACTION,
        metadata={"help": "with head+tail: share of --max-length taken from the review's start"},
    )
    # Sliding read 88.0% of 3,000 held-out training reviews right, head+tail 86.4%, at half
    # the speed (benchmarks/reading.py); None, from runs before this setting, means --truncation.
    inference_truncation: str | None = field(
        default="sliding",
        metadata={
            "help": "how infer.py and the app read long reviews: head, head+tail, or sliding "
            "(all of it, in overlapping windows whose predictions are averaged)"
        },
    )
    pooling: str = field(
        default="mean",
        metadata={
            "help": "what the classifier reads: 'mean' averages the review's token states "
            "(pooling.py; elsewhere the folder then loads with trust_remote_code=True), 'cls' "
            "the base model's own head on its first token (a standard architecture)"
        },
    )
    seed: int = field(default=42, metadata={"help": "seeds sampling, splits, weights, order"})
    batch_size: int = field(default=2, metadata={"help": "training reviews per device step"})
    grad_accum: int = field(
        default=2, metadata={"help": "steps summed per optimizer update (effective batch 4)"}
    )
    group_by_length: bool = field(
        default=False,
        metadata={
            "help": "batch reviews of similar length together: 8-28%% less training time; as "
            "accurate at 256 tokens, 1.8 points less at 512 (benchmarks/accuracy.py)"
        },
    )
    freeze_embeddings: bool = field(
        default=False,
        metadata={"help": "keep the base model's token embeddings as pretrained"},
    )
    ema_decay: float = field(
        default=0.0,
        metadata={
            "help": "validate, keep and publish an exponential moving average of the weights, "
            "updated each optimizer step with this decay (0.99: about the last 100 steps); "
            "0: the weights as trained"
        },
    )
    # The head fitted first and no dropout: 0.59 ± 0.32 points more accurate than a random head
    # at 1e-3 with dropout, on 2,000 held-out training reviews over six seeds, the best of 17
    # recipes (benchmarks/sweep.py). The probe costs one pass over the training reviews (35 to
    # 38 s for 1,000 on 2 cores); steps without dropout masks save more: 330 to 362 s of
    # training against 415 s (README, "Accuracy benchmark").
    head_init: str = field(
        default="probe",
        metadata={
            "help": "how the new classifier head starts: 'random', or 'probe': fitted first as a "
            "logistic regression on the base model's features of the training reviews (one "
            "pass over them, counted in the training time), then fine-tuned with the rest"
        },
    )
    dropout: float | None = field(
        default=0.0,
        metadata={
            "help": "probability of every dropout layer of the base model and head (attention "
            "too) while training (BERT and DistilBERT ship with 0.1)"
        },
    )
    eval_batch_size: int = field(
        default=32, metadata={"help": "reviews per step when evaluating (memory only)"}
    )
    report_to: str = field(
        default="none",
        metadata={"help": "'tensorboard' also logs to runs/ (view: tensorboard --logdir runs)"},
    )

    @property
    def head_rate(self) -> float:
        """The new head's peak learning rate: --head-learning-rate, else --learning-rate."""
        return self.head_learning_rate or self.learning_rate

    @property
    def reading(self) -> str:
        """How the published model reads long reviews: --inference-truncation, else --truncation."""
        return self.inference_truncation or self.truncation


# ---------------------------------------------------------------------------------------------
# Settings and sources


def check_config(config: TrainConfig) -> None:
    """Raise UsageError for settings that cannot work, before anything is loaded."""
    positive = ("epochs", "learning_rate", "max_length", "batch_size", "grad_accum")
    for name in (*positive, "head_learning_rate"):
        value = getattr(config, name)
        if value is not None and value <= 0:  # None: the head at --learning-rate
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be positive, got {value}.")
    if config.subset < 0 or (config.test_subset is not None and config.test_subset < 0):
        raise UsageError("--subset and --test-subset count reviews: use 0 (all) or more.")
    if config.truncation not in STRATEGIES:
        raise UsageError(f"--truncation takes {', '.join(STRATEGIES)}, got {config.truncation!r}.")
    if config.inference_truncation not in (None, *STRATEGIES):
        raise UsageError(
            f"--inference-truncation takes {', '.join(STRATEGIES)}, "
            f"got {config.inference_truncation!r}."
        )
    if config.dropout is not None and not 0 <= config.dropout < 1:
        raise UsageError(f"--dropout must lie in [0, 1), got {config.dropout}.")
    if not 0 <= config.ema_decay < 1:
        raise UsageError(f"--ema-decay must lie in [0, 1), got {config.ema_decay}.")
    if not 0 < config.layer_decay <= 1:
        raise UsageError(f"--layer-decay must lie in (0, 1], got {config.layer_decay}.")
    if not 0 <= config.head_fraction <= 1:
        raise UsageError(f"--head-fraction must lie between 0 and 1, got {config.head_fraction}.")
    if config.head_init not in HEAD_INITS:
        raise UsageError(f"--head-init takes {' or '.join(HEAD_INITS)}, got {config.head_init!r}.")
    if config.pooling not in POOLINGS:
        raise UsageError(f"--pooling takes {' or '.join(POOLINGS)}, got {config.pooling!r}.")
    if config.report_to not in REPORT_TO:
        raise UsageError(f"--report-to takes {' or '.join(REPORT_TO)}, got {config.report_to!r}.")
    if config.val_reviews < 0 or config.val_reviews == 1:
        raise UsageError(
            f"--val-reviews {config.val_reviews}: use 2 or more (a review of each label), "
            "or 0 to hold out --val-fraction of --subset."
        )
    if not 0 < config.val_fraction < 1:
        raise UsageError(f"--val-fraction must lie between 0 and 1, got {config.val_fraction}.")
    output = Path(config.output_dir)
    foreign = output.exists() and not (output / "config.json").is_file()
    if foreign and (not output.is_dir() or any(output.iterdir())):
        raise UsageError(
            f"--output-dir {output} exists and is not a model folder; publishing would "
            "replace it. Choose another --output-dir or move that folder away."
        )


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers on its port, in at most `timeout` seconds.

    Without this check a download fails only after about 25 s of retries.
    """
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _hub_unreachable(flag: str, name: str) -> UsageError:
    return UsageError(
        f"{flag} {name}: the Hugging Face Hub is unreachable and '{name}' is not cached here. "
        f"Pass a local folder instead: {flag} PATH (see README, 'Without the Hub')."
    )


# ---------------------------------------------------------------------------------------------
# Data


def load_data(source: str) -> dict[str, Any]:
    """The `train` and `test` splits of `source` as `datasets.Dataset`s, checked.

    `source` is a folder with train/test files, an extracted `aclImdb` folder, or a Hub name.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        splits = {split: _read_local(path, split) for split in ("train", "test")}
    elif looks_like_path(source) or path.suffix in DATA_SUFFIXES:
        raise UsageError(f"--data {source}: no such folder. Pass a folder that holds the data.")
    else:
        splits = _read_hub(source)
    for split, dataset in splits.items():
        check_data(dataset, f"{source} ({split})")
    return splits


def _read_local(folder: Path, split: str) -> Any:
    from datasets import Dataset

    if (folder / split / "pos").is_dir():  # an extracted aclImdb archive: split/{neg,pos}/*.txt
        rows = [
            {"text": file.read_text(encoding="utf-8"), "label": label}
            for label, name in enumerate(("neg", "pos"))
            for file in sorted((folder / split / name).glob("*.txt"))
        ]
        return Dataset.from_list(rows)
    files = [folder / f"{split}{suffix}" for suffix in DATA_SUFFIXES]
    found = [file for file in files if file.is_file()]
    if not found:
        names = ", ".join(file.name for file in files)
        raise UsageError(
            f"--data {folder}: no {split} file ({names}) and no aclImdb {split}/pos folder."
        )
    import pandas as pd

    file = found[0]
    if file.suffix == ".parquet":
        frame = pd.read_parquet(file)
    elif file.suffix == ".csv":
        frame = pd.read_csv(file, keep_default_na=False)
    else:
        frame = pd.read_json(file, lines=True)
    return Dataset.from_pandas(frame, preserve_index=False)


def _read_hub(name: str) -> dict[str, Any]:
    import datasets

    reachable = _hub_reachable()
    # Offline mode reads the local cache at once; otherwise an unreachable Hub costs 25 s.
    if not reachable and not datasets.config.HF_HUB_OFFLINE:
        raise _hub_unreachable("--data", name)
    try:
        loaded = datasets.load_dataset(name)
    except (OSError, ConnectionError, ValueError) as error:
        if not reachable:
            raise _hub_unreachable("--data", name) from error
        raise UsageError(f"--data {name}: could not load it ({error}).") from error
    missing = {"train", "test"} - set(loaded)
    if missing:
        raise UsageError(f"--data {name} has no {' or '.join(sorted(missing))} split.")
    return {"train": loaded["train"], "test": loaded["test"]}


def check_data(dataset: Any, where: str) -> None:
    """Raise UsageError unless `dataset` has non-empty `text` and 0/1 `label` columns."""
    missing = [name for name in ("text", "label") if name not in dataset.column_names]
    if missing:
        raise UsageError(
            f"{where}: no {' or '.join(repr(m) for m in missing)} column (found "
            f"{', '.join(dataset.column_names)}); the data needs columns 'text' and 'label'."
        )
    bad = [
        label for label in dataset.unique("label") if type(label) is not int or label not in (0, 1)
    ]
    if bad:
        raise UsageError(
            f"{where}: labels {', '.join(map(repr, bad[:5]))} are not 0 or 1; "
            "use 0 for a negative review and 1 for a positive one."
        )
    empty = [
        i for i, text in enumerate(dataset["text"]) if not (isinstance(text, str) and text.strip())
    ]
    if empty:
        raise UsageError(
            f"{where}: {len(empty)} empty texts (first at row {empty[0]}); remove those rows."
        )


def balanced_sample(labels: np.ndarray, n: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """Shuffled indices of `n` rows, half of each label (the odd one positive); 0 means all."""
    if n == 0:
        return rng.permutation(len(labels))
    if n > len(labels):
        raise UsageError(
            f"{what} {n} is larger than the {len(labels):,} reviews in the data; "
            f"use {what} {len(labels)} or less (0 takes all)."
        )
    picked = []
    for label, count in ((0, n // 2), (1, n - n // 2)):
        rows = np.flatnonzero(labels == label)
        if len(rows) < count:
            raise UsageError(
                f"{what} {n} needs {count:,} reviews labelled {label}, but the data has "
                f"{len(rows):,}; use a smaller {what}."
            )
        picked.append(rng.choice(rows, size=count, replace=False))
    return rng.permutation(np.concatenate(picked))


def make_splits(data: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """Balanced train/validation/test subsets. Validation comes from the training split only:
    `val_reviews` reviews beside the subset, or with 0, `val_fraction` of the subset."""
    rng = np.random.default_rng(config.seed)
    train_labels = np.asarray(data["train"]["label"])
    if config.val_reviews:
        available = len(train_labels) - config.val_reviews
        if available < 2:
            raise UsageError(
                f"--val-reviews {config.val_reviews} leaves too few of the "
                f"{len(train_labels):,} training reviews to train on; use a smaller --val-reviews."
            )
        if config.subset > available:
            raise UsageError(
                f"--subset {config.subset} and --val-reviews {config.val_reviews} need "
                f"{config.subset + config.val_reviews:,} training reviews, but the data has "
                f"{len(train_labels):,}; use --subset {available} or less (0 takes all "
                "the rest), or a smaller --val-reviews."
            )
        val_rows = balanced_sample(train_labels, config.val_reviews, rng, "--val-reviews")
        rest = np.setdiff1d(np.arange(len(train_labels)), val_rows)
        fit_rows = rest[balanced_sample(train_labels[rest], config.subset, rng, "--subset")]
    else:
        fit_rows, val_rows = _carve_validation(train_labels, config, rng)

    test_labels = np.asarray(data["test"]["label"])
    # By default the test split is as large as --subset, or all of it if that is smaller.
    n_test = (
        min(config.subset, len(test_labels)) if config.test_subset is None else config.test_subset
    )
    test_rows = balanced_sample(test_labels, n_test, rng, "--test-subset")
    splits = {
        "train": data["train"].select(fit_rows),
        "validation": data["train"].select(val_rows),
        "test": data["test"].select(test_rows),
    }
    for name, split in splits.items():
        if len(set(split["label"])) < 2:
            raise UsageError(f"The {name} split holds one label only; use a larger --subset.")
    return splits


def _carve_validation(
    train_labels: np.ndarray, config: TrainConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows of one --subset, validation `val_fraction` of it."""
    from sklearn.model_selection import train_test_split

    rows = balanced_sample(train_labels, config.subset, rng, "--subset")

    def split_sizes(n: int) -> tuple[int, int]:  # as train_test_split rounds: ceil for the test
        n_val = math.ceil(n * config.val_fraction)
        return n - n_val, n_val

    n_fit, n_val = split_sizes(len(rows))
    if min(n_fit, n_val) < 2:  # each split needs a review of each label
        smallest = next(n for n in itertools.count(4) if min(split_sizes(n)) >= 2)
        raise UsageError(
            f"--subset {len(rows)} is too small: with --val-fraction {config.val_fraction} the "
            f"validation split holds {n_val} reviews, and each split needs both labels. "
            f"Use --subset {smallest} or more."
        )
    fit_rows, val_rows = train_test_split(
        rows, test_size=n_val, stratify=train_labels[rows], random_state=config.seed
    )
    return fit_rows, val_rows


# ---------------------------------------------------------------------------------------------
# Model


def load_base(config: TrainConfig) -> tuple[Any, Any]:
    """The base tokenizer (cut at `max_length`) and a 2-label classifier with named labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pooling import MeanPoolingClassifier

    local = Path(config.model).expanduser().is_dir()
    if not local and looks_like_path(config.model):
        raise UsageError(f"--model {config.model}: no such folder.")
    offline = not local and not _hub_reachable()
    options = {  # a head with named labels, loaded as the Hub allows
        "num_labels": len(LABELS),
        "id2label": dict(enumerate(LABELS)),
        "label2id": {name: i for i, name in enumerate(LABELS)},
        "local_files_only": offline,
    }
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=offline)
        if config.pooling == "mean":
            model = MeanPoolingClassifier.from_encoder(config.model, **options)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(config.model, **options)
    except OSError as error:
        if offline:
            raise _hub_unreachable("--model", config.model) from error
        raise UsageError(f"--model {config.model}: could not load it ({error}).") from error
    positions = getattr(model.base_model.config, "max_position_embeddings", None)
    if positions is not None and config.max_length > positions:
        raise UsageError(
            f"--max-length {config.max_length} exceeds the {positions} positions of "
            f"{config.model}; use --max-length {positions} or less."
        )
    if config.dropout is not None:
        set_dropout(model, config.dropout)
    if config.freeze_embeddings:
        # A few thousand reviews move the vectors of the words they hold and leave their
        # synonyms behind. On MiniLM (README): as accurate as training them, 2% less time.
        model.get_input_embeddings().weight.requires_grad_(False)
    # Saved with the tokenizer and the model config, so inference reads reviews as the run says.
    tokenizer.model_max_length = config.max_length
    model.config.truncation = {
        "train": config.truncation,
        "inference": config.reading,
        "head_fraction": config.head_fraction,
    }
    return tokenizer, model


def set_dropout(model: Any, probability: float) -> None:
    """Set every dropout layer of `model` to `probability`: the encoder's hidden and attention
    dropout and the head's, whatever the architecture names them (BERT's attention reads its
    probability from its `nn.Dropout` module too)."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability


def tokenize(
    splits: dict[str, Any], tokenizer: Any, config: TrainConfig, clean: bool = True
) -> dict[str, Any]:
    """Token ids per review, cut by `config.truncation` and unpadded: the collator pads each
    batch to its longest review. `clean=False` skips `clean_text` (benchmarks measure it).

    With `sliding`, a train review keeps all its windows (`windows`: a list of token id lists,
    served one per epoch by `WindowPerEpoch`); the other splits, scored one row per review by
    the Trainer, read head+tail."""

    def cut(batch: dict[str, list], strategy: str) -> dict[str, list]:
        encoded = encode(tokenizer, batch["text"], strategy, config.head_fraction, clean)
        if strategy != "sliding":
            return {key: encoded[key] for key in ("input_ids", "attention_mask")}
        windows: list[list[list[int]]] = [[] for _ in batch["text"]]
        for review, ids in zip(encoded["review"], encoded["input_ids"], strict=True):
            windows[review].append(ids)
        return {"windows": windows}

    def strategy_for(name: str) -> str:  # the Trainer scores evaluation splits a row per review
        if config.truncation == "sliding" and name != "train":
            return "head+tail"
        return config.truncation

    return {
        name: split.map(
            cut,
            batched=True,
            fn_kwargs={"strategy": strategy_for(name)},
            remove_columns=[c for c in split.column_names if c != "label"],
            desc=f"Tokenizing {name}",
        )
        for name, split in splits.items()
    }


class WindowPerEpoch:
    """A train split that gives each review once per epoch, through one of its windows.

    Epoch `e` reads window `order[e % n]` of a review's `n`, in an order shuffled per review by
    `seed`: a review of `n` windows is read whole in `n` epochs, at the cost of one window per
    epoch. The Trainer's DataLoader (accelerate) indexes it and calls `set_epoch` each epoch.

        >>> data = WindowPerEpoch([[[1, 2], [3, 4]]], labels=[0], seed=0)
        >>> sorted(data.set_epoch(epoch) or data[0]["input_ids"] for epoch in (0, 1))
        [[1, 2], [3, 4]]
    """

    def __init__(self, windows: list[list[list[int]]], labels: list[int], seed: int) -> None:
        self.windows, self.labels, self.seed, self.epoch = windows, labels, seed, 0

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any]:
        options = self.windows[index]  # an IndexError past the end stops iteration, as it should
        order = np.random.default_rng([self.seed, index]).permutation(len(options))
        ids = options[order[self.epoch % len(options)]]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "label": self.labels[index]}


def training_arguments(config: TrainConfig, checkpoints: Path) -> Any:
    """The Trainer settings of a run: evaluate and save every epoch, keep the best by F1."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints),
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        greater_is_better=True,
        save_total_limit=1,  # the Trainer still keeps the best checkpoint beside the last
        save_only_model=True,  # no optimizer state: a checkpoint is the weights alone
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.grad_accum,
        # Random pairs of IMDB reviews add padding worth 15% of their tokens at 256 and 28% at
        # 512; batches sorted within shuffled blocks of 200 reviews add almost none. Off by
        # default: 1.8 points less accurate at 512 tokens in the benchmark (README).
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=0.02,  # a share of all steps: 50 points on the loss curve
        report_to="none",  # TensorBoard, if asked, gets its own folder: see `fit`
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for copies to a GPU
    )


def _validation_metrics(prediction: Any) -> dict[str, float]:
    metrics = binary_metrics(prediction.label_ids, positive_probability(prediction.predictions))
    # The Trainer logs scalars, so the matrix travels as its four cells.
    (tn, fp), (fn, tp) = metrics.pop("confusion_matrix")
    return metrics | {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def build_trainer(config: TrainConfig, tokenizer: Any, model: Any, tokens: dict[str, Any]) -> Any:
    """A Trainer for the train split; after `.train()` it holds the best epoch by validation F1."""
    from transformers import DataCollatorWithPadding, Trainer

    checkpoints = Path(config.checkpoint_dir) / Path(config.output_dir).name
    shutil.rmtree(checkpoints, ignore_errors=True)  # scratch from an earlier run
    callbacks = [epoch_summary()]
    train_split, validation = tokens["train"], tokens["validation"]
    # Batches of reviews of like length pad less: 17% fewer token slots for the default's 500
    # validation reviews in batches of 32. A review scores the same in any batch.
    validation = validation.select(np.argsort([len(ids) for ids in validation["input_ids"]]))
    if "windows" in train_split.column_names:  # --truncation sliding
        train_split = WindowPerEpoch(train_split["windows"], train_split["label"], config.seed)
    if config.head_init == "probe":
        callbacks.append(probe_head(train_split, DataCollatorWithPadding(tokenizer), config))
    if config.ema_decay:  # after the probe: the average starts from the fitted head
        callbacks.append(moving_average(config.ema_decay))
    if config.report_to == "tensorboard":
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        logs = TENSORBOARD_DIR / f"{Path(config.output_dir).name}-{time.strftime('%Y%m%d-%H%M%S')}"
        callbacks.append(TensorBoardCallback(SummaryWriter(log_dir=str(logs))))
        logger.info("TensorBoard logs in %s/ (tensorboard --logdir %s)", logs, TENSORBOARD_DIR)
    trainer = Trainer(
        model=model,
        args=training_arguments(config, checkpoints),
        train_dataset=train_split,
        eval_dataset=validation,  # the test split never reaches model selection
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_validation_metrics,
        callbacks=callbacks,
    )
    # The classifier's loss is a mean over its micro-batch. The Trainer takes any model whose
    # forward has **kwargs to normalise by the accumulated batch itself, skips its division by
    # grad_accum, and so sums the means: gradients and logged loss grad_accum times too large.
    trainer.loss_is_scaled_for_ga = False
    trainer.optimizer = layered_optimizer(trainer, config)
    return trainer


# The layer index in a parameter name: BERT's encoder.layer.3.*, DistilBERT's transformer.layer.3.*
LAYER = re.compile(r"\.layer\.(\d+)\.")


def parameter_rates(model: Any, config: TrainConfig) -> dict[str, float]:
    """The peak learning rate of each trainable parameter, by name.

    The head (every parameter outside the base model, `model.base_model_prefix`: the classifier,
    and DistilBERT's pre-classifier) learns at --head-learning-rate. The base model's top layer
    learns at --learning-rate, each layer below at --layer-decay times the one above, and the
    embeddings one step below the lowest layer.

        >>> parameter_rates(model, TrainConfig())["classifier.bias"]  # doctest: +SKIP
        0.001
    """
    base = model.base_model_prefix + "."
    names = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    depth = {name: int(match.group(1)) for name in names if (match := LAYER.search(name))}
    top = max(depth.values(), default=-1)

    def rate(name: str) -> float:
        if not name.startswith(base):
            return config.head_rate
        if name in depth:
            return config.learning_rate * config.layer_decay ** (top - depth[name])
        if ".embeddings." in name:
            return config.learning_rate * config.layer_decay ** (top + 1)
        return config.learning_rate  # above the layers, as BERT's pooler

    return {name: rate(name) for name in names}


def layered_optimizer(trainer: Any, config: TrainConfig) -> Any:
    """The optimizer the Trainer would build, each parameter at its `parameter_rates` rate
    (with one rate for all, the Trainer's own groups). Its warm-up and decay scale every group's
    rate alike.
    """
    from transformers import Trainer

    model, args = trainer.model, trainer.args
    decays = set(trainer.get_decay_parameter_names(model))
    groups: dict[tuple[float, bool], list[Any]] = {}
    parameters = dict(model.named_parameters())
    for name, rate in parameter_rates(model, config).items():
        groups.setdefault((rate, name in decays), []).append(parameters[name])
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    return optimizer_cls(
        [
            {"params": group, "lr": rate, "weight_decay": args.weight_decay if decay else 0.0}
            for (rate, decay), group in groups.items()
        ],
        **kwargs,
    )


def classifier_layer(model: Any) -> Any:
    """The linear layer that turns the head's features into logits: `model.classifier`."""
    from torch import nn

    layer = getattr(model, "classifier", None)
    if not isinstance(layer, nn.Linear):
        raise UsageError(
            f"--head-init probe needs a linear `classifier` layer, which {type(model).__name__} "
            "lacks; use --head-init random."
        )
    return layer


def head_features(model: Any, batches: Any) -> tuple[np.ndarray, np.ndarray]:
    """What the classifier layer reads, (reviews, features), and the labels, over `batches`
    (the model in eval mode: no dropout)."""
    import torch

    layer, features, labels = classifier_layer(model), [], []
    hook = layer.register_forward_hook(lambda _, inputs, __: features.append(inputs[0].float()))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                labels.append(batch.pop("labels"))
                model(**{key: value.to(model.device) for key, value in batch.items()})
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(features).cpu().numpy(), torch.cat(labels).numpy()


def fit_probe(model: Any, features: np.ndarray, labels: np.ndarray) -> float:
    """Set the classifier layer to a logistic regression fitted on (`features`, `labels`);
    return its accuracy on them. With two labels the logits are -z/2 and z/2 for the
    regression's log-odds z, so the softmax gives its probabilities."""
    import torch
    from sklearn.linear_model import LogisticRegression

    layer, held = classifier_layer(model), len(np.unique(labels))
    if held != layer.out_features:  # a column of weights would be missing
        raise UsageError(
            f"--head-init probe: the training reviews hold {held} of the {layer.out_features} "
            "labels; use more reviews (--subset) or --head-init random."
        )
    probe = LogisticRegression(C=PROBE_C, max_iter=1000).fit(features, labels)
    weight, bias = probe.coef_, probe.intercept_
    if held == 2:
        weight, bias = np.vstack([-weight / 2, weight / 2]), np.hstack([-bias / 2, bias / 2])
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))
    return float(probe.score(features, labels))


def probe_head(train_split: Any, collator: Any, config: TrainConfig) -> Any:
    """A Trainer callback that fits the classifier layer as a linear probe when training begins
    (LP-FT: Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"), so the encoder's
    first updates follow a head that already reads sentiment, not a random one."""
    from torch.utils.data import DataLoader
    from transformers import TrainerCallback

    class ProbeHead(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            # The reviews as epoch 1 reads them (with --truncation sliding, its window of each),
            # shortest first to pad little, through a loader of their own: the training
            # loader's shuffle draws stay as they are without the probe.
            rows = sorted(
                (train_split[i] for i in range(len(train_split))), key=lambda r: len(r["input_ids"])
            )
            batches = DataLoader(rows, batch_size=config.eval_batch_size, collate_fn=collator)
            accuracy = fit_probe(kwargs["model"], *head_features(kwargs["model"], batches))
            logger.info(
                "Head fitted as a linear probe on %d training reviews in %.0f s: %.1f%% of them "
                "right before fine-tuning",
                len(rows),
                time.perf_counter() - started,
                100 * accuracy,
            )

    return ProbeHead()


def moving_average(decay: float) -> Any:
    """A Trainer callback that keeps an exponential moving average of the trainable weights and
    swaps it in for each epoch's validation and checkpoint, so the best epoch is picked, and
    published, as averaged. Training goes on from the raw weights.

    The average starts at the initial weights with a shorter memory, decay (1 + t) / (10 + t)
    at step t until that reaches `decay`, so the random head fades out within the first steps.
    """
    import torch
    from transformers import TrainerCallback

    class MovingAverage(TrainerCallback):
        def __init__(self) -> None:
            self.weights: list[Any] = []
            self.average: list[Any] = []
            self.swapped = False

        def swap(self) -> None:
            with torch.no_grad():
                for weight, average in zip(self.weights, self.average, strict=True):
                    held = weight.detach().clone()
                    weight.copy_(average)
                    average.copy_(held)
            self.swapped = not self.swapped

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.weights = [w for w in kwargs["model"].parameters() if w.requires_grad]
            self.average = [w.detach().clone() for w in self.weights]

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.swapped:  # an epoch was validated on the average: train on from the weights
                self.swap()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            step = state.global_step
            weight = 1 - min(decay, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(self.average, [w.detach() for w in self.weights], weight)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.swap()  # the Trainer validates and saves next

    return MovingAverage()


def epoch_summary() -> Any:
    """A Trainer callback that logs one line at the end of each epoch."""
    from transformers import TrainerCallback  # here, so importing this module stays instant

    class EpochSummary(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            metrics = kwargs["metrics"]
            losses = [row["loss"] for row in state.log_history if "loss" in row]
            logger.info(
                "Epoch %g/%g: training loss %s, validation loss %.3f, accuracy %.1f%%, F1 %.1f%%",
                state.epoch,
                args.num_train_epochs,
                f"{losses[-1]:.3f}" if losses else "not logged yet",
                metrics["eval_loss"],
                100 * metrics["eval_accuracy"],
                100 * metrics["eval_f1"],
            )

    return EpochSummary()


VALIDATION_KEYS = ("loss", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The validation metrics of the epoch the Trainer kept (the first of equal F1s, as it does)."""
    best = max((row for row in history if "eval_f1" in row), key=lambda row: row["eval_f1"])
    metrics = {key: best[f"eval_{key}"] for key in VALIDATION_KEYS}
    matrix = [[best["eval_tn"], best["eval_fp"]], [best["eval_fn"], best["eval_tp"]]]
    return {"epoch": best["epoch"]} | metrics | {"confusion_matrix": matrix}


def serving_classifier(model: Any, tokenizer: Any, config: TrainConfig) -> Any:
    """`model` as `infer` will serve it: eval mode, reading as the config says."""
    from infer import Classifier

    model.eval()  # training leaves dropout on
    return Classifier(
        model,
        tokenizer,
        LABELS,
        truncation=config.reading,
        head_fraction=config.head_fraction,
    )


def test_split(
    classifier: Any, split: Any, batch_size: int = 32
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of `classifier` on a split, with its timing, and per review: text, label,
    P(label 1), length in tokens and tokens read."""
    started = time.perf_counter()
    predictions = classifier.classify(split["text"], batch_size)
    seconds = time.perf_counter() - started
    positive = np.array([p.scores[classifier.labels[1]] for p in predictions])
    metrics = binary_metrics(split["label"], positive)
    timing = {"seconds": round(seconds, 1), "reviews_per_second": round(len(split) / seconds, 1)}
    rows = {
        "text": split["text"],
        "label": split["label"],
        "positive": positive,
        "tokens": [p.tokens for p in predictions],
        "read": [p.read for p in predictions],
    }
    return {"reviews": len(split)} | metrics | timing, rows


def fingerprint(splits: dict[str, Any]) -> dict[str, str]:
    """A SHA-256 of each split's texts, in order: equal hashes mean the same reviews."""
    hashes = {}
    for name, split in splits.items():
        digest = hashlib.sha256()
        for text in split["text"]:
            digest.update(text.encode("utf-8") + b"\0")
        hashes[name] = digest.hexdigest()
    return hashes


# ---------------------------------------------------------------------------------------------
# Publishing


def write_results(folder: Path, report: dict[str, Any], rows: dict[str, Any]) -> None:
    """`metrics.json`, the plots, `errors.csv` and the model card."""
    (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_reports(folder, report, rows)


def publish(write: Callable[[Path], None], output_dir: Path) -> None:
    """Let `write` fill a folder beside `output_dir`, check it loads and predicts, swap it in.

    Readers see the old folder or the new one, never a mix; a crash or Ctrl-C at any point
    leaves the old one in place.
    """
    output_dir = output_dir.absolute()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(output_dir)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-{os.getpid()}-", dir=output_dir.parent)
    )
    try:
        write(staging)
        verify(staging)
        _finish(staging)
        _swap(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap, the old model lies here


def verify(folder: Path) -> None:
    """Raise unless `folder` holds safetensors weights that load as the app does, and predict."""
    from infer import load

    pickles = [p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".pth")]
    if pickles:
        raise RuntimeError(f"Refusing to publish pickle files: {', '.join(pickles)}.")
    classifier = load(folder)
    if classifier.labels != LABELS:
        raise RuntimeError(f"The saved model names its labels {classifier.labels}, not {LABELS}.")
    (scores,) = classifier.predict(["A check that the saved model predicts."])
    if not math.isclose(sum(scores.values()), 1.0, abs_tol=1e-4):
        raise RuntimeError(f"The saved model's probabilities do not sum to 1: {scores}.")


def _remove_abandoned(output_dir: Path) -> None:
    """Delete staging folders left by runs that were killed (their process is gone)."""
    for folder in output_dir.parent.glob(f".{output_dir.name}.partial-*"):
        pid = int(folder.name.split("-")[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # alive, owned by another user
            pass


def _finish(folder: Path) -> None:
    """Give the folder the usual permissions and flush it to disk before the swap.

    `mkdtemp` makes a folder only its owner can read; a server under another user must too.
    The flush means a power cut after the swap cannot leave the new files empty.
    """
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for file in folder.iterdir():
        file.chmod(0o666 & ~umask)
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def _swap(new: Path, dest: Path) -> None:
    """Put folder `new` at `dest`; afterwards `new` holds the old `dest`, if there was one."""
    if not dest.exists():
        os.rename(new, dest)
        return
    if _exchange(new, dest):
        return
    # No atomic exchange here (not Linux, or a filesystem without it): two renames. A reader
    # may find no folder for a moment, but never a mix of two models.
    aside = new.with_name(new.name + "-old")
    os.rename(dest, aside)
    os.rename(new, dest)
    os.rename(aside, new)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step with Linux's renameat2(RENAME_EXCHANGE); False if unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


# ---------------------------------------------------------------------------------------------
# The run


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a run."""
    from importlib.metadata import version

    names = ("torch", "transformers", "accelerate", "datasets", "scikit-learn")
    return {"python": platform.python_version()} | {name: version(name) for name in names}


def prepare(config: TrainConfig, splits: dict[str, Any], clean: bool = True) -> tuple[Any, Any]:
    """The tokenizer, and a Trainer with the base model and the tokenized splits, seeded.

    `trainer.train()` then fine-tunes; `run` calls this, and so do the benchmarks.
    """
    from transformers import set_seed

    set_seed(config.seed)  # before the classifier head is initialised
    tokenizer, model = load_base(config)
    if config.head_init == "probe":
        classifier_layer(model)  # a head the probe cannot fit stops the run now, not at epoch 0
    logger.info(
        "Model %s (%.1fM parameters, %s pooling), %d tokens (%s), %g epochs, batch %d x %d, "
        "lr %g (head %g)",
        config.model,
        model.num_parameters() / 1e6,
        config.pooling,
        config.max_length,
        config.truncation,
        config.epochs,
        config.batch_size,
        config.grad_accum,
        config.learning_rate,
        config.head_rate,
    )
    fit = {name: splits[name] for name in ("train", "validation")}  # the test split stays out
    tokens = tokenize(fit, tokenizer, config, clean)
    return tokenizer, build_trainer(config, tokenizer, model, tokens)


def run(config: TrainConfig) -> dict[str, Any]:
    """Train, test and publish one model as `config` says; return what `metrics.json` holds."""
    from transformers import set_seed

    started = time.perf_counter()
    check_config(config)
    data = load_data(config.data)
    splits = make_splits(data, config)
    sizes = {name: len(split) for name, split in splits.items()}
    logger.info(
        "Data %s: %s train, %s validation, %s test reviews (balanced)",
        config.data,
        *(f"{n:,}" for n in sizes.values()),
    )
    tokenizer, trainer = prepare(config, splits)
    logger.info("Baseline: the base model with its untrained head, on the test reviews")
    baseline, _ = test_split(
        serving_classifier(trainer.model, tokenizer, config), splits["test"], config.eval_batch_size
    )
    set_seed(config.seed)  # each DataLoader draws from the global RNG: training starts afresh
    trained = trainer.train()
    logger.info("Testing the best epoch on %s test reviews", f"{sizes['test']:,}")
    test, rows = test_split(
        serving_classifier(trainer.model, tokenizer, config), splits["test"], config.eval_batch_size
    )
    report = {
        "name": f"{Path(config.model).name}-imdb-sentiment",
        "labels": list(LABELS),
        "max_length": config.max_length,
        "test": test,
        "baseline": baseline,
        "validation": best_epoch(trainer.state.log_history),
        "train": {
            "loss": trained.training_loss,  # mean over all steps
            "seconds": round(trained.metrics["train_runtime"], 1),
            "reviews_per_second": round(trained.metrics["train_samples_per_second"], 2),
        },
        "test_truncated_share": truncated_share(rows["tokens"], config.max_length),
        "data": {"source": config.data} | sizes | {"sha256": fingerprint(splits)},
        "config": asdict(config),
        "versions": versions(),
        "history": trainer.state.log_history,
    }
    report["seconds"] = round(time.perf_counter() - started, 1)

    def write(folder: Path) -> None:
        trainer.model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        write_results(folder, report, rows)

    publish(write, Path(config.output_dir))
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # the model folder replaces them
    return report


def trained_config(saved: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The settings a published model was trained with, from the `config` of its metrics.json,
    with the `overrides` that are not None.

    >>> trained_config(json.loads(Path("model/metrics.json").read_text())["config"]).seed
    42
    """
    # Models saved before these settings existed were trained on the head alone and read as
    # trained, with the base model's own [CLS] head, their epoch picked on 10% of the subset.
    before = {
        "head_learning_rate": None,  # the head learnt at --learning-rate
        "head_init": "random",
        "ema_decay": 0.0,  # published as trained
        "dropout": None,  # the base model's own
        "truncation": "head",
        "inference_truncation": None,
        "pooling": "cls",
        "val_reviews": 0,
    }
    return TrainConfig(**before | saved | {k: v for k, v in overrides.items() if v is not None})


def evaluate(model_dir: Path, data: str | None = None, test_subset: int | None = None) -> dict:
    """Re-test a published model and rewrite its metrics and reports, without training.

    The test reviews are drawn as the training run drew them (its saved settings and seed),
    from `data` and `test_subset` where given.
    """
    from infer import ModelNotFoundError, check_model_dir, load

    try:
        check_model_dir(model_dir)
    except ModelNotFoundError as error:
        raise UsageError(str(error)) from error
    if not (model_dir / "metrics.json").is_file():
        raise UsageError(
            f"{model_dir}/ has no metrics.json, so its test settings are unknown; "
            "retrain it with python main.py."
        )
    saved = json.loads((model_dir / "metrics.json").read_text())
    config = trained_config(saved["config"], data=data, test_subset=test_subset)
    splits = make_splits(load_data(config.data), config)
    classifier = load(model_dir)  # reads long reviews as saved with the model
    logger.info("Testing %s on %s test reviews", model_dir, f"{len(splits['test']):,}")
    test, rows = test_split(classifier, splits["test"], config.eval_batch_size)
    hashes = fingerprint(splits)
    baseline = saved.get("baseline")
    if hashes["test"] != saved["data"]["sha256"]["test"]:
        baseline = None  # measured on other reviews; the card then says "not measured"
    sizes = {name: len(split) for name, split in splits.items()}
    report = saved | {
        "test": test,
        "baseline": baseline,
        "test_truncated_share": truncated_share(rows["tokens"], classifier.max_length),
        "data": saved["data"] | {"source": config.data, "test": sizes["test"], "sha256": hashes},
        "config": asdict(config),
    }

    def write(folder: Path) -> None:
        rewritten = {*PLOTS.values(), ERRORS_FILE, CARD_FILE, "metrics.json"}
        for file in model_dir.iterdir():
            if file.name in rewritten:
                continue  # written afresh below, never edited in place
            try:
                os.link(file, folder / file.name)  # the same weights, without a copy
            except OSError:
                shutil.copy2(file, folder / file.name)
        write_results(folder, report, rows)

    publish(write, model_dir)
    return report
