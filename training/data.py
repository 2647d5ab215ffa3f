"""Loading review data, checking it, and carving balanced splits: the only place that reads data.

from training.data import load_data, make_splits
splits = make_splits(load_data("../shared/data/imdb"), TrainConfig(subset=1000))
[len(splits[name]) for name in ("train", "validation", "test")]
# [1000, 500, 1000]
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from serving import hub
from training.config import TrainConfig, UsageError, split_seed
from utils import clean_text, split_sentences

DATA_SUFFIXES = (".parquet", ".csv", ".jsonl")
# Words in a snippet: visitors type a line or two, 20 words on average on the short-review sets.
SNIPPET_WORDS = (4, 40)
# Held-out short reviews for calibration: a first cut by words (64 tokens, the short limit,
# is about 45 to 60 words); scoring.calibrated keeps those of at most 64 tokens.
SHORT_REVIEW_WORDS = 60


def hub_unreachable(flag: str, name: str, local: str = "folder") -> UsageError:
    return UsageError(
        f"{flag} {name}: the Hugging Face Hub is unreachable and '{name}' is not cached here. "
        f"Pass a local {local} instead: {flag} PATH (see README, 'Without the Hugging Face Hub')."
    )


def load_data(source: str) -> dict[str, Any]:
    """The `train` and `test` splits of `source` as `datasets.Dataset`s, checked.

    `source` is a folder with train/test files, an extracted `aclImdb` folder, or a Hub name.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        splits = {split: _read_local(path, split) for split in ("train", "test")}
    elif hub.hub_id(source) is None or path.suffix in DATA_SUFFIXES:
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
    return read_file(found[0])


def read_file(file: Path) -> Any:
    """A .parquet, .csv or .jsonl file as a `datasets.Dataset`."""
    import pandas as pd
    from datasets import Dataset

    if file.suffix == ".parquet":
        frame = pd.read_parquet(file)
    elif file.suffix == ".csv":
        frame = pd.read_csv(file, keep_default_na=False)
    else:
        frame = pd.read_json(file, lines=True)
    return Dataset.from_pandas(frame, preserve_index=False)


def _read_hub(name: str) -> dict[str, Any]:
    loaded = load_hub(name, "--data")
    missing = {"train", "test"} - set(loaded)
    if missing:
        raise UsageError(f"--data {name} has no {' or '.join(sorted(missing))} split.")
    return {"train": loaded["train"], "test": loaded["test"]}


def load_hub(name: str, flag: str, local: str = "folder") -> Any:
    """A Hub dataset's splits (`serving.hub.load_dataset`); without the Hub, a UsageError
    within seconds that names the fix."""
    try:
        return hub.load_dataset(name)
    except OSError as error:
        raise hub_unreachable(flag, name, local) from error
    except ValueError as error:
        raise UsageError(f"{flag} {name}: {error}.") from error


def load_short_sets(folder: str) -> dict[str, Any]:
    """Each .parquet, .csv or .jsonl file of `folder` as a checked `datasets.Dataset`, by name.

    sorted(load_short_sets("../shared/data/short"))
    # ['rotten_tomatoes_validation', 'sst2_validation', 'typed_reviews_dev']
    """
    path = Path(folder).expanduser()
    files = sorted(f for f in path.glob("*") if f.suffix in DATA_SUFFIXES) if path.is_dir() else []
    if not files:
        raise UsageError(
            f"--short-data {folder}: no .parquet, .csv or .jsonl files there. Pass a folder of "
            "short-review sets with columns text and label."
        )
    sets = {file.stem: read_file(file) for file in files}
    for name, dataset in sets.items():
        check_data(dataset, f"--short-data {name}")
    return sets


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
    """Balanced train/validation/test subsets, shuffled. Validation is `val_reviews` reviews of
    the training split beside the subset: the test split never chooses anything."""
    rng = np.random.default_rng(split_seed(config))
    train_labels = np.asarray(data["train"]["label"])
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


def short_reviews(data: dict[str, Any], splits: dict[str, Any]) -> dict[str, list]:
    """The training split's reviews of at most SHORT_REVIEW_WORDS words that `splits` neither
    trains nor validates on: real short reviews with their own labels, which calibration
    needs beside snippets (about 500 of 23,500 at the default subset; none with --subset 0)."""
    used = set(splits["train"]["text"]) | set(splits["validation"]["text"])
    out: dict[str, list] = {"text": [], "label": []}
    for text, label in zip(data["train"]["text"], data["train"]["label"], strict=True):
        if len(text.split()) <= SHORT_REVIEW_WORDS and text not in used:
            out["text"].append(text)
            out["label"].append(label)
    return out


def fingerprint(splits: dict[str, Any]) -> dict[str, str]:
    """A SHA-256 of each split's texts, in order: equal hashes mean the same reviews."""
    hashes = {}
    for name, split in splits.items():
        digest = hashlib.sha256()
        for text in split["text"]:
            digest.update(text.encode("utf-8") + b"\0")
        hashes[name] = digest.hexdigest()
    return hashes


def snippets(texts: list[str], labels: list[int], per_review: int, seed: int) -> dict[str, list]:
    """`per_review` short snippets of each review, each one or two consecutive sentences of
    4 to 40 words, labelled as the review: `{"text": [...], "label": [...]}`. A review with no
    such sentence gives none; a snippet is never the whole text (a one-sentence text gives none).

    Reviews are labelled as a whole, so a snippet of a positive review may be a neutral plot
    line or a complaint. Calibration fits its short-text temperature on them
    (`serving/calibration.py`); training on them lowered accuracy on short reviews
    (benchmarks/NOTES.md).
    """
    rng = np.random.default_rng([seed, 7])  # its own stream: the splits' draws stay as they are
    out: dict[str, list] = {"text": [], "label": []}
    low, high = SNIPPET_WORDS
    for text, label in zip(texts, labels, strict=True):
        sentences = split_sentences(clean_text(text))
        spans = [
            " ".join(sentences[i : i + n])
            for n in (1, 2)
            for i in range(len(sentences) - n + 1)
            # A short text (an extra source's sentence) is calibrated as itself already.
            if low <= len(" ".join(sentences[i : i + n]).split()) <= high and n < len(sentences)
        ]
        for j in rng.permutation(len(spans))[:per_review]:
            out["text"].append(spans[j])
            out["label"].append(label)
    return out
