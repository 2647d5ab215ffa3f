"""Extra labelled texts for the training split (`--extra-data`): files or Hub datasets, drawn,
kept apart from every evaluation text, and shared out between training and validation; and
`build_splits`, the data of a run with them.

    load_extra("rotten_tomatoes", LABELS)            # a Hub dataset's train split
    parse_source("stanfordnlp/sst2:10000")            # ('stanfordnlp/sst2', 10000)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from serving.hub import hub_id
from training.config import LABELS, TrainConfig, UsageError, split_seed
from training.data import (
    DATA_SUFFIXES,
    check_data,
    load_data,
    load_hub,
    make_splits,
    read_file,
)
from utils import clean_text, has_words

# A share of each extra source held out of training: it joins the validation split, so the
# best epoch and the calibration (temperature for short texts, unsure threshold) see sentences
# like those of the source, not only IMDB reviews. 5% of 6,306 Rotten Tomatoes sentences is 315.
EXTRA_VALIDATION_SHARE = 0.05
# Hub datasets name their text column differently: stanfordnlp/sst2 calls it `sentence`.
TEXT_COLUMNS = ("text", "sentence")
# An extra row whose words run, in order, inside a short evaluation text (a validation, test
# or --short-data text of at most this many words) is dropped as well as an equal one: SST-2
# holds every phrase of its sentences' parse trees. Phrases of fewer than 20 letters and
# digits ("not bad") are common language, not a copy, and stay.
CONTAINED_WORDS = 64
CONTAINED_CHARS = 20
_WORD = re.compile(r"[^\W_]+")  # letters and digits: "doesn't" is doesn, t


def parse_source(spec: str) -> tuple[str, int | None]:
    """A `--extra-data` source and the rows to take from it: `NAME:ROWS` takes ROWS at random.

    parse_source("stanfordnlp/sst2:10000"), parse_source("extra.csv")
    # (('stanfordnlp/sst2', 10000), ('extra.csv', None))
    """
    name, _, rows = spec.rpartition(":")
    if name and rows.isdigit():
        return name, int(rows)
    return spec, None


def read_source(spec: str, flag: str, splits: tuple[str, ...], wanted: str) -> Any:
    """Every row of one `flag` source (the ROWS of a `NAME:ROWS` are drawn later) as a
    `datasets.Dataset` whose text column, if it has one of `TEXT_COLUMNS`, is named `text`: a
    .csv, .jsonl or .parquet file, or the first of `splits` that a Hub dataset has. UsageError
    naming the fix otherwise; `wanted` says what to pass instead."""
    source, _ = parse_source(spec)
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in DATA_SUFFIXES:
        dataset = read_file(path)
    elif hub_id(source) is None or path.suffix in DATA_SUFFIXES:
        raise UsageError(f"{flag} {spec}: no such .csv, .jsonl or .parquet file. Pass {wanted}.")
    else:
        loaded = load_hub(source, flag, "file")
        split = next((split for split in splits if split in loaded), None)
        if split is None:
            raise UsageError(
                f"{flag} {source} has no {' or '.join(splits)} split; pass a local file."
            )
        dataset = loaded[split]
    text = next((name for name in TEXT_COLUMNS if name in dataset.column_names), "text")
    return dataset if text == "text" else dataset.rename_column(text, "text")


def load_extra(spec: str, labels: tuple[str, ...]) -> Any:
    """More labelled reviews for training, checked, with columns `text` and `label`: a .csv,
    .jsonl or .parquet file (`label` 0/1 or a label name; the app's feedback file reads its
    `corrected` column), or a Hub dataset's train split (`rotten_tomatoes`, `stanfordnlp/sst2`).
    `NAME:ROWS` keeps ROWS of them (see `add_extra`).

    len(load_extra("../shared/data/extra/rotten_tomatoes_train.parquet", LABELS))
    # 6306
    """
    wanted = (
        "a file of labelled reviews (text, label) or a Hub dataset name such as rotten_tomatoes"
    )
    frame = read_source(spec, "--extra-data", ("train",), wanted).to_pandas()
    if "label" not in frame.columns and "corrected" in frame.columns:
        frame = frame.rename(columns={"corrected": "label"})
    if "label" in frame.columns:
        ids = {name.upper(): i for i, name in enumerate(labels)} | {"0": 0, "1": 1}
        frame["label"] = [ids.get(str(label).strip().upper(), label) for label in frame["label"]]
    from datasets import Dataset

    dataset = Dataset.from_pandas(frame, preserve_index=False)
    check_data(dataset, f"--extra-data {spec}")
    return dataset.select_columns(["text", "label"])


def add_extra(
    splits: dict[str, Any], sources: dict[str, Any], held_out: list[str], seed: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`splits` with each extra source (by its `--extra-data` spec) shared out: rows equal to,
    or inside, a validation, test or `held_out` text dropped, and rows without a letter; then
    ROWS of a `NAME:ROWS` spec drawn at random; `EXTRA_VALIDATION_SHARE` of the rest added to
    the validation split and the others to the training split, shuffled. Returns the splits and
    a row count per source for metrics.json and the model card."""
    from datasets import concatenate_datasets

    taken = Overlap(evaluation_texts(splits, held_out))
    rng = np.random.default_rng([seed, 11])  # its own stream: the IMDB draws stay as they are
    train, validation, counts = [], [], []
    for spec, extra in sources.items():
        name, rows = parse_source(spec)
        # A row without a letter ("1987", "(": SST-2 holds 7) teaches nothing and is refused
        # by every reader of reviews, calibration included: dropped with the evaluation texts.
        fresh = np.flatnonzero([has_words(text) and not taken(text) for text in extra["text"]])
        kept = fresh
        if rows is not None and rows < len(fresh):
            kept = rng.choice(fresh, size=rows, replace=False)
        kept = rng.permutation(kept)
        n_val = int(len(kept) * EXTRA_VALIDATION_SHARE)
        validation.append(extra.select(kept[:n_val]))
        train.append(extra.select(kept[n_val:]))
        counts.append(
            {
                "source": name,
                "rows": len(extra),
                "dropped": len(extra) - len(fresh),  # an evaluation text, in one, or no words
                "train": len(kept) - n_val,
                "validation": n_val,
            }
        )

    def merged(split: str, parts: list[Any]) -> Any:
        own = splits[split].select_columns(["text", "label"])
        return concatenate_datasets([own, *(part.cast(own.features) for part in parts)])

    return splits | {
        "train": merged("train", train).shuffle(seed=seed),
        "validation": merged("validation", validation),
    }, counts


