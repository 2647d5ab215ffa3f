"""Shared fixtures: a tiny DistilBERT and an IMDB-shaped dataset, built offline in seconds.

The Hub must never be reached from a test, so offline mode and a throwaway HF_HOME are set
here, before any test module imports transformers or datasets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hf-home-")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
POSITIVE_WORDS = ["great", "wonderful", "loved", "brilliant", "superb", "moving"]
NEGATIVE_WORDS = ["awful", "boring", "hated", "terrible", "dull", "waste"]
FILLER = ["the", "film", "movie", "plot", "acting", "was", "and", "a", "story", "it", "this"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + POSITIVE_WORDS + NEGATIVE_WORDS + FILLER + [".", "!", "<", ">", "/", "br"]
MAX_LENGTH = 32  # tokens; short, so truncation happens in tests


def make_review(label: int, rng: np.random.Generator) -> str:
    """A review of 10 to 40 words, 6 of them sentiment words of `label`, sometimes with <br />."""
    mood = POSITIVE_WORDS if label == 1 else NEGATIVE_WORDS
    words = list(rng.choice(FILLER, size=rng.integers(4, 36))) + list(rng.choice(mood, size=6))
    words = list(rng.permutation(words))
    if rng.random() < 0.3:
        words.insert(len(words) // 2, ".<br /><br />")
    return " ".join(words) + rng.choice([".", "!"])


def make_frame(n_per_label: int, seed: int) -> pd.DataFrame:
    """Grouped by label, all negatives first, like IMDB: a missing shuffle shows in tests."""
    rng = np.random.default_rng(seed)
    rows = [
        {"text": make_review(label, rng), "label": label}
        for label in (0, 1)
        for _ in range(n_per_label)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with train.parquet (100 per label) and test.parquet (40 per label)."""
    folder = tmp_path_factory.mktemp("data")
    make_frame(100, seed=1).to_parquet(folder / "train.parquet")
    make_frame(40, seed=2).to_parquet(folder / "test.parquet")
    return folder


@pytest.fixture(scope="session")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised DistilBERT of about 5,000 parameters with a matching tokenizer,
    marked as a sentence-transformers model."""
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer, set_seed

    folder = tmp_path_factory.mktemp("base")
    set_seed(0)
    config = DistilBertConfig(
        vocab_size=len(VOCAB), dim=16, n_layers=1, n_heads=2, hidden_dim=32,
        max_position_embeddings=64,
    )  # fmt: skip
    DistilBertModel(config).save_pretrained(folder)
    vocab = {token: i for i, token in enumerate(VOCAB)}
    DistilBertTokenizer(vocab=vocab, model_max_length=64).save_pretrained(folder)
    # Marked as a sentence-transformers model, as all-MiniLM-L6-v2 is: --pooling auto reads it
    # by the mean of its token states (tests/test_pooling.py trains an unmarked one too).
    (folder / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "x"}]')
    return folder


@pytest.fixture(scope="session")
def mpnet_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised MPNet (all-mpnet-base-v2's architecture) of a few thousand
    parameters, with its tokenizer's special tokens (<s>, </s>, <pad>: ids unlike BERT's) and
    positions that start after the padding id, marked as a sentence-transformers model."""
    from transformers import MPNetConfig, MPNetModel, MPNetTokenizer, set_seed

    folder = tmp_path_factory.mktemp("mpnet")
    set_seed(0)
    special = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]
    vocab = {token: i for i, token in enumerate(special + VOCAB[len(SPECIAL) :])}
    config = MPNetConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=66, pad_token_id=1,
    )  # fmt: skip
    MPNetModel(config).save_pretrained(folder)
    MPNetTokenizer(vocab=vocab, model_max_length=64).save_pretrained(folder)
    (folder / "modules.json").write_text('[{"idx": 0, "name": "0", "path": "", "type": "x"}]')
    return folder


def train_args(base_model: Path, data_dir: Path, output_dir: Path, *extra: str) -> list[str]:
    """Flags for a tiny run: seconds on 2 cores; a high learning rate so the tiny model learns."""
    return [
        "--model", str(base_model), "--data", str(data_dir), "--output-dir", str(output_dir),
        "--subset", "120",
        "--val-reviews", "12", "--test-subset", "40", "--max-length", str(MAX_LENGTH),
        "--epochs", "6", "--learning-rate", "2e-3", *extra,
    ]  # fmt: skip


def train_in_process(folder: Path, base_model: Path, data_dir: Path, *extra: str) -> Path:
    """`main.main` on the tiny model with `extra` flags; returns the published `folder/model`."""
    import main

    output = folder / "model"
    assert main.main(train_args(base_model, data_dir, output, *extra)) == 0
    return output


def run_script(
    *args: str, stdin: str | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run a project script as a user would, from the repository root."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, input=stdin, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, base_model: Path, data_dir: Path):
    """`python main.py` run once as a subprocess; later tests read the folder it publishes."""
    output = tmp_path_factory.mktemp("run") / "model"
    result = run_script("main.py", *train_args(base_model, data_dir, output))
    return output, result


@pytest.fixture(scope="session")
def model_dir(trained) -> Path:
    output, result = trained
    assert result.returncode == 0, result.stderr[-3000:]
    return output
