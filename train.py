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
import itertools
import json
import logging
import math
import os
import platform
import shutil
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from utils import binary_metrics, encode

logger = logging.getLogger(__name__)

# Class names by label id: the data's 0 is a negative review, 1 a positive one. They go into
# the model config (id2label), and every reader of the model takes them from there.
LABELS = ("NEGATIVE", "POSITIVE")
DATA_SUFFIXES = (".parquet", ".csv", ".jsonl")


class UsageError(ValueError):
    """Bad settings or data, found before training; the message names the fix."""


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a run. The defaults are the documented run; `main.py` makes each a flag."""

    subset: int = field(
        default=2000,
        metadata={"help": "training reviews, balanced across labels; 0 uses all of them"},
    )
    test_subset: int | None = field(
        default=None,
        metadata={"help": "test reviews, balanced (default: same as --subset; 0: all)"},
    )
    val_fraction: float = field(
        default=0.1,
        metadata={"help": "share of --subset held out to pick the best epoch (stratified)"},
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
    warmup_ratio: float = field(
        default=0.1, metadata={"help": "share of optimizer steps spent warming up"}
    )
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    # tokens; longer reviews are cut. DistilBERT and BERT hold at most 512 positions.
    max_length: int = field(default=256, metadata={"help": "tokens read per review"})
    seed: int = field(default=42, metadata={"help": "seeds sampling, splits, weights, order"})
    batch_size: int = field(default=2, metadata={"help": "training reviews per device step"})
    grad_accum: int = field(
        default=2, metadata={"help": "steps summed per optimizer update (effective batch 4)"}
    )
    eval_batch_size: int = field(
        default=32, metadata={"help": "reviews per step when evaluating (memory only)"}
    )


# ---------------------------------------------------------------------------------------------
# Settings and sources


def check_config(config: TrainConfig) -> None:
    """Raise UsageError for settings that cannot work, before anything is loaded."""
    positive = ("epochs", "learning_rate", "max_length", "batch_size", "grad_accum")
    for name in positive:
        if getattr(config, name) <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be positive, got {getattr(config, name)}.")
    if config.subset < 0 or (config.test_subset is not None and config.test_subset < 0):
        raise UsageError("--subset and --test-subset count reviews: use 0 (all) or more.")
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


def _looks_like_path(name: str) -> bool:
    """Whether `name` is meant as a folder: Hub names are `name` or `owner/name`."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1


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
    elif _looks_like_path(source) or path.suffix in DATA_SUFFIXES:
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
    """Balanced train/validation/test subsets. Validation is carved from training data only."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(config.seed)
    train_labels = np.asarray(data["train"]["label"])
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


# ---------------------------------------------------------------------------------------------
# Model


def load_base(config: TrainConfig) -> tuple[Any, Any]:
    """The base tokenizer (cut at `max_length`) and a 2-label classifier with named labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    local = Path(config.model).expanduser().is_dir()
    if not local and _looks_like_path(config.model):
        raise UsageError(f"--model {config.model}: no such folder.")
    offline = not local and not _hub_reachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=offline)
        model = AutoModelForSequenceClassification.from_pretrained(
            config.model,
            num_labels=len(LABELS),
            id2label=dict(enumerate(LABELS)),
            label2id={name: i for i, name in enumerate(LABELS)},
            local_files_only=offline,
        )
    except OSError as error:
        if offline:
            raise _hub_unreachable("--model", config.model) from error
        raise UsageError(f"--model {config.model}: could not load it ({error}).") from error
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is not None and config.max_length > positions:
        raise UsageError(
            f"--max-length {config.max_length} exceeds the {positions} positions of "
            f"{config.model}; use --max-length {positions} or less."
        )
    # Saved with the tokenizer, so inference cuts reviews exactly where training did.
    tokenizer.model_max_length = config.max_length
    return tokenizer, model


