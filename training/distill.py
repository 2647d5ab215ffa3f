"""Distillation (`--teacher FOLDER`): a model learns its teacher's calibrated probabilities, on
the training texts (half and half with their true labels) and on unlabelled texts the teacher
labels (`--unlabelled-data`), so a small encoder can read as a large one reads.

    python main.py --config configs/student.yaml --teacher teacher/

The teacher is a folder `python main.py` published: it answers as `infer` serves it, its
calibration applied (Hinton et al. 2015 soften with a temperature; the teacher's own fitted
temperatures are that softening, chosen on held-out texts rather than by hand). The student
draws the same splits as its teacher (`check_teacher`), so no text the teacher trained on is
held out to choose or calibrate the student.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from training.config import LABELS, TrainConfig, UsageError, flag, saved_config, split_seed
from training.extra import Overlap, evaluation_texts, held_out_texts, parse_source, read_source
from utils import has_words

logger = logging.getLogger(__name__)

# Share of a labelled text's target that is the teacher's: the rest is its true label. Texts
# without a label learn the teacher's alone.
TEACHER_WEIGHT = 0.5
# The split of a Hub dataset that `--unlabelled-data` reads: IMDB's 50,000 unlabelled reviews
# are `unsupervised`; a dataset without one gives its training texts.
UNLABELLED_SPLITS = ("unsupervised", "train")
# Settings that decide which texts a run trains, validates and tests on.
# A published folder's files that decide its answers: a new training of the same folder name
# changes metrics.json (its history and timings), and a new export the ONNX graphs that serve
# it, so its labels are computed afresh.
TEACHER_FILES = (
    "metrics.json",
    "calibration.json",
    "config.json",
    "model_quantized.onnx",
    "model_fp32.onnx",
)
SPLIT_SETTINGS = ("data", "subset", "val_reviews", "test_subset", "extra_data", "short_data")


def check_teacher(config: TrainConfig) -> dict[str, Any]:
    """The teacher's metrics.json; UsageError when the folder is not a published model or drew
    other splits than `config` would, naming the flags that make them the same."""
    folder = Path(config.teacher or "").expanduser()
    metrics = folder / "metrics.json"
    if not metrics.is_file() or not (folder / "config.json").is_file():
        raise UsageError(
            f"--teacher {folder}: not a published model folder (no metrics.json or "
            "config.json). Pass a folder that python main.py published."
        )
    report = json.loads(metrics.read_text())
    if list(report.get("labels", [])) != list(LABELS):
        raise UsageError(f"--teacher {folder} labels {report.get('labels')}; this needs {LABELS}.")
    teacher = saved_config(report["config"], f"--teacher {folder}")
    wanted = {name: getattr(teacher, name) for name in SPLIT_SETTINGS}
    wanted["data_seed"] = split_seed(teacher)
    ours = {name: getattr(config, name) for name in SPLIT_SETTINGS}
    ours["data_seed"] = split_seed(config)
    differ = [name for name in wanted if _same(wanted[name]) != _same(ours[name])]
    if differ:
        flags = " ".join(_flag(name, wanted[name]) for name in differ)
        raise UsageError(
            f"--teacher {folder} drew its splits otherwise ({', '.join(map(flag, differ))}): "
            "a student holds out the texts its teacher held out, or it would be chosen and "
            f"calibrated on texts the teacher learned. Add: {flags}"
        )
    return report


def _same(value: Any) -> Any:
    """A setting as compared: local paths resolved, so `../data` and `/work/data` agree."""
    if isinstance(value, tuple):
        return tuple(_same(item) for item in value)
    if isinstance(value, str):
        name, rows = parse_source(value)  # a FILE:ROWS source, or a plain path or name
        if Path(name).expanduser().exists():
            return (str(Path(name).expanduser().resolve()), rows)
    return value


def _flag(name: str, value: Any) -> str:
    """The flag that sets `name` to `value`, as a user would type it."""
    if isinstance(value, tuple):
        return f"{flag(name)} {' '.join(value)}" if value else ""
    return f"{flag(name)} {value}" if value is not None else ""


def unlabelled_texts(
    specs: tuple[str, ...], evaluation: list[str], seed: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """The texts of each `--unlabelled-data` source, less those without a letter and those equal
    to or inside an `evaluation` text (as `--extra-data` drops them), ROWS of a `SOURCE:ROWS`
    drawn at random; and a row count per source for metrics.json."""
    taken = Overlap(evaluation)
    rng = np.random.default_rng([seed, 13])  # its own stream: the splits' draws stay as they are
    texts, counts = [], []
    wanted = "a file with a text column (IMDB's unsup.parquet) or a Hub dataset: stanfordnlp/imdb"
    for spec in specs:
        name, rows = parse_source(spec)
        frame = read_source(spec, "--unlabelled-data", UNLABELLED_SPLITS, wanted)
        if "text" not in frame.column_names:
            raise UsageError(f"--unlabelled-data {spec}: no text column; name it text.")
        source = frame["text"]
        fresh = np.flatnonzero(
            [isinstance(t, str) and has_words(t) and not taken(t) for t in source]
        )
        kept = fresh if rows is None or rows >= len(fresh) else rng.choice(fresh, rows, False)
        texts += [source[i] for i in sorted(kept.tolist())]
        counts.append({"source": name, "rows": len(source), "train": len(kept)})
    return texts, counts


def teacher_probabilities(teacher: str, texts: list[str]) -> np.ndarray:
    """The teacher's calibrated probabilities of `texts`, (texts, labels), as `infer` serves
    them: its backend, reading and temperatures. Kept in the datasets cache, keyed by the
    teacher's published files and the texts, so a second student of the same teacher and data
    (another seed, another size) does not pay for them again: a base-size teacher labelled the
    typed-review recipe's texts and 1,000 unlabelled reviews (59,337) in 35 minutes on 2 CPU
    cores; the next student read them from the cache."""
    from datasets import config as datasets_config
    from tqdm.auto import tqdm

    from serving.classifier import load

    folder = Path(teacher).expanduser()
    key = hashlib.sha256()
    for name in TEACHER_FILES:
        if (folder / name).is_file():  # streamed: a base-size fp32 graph is 400 MB
            with open(folder / name, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").digest()
            key.update(name.encode() + b"\0" + digest)
    for text in texts:
        key.update(text.encode() + b"\0")
    cache = Path(datasets_config.HF_DATASETS_CACHE) / "teacher-labels" / f"{key.hexdigest()}.npy"
    if cache.is_file():
        logger.info("Teacher labels of %d texts read from %s", len(texts), cache)
        return np.load(cache)
    classifier = load(folder)
    chunk = 256
    rows = []
    for start in tqdm(range(0, len(texts), chunk), desc="Teacher labelling", unit="chunk"):
        predictions = classifier.classify(texts[start : start + chunk])
        rows += [[p.scores[label] for label in LABELS] for p in predictions]
    probabilities = np.asarray(rows, dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.npy")  # np.save keeps a name ending in .npy
    np.save(partial, probabilities)
    os.replace(partial, cache)  # whole or absent: a killed run leaves no half-written labels
    return probabilities


def with_targets(train: Any, unlabelled: list[str], teacher: str) -> tuple[Any, float]:
    """The training split with the unlabelled texts after it and a `soft_labels` column: what
    each text teaches, `TEACHER_WEIGHT` of the teacher's probabilities and the rest its true
    label, or the teacher's alone for an unlabelled text (whose `label` is the teacher's); and
    the share of training labels the teacher's top label agrees with."""
    from datasets import Dataset, concatenate_datasets

    texts = list(train["text"]) + unlabelled
    probabilities = teacher_probabilities(teacher, texts)
    labels = np.asarray(train["label"])
    truth = np.eye(len(LABELS), dtype=np.float32)[labels]
    ours = probabilities[: len(labels)]
    targets = np.vstack(
        [TEACHER_WEIGHT * ours + (1 - TEACHER_WEIGHT) * truth, probabilities[len(labels) :]]
    )
    extra = Dataset.from_dict(
        {"text": unlabelled, "label": probabilities[len(labels) :].argmax(1).tolist()}
    )
    base = train.select_columns(["text", "label"])
    merged = concatenate_datasets([base, extra.cast(base.features)]) if unlabelled else base
    agree = float(np.mean(ours.argmax(1) == labels)) if len(labels) else 0.0
    logger.info(
        "Teacher labelled %d training texts (its labels agree with %.1f%% of the true ones) and "
        "%d unlabelled texts",
        len(labels),
        100 * agree,
        len(unlabelled),
    )
    return merged.add_column("soft_labels", targets.tolist()), agree


def distil(
    config: TrainConfig, teacher: dict[str, Any], splits: dict[str, Any], short_sets: dict
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """`splits` with the training split the student learns (`with_targets`: the teacher's
    targets, the unlabelled texts after it), what metrics.json and the card say of the
    `teacher` (its metrics.json, `check_teacher`), and a row count per unlabelled source."""
    evaluation = evaluation_texts(splits, held_out_texts(short_sets))
    texts, counts = unlabelled_texts(config.unlabelled_data, evaluation, split_seed(config))
    train, agreement = with_targets(splits["train"], texts, str(config.teacher))
    summary = {
        "folder": config.teacher,
        "name": teacher["name"],
        "base": teacher.get("base"),
        "test_accuracy": teacher["test"]["accuracy"],
        "agreement_with_training_labels": agreement,
    }
    return splits | {"train": train}, summary, counts


def soft_cross_entropy(logits: Any, targets: Any) -> Any:
    """Mean cross-entropy of `logits` against probability `targets` (KL divergence to the
    targets plus their constant entropy: the same gradients)."""
    import torch

    return torch.nn.functional.cross_entropy(logits.float(), targets.float())