def evaluation_texts(splits: dict[str, Any], held_out: list[str]) -> list[str]:
    """Every text a run is chosen, calibrated or tested on: its validation and test splits and
    `held_out` (the --short-data sets' texts). Data added for training never copies one."""
    return [*splits["validation"]["text"], *splits["test"]["text"], *held_out]


def held_out_texts(short_sets: dict[str, Any]) -> list[str]:
    """The texts of the --short-data sets, tested after training and never trained on."""
    return [text for split in short_sets.values() for text in split["text"]]


def validation_sources(validation: Any, counts: list[dict[str, Any]]) -> list[str]:
    """The source of each row of the validation split `add_extra` returned, as `counts` names
    them: IMDB's own rows come first ("imdb"), then each extra source's, in order."""
    extra = [count["source"] for count in counts for _ in range(count["validation"])]
    return ["imdb"] * (len(validation) - len(extra)) + extra


class Overlap:
    """Whether a text equals an evaluation text, or is a span of 20 letters or more of a short
    one, compared by lowercased words with treebank spacing joined (`clean_text`)."""

    def __init__(self, texts: list[str]) -> None:
        self.whole = {_words(text) for text in texts}
        self.spans = {
            words[i:j]
            for words in self.whole
            if len(words) <= CONTAINED_WORDS
            for i in range(len(words))
            for j in range(i + 1, len(words) + 1)
        }

    def __call__(self, text: str) -> bool:
        words = _words(text)
        if words in self.whole:
            return True
        return words in self.spans and sum(map(len, words)) >= CONTAINED_CHARS


def _words(text: str) -> tuple[str, ...]:
    return tuple(_WORD.findall(clean_text(text).lower()))


def build_splits(
    config: TrainConfig, short_sets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The data of a run: the IMDB-shaped splits as loaded, the train/validation/test splits
    `make_splits` carves, each `--extra-data` source shared out by `add_extra` (never onto a
    text of the `short_sets` tested after training), and its row counts. Training and
    `main.py evaluate` both call this."""
    extra = {spec: load_extra(spec, LABELS) for spec in config.extra_data}  # errors come first
    imdb = load_data(config.data)
    splits = make_splits(imdb, config)
    if not extra:
        return imdb, splits, []
    return imdb, *add_extra(splits, extra, held_out_texts(short_sets), split_seed(config))