def tokenize(splits: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """Token ids per review, unpadded: the collator pads each batch to its longest review."""
    return {
        name: split.map(
            lambda batch: encode(tokenizer, batch["text"]),
            batched=True,
            remove_columns=[c for c in split.column_names if c != "label"],
            desc=f"Tokenizing {name}",
        )
        for name, split in splits.items()
    }


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
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a share of all steps
        weight_decay=config.weight_decay,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=50,
        report_to="none",
        dataloader_pin_memory=torch.cuda.is_available(),  # pinning is for copies to a GPU
    )


def _validation_metrics(prediction: Any) -> dict[str, float]:
    metrics = binary_metrics(prediction.label_ids, prediction.predictions.argmax(-1))
    metrics.pop("confusion_matrix")  # the Trainer logs scalars; the matrix is kept for test
    return metrics


def fit(config: TrainConfig, tokenizer: Any, model: Any, tokens: dict[str, Any]) -> Any:
    """Fine-tune on the train split; the Trainer ends holding the best epoch by validation F1."""
    from transformers import DataCollatorWithPadding, Trainer

    checkpoints = Path(config.checkpoint_dir) / Path(config.output_dir).name
    shutil.rmtree(checkpoints, ignore_errors=True)  # scratch from an earlier run
    trainer = Trainer(
        model=model,
        args=training_arguments(config, checkpoints),
        train_dataset=tokens["train"],
        eval_dataset=tokens["validation"],  # the test split never reaches model selection
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=_validation_metrics,
    )
    # The classifier's loss is a mean over its micro-batch. The Trainer takes any model whose
    # forward has **kwargs to normalise by the accumulated batch itself, skips its division by
    # grad_accum, and so sums the means: gradients and logged loss grad_accum times too large.
    trainer.loss_is_scaled_for_ga = False
    trainer.train()
    return trainer


def best_epoch(trainer: Any) -> dict[str, Any]:
    """The validation metrics of the epoch the Trainer kept."""
    evals = [row for row in trainer.state.log_history if "eval_f1" in row]
    best = max(evals, key=lambda row: row["eval_f1"])  # the first of equals, as the Trainer
    return {"epoch": best["epoch"]} | {
        key.removeprefix("eval_"): value
        for key, value in best.items()
        if key.startswith("eval_") and key.removeprefix("eval_") in _METRIC_NAMES
    }


_METRIC_NAMES = ("loss", "accuracy", "precision", "recall", "f1")


def test(trainer: Any, test_tokens: Any) -> dict[str, Any]:
    """Metrics of the kept model on the test split: the one time the test split is used."""
    prediction = trainer.predict(test_tokens, metric_key_prefix="test")
    metrics = binary_metrics(prediction.label_ids, prediction.predictions.argmax(-1))
    return {"loss": prediction.metrics["test_loss"], "reviews": len(test_tokens)} | metrics


# ---------------------------------------------------------------------------------------------
# Publishing


def publish(model: Any, tokenizer: Any, report: dict[str, Any], output_dir: Path) -> None:
    """Write the model folder beside `output_dir`, check it loads and predicts, then swap it in.

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
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
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
    set_seed(config.seed)  # before the classifier head is initialised
    tokenizer, model = load_base(config)
    logger.info(
        "Model %s (%.1fM parameters), %d tokens, %g epochs, batch %d x %d, lr %g",
        config.model,
        model.num_parameters() / 1e6,
        config.max_length,
        config.epochs,
        config.batch_size,
        config.grad_accum,
        config.learning_rate,
    )
    tokens = tokenize(splits, tokenizer)
    trainer = fit(config, tokenizer, model, tokens)
    report = {
        "test": test(trainer, tokens["test"]),
        "validation": best_epoch(trainer),
        "train_loss": trainer.state.log_history[-1]["train_loss"],  # mean over all steps
        "data": {"source": config.data} | sizes,
        "config": asdict(config),
        "versions": versions(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    publish(trainer.model, tokenizer, report, Path(config.output_dir))
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # the model folder replaces them
    return report
