"""Any encoder, end to end: a tiny MPNet (all-mpnet-base-v2's architecture, the teacher's base)
through training, the card, ONNX export, the serving install's tokenizer, Why? and streaming."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_frame, run_script, train_args, train_in_process

import infer
import main
from serving import explain
from serving.onnx_runtime import ONNX_FILE, OnnxModel
from serving.tokenizer import FolderTokenizer

TEXTS = ["the film was superb", "awful . dull and boring", "<s> the plot </s> was great !"]

pytestmark = pytest.mark.slow  # each test reads a tiny MPNet trained for the module


@pytest.fixture(scope="module")
def mpnet_dir(tmp_path_factory, mpnet_base, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("mpnet-run")
    return train_in_process(folder, mpnet_base, data_dir, "--batch-tokens", "128")


def test_an_mpnet_base_trains_with_mean_pooling_and_the_card_names_it(mpnet_dir):
    report = json.loads((mpnet_dir / "metrics.json").read_text())
    assert report["config"]["pooling"] == "mean"  # marked as a sentence-transformers model
    base = report["base"]
    assert base["architecture"] == "mpnet" and base["layers"] == 1 and base["hidden_size"] == 16
    assert 1_000 < base["parameters"] < 20_000
    card = (mpnet_dir / "README.md").read_text()
    assert f"(mpnet, 1 layers of 16, {base['parameters'] / 1e6:.1f}M parameters)" in card
    assert report["test"]["accuracy"] > 0.7  # it learned


def test_the_onnx_model_answers_as_pytorch(mpnet_dir):
    served = infer.load(mpnet_dir)
    assert served.backend == "onnx"
    plain = infer.load(mpnet_dir, backend="torch")
    for theirs, ours in zip(plain.classify(TEXTS), served.classify(TEXTS), strict=True):
        assert ours.scores == pytest.approx(theirs.scores, abs=0.02)


def test_the_int8_graph_answers_as_pytorch(mpnet_dir):
    # The tiny MPNet reads at most 64 tokens, which the fp32 graph serves: INT8 is read alone.
    int8 = OnnxModel(mpnet_dir / ONNX_FILE, runtime="onnxruntime")
    int8.short = None
    served = replace(infer.load(mpnet_dir), model=int8)
    plain = infer.load(mpnet_dir, backend="torch")
    for theirs, ours in zip(plain.classify(TEXTS), served.classify(TEXTS), strict=True):
        assert ours.scores == pytest.approx(theirs.scores, abs=0.02)


def test_the_serving_tokenizer_gives_transformers_ids(mpnet_dir):
    from transformers import AutoTokenizer

    ours = FolderTokenizer.from_folder(mpnet_dir)
    theirs = AutoTokenizer.from_pretrained(mpnet_dir)
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id) == (0, 2, 1)
    expected = theirs(TEXTS, split_special_tokens=True)["input_ids"]
    assert ours(TEXTS)["input_ids"] == expected
    assert expected[2][1] != 0  # a typed "<s>" is text, not the start token


def test_why_scores_the_words_of_an_mpnet_model(mpnet_dir):
    classifier = infer.load(mpnet_dir)
    scores = explain.word_scores(classifier, TEXTS[0])
    assert [word for word, _ in scores] == TEXTS[0].split()
    label = classifier.classify([TEXTS[0]])[0].label
    top = max(scores, key=lambda pair: abs(pair[1]))
    assert top == ("superb", 1.0 if label == "POSITIVE" else -1.0)


def test_a_file_streams_through_an_mpnet_model(mpnet_dir, tmp_path):
    frame = make_frame(150, seed=9)
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(source, index=False)
    args = ["--model-dir", str(mpnet_dir), "--input", str(source), "--output", str(output)]
    result = run_script("infer.py", *args)
    assert result.returncode == 0, result.stderr[-2000:]
    out = pd.read_csv(output)
    expected = [p.label for p in infer.load(mpnet_dir).classify(frame["text"].tolist())]
    assert out["label_predicted"].tolist() == expected


def test_mpnet_positions_after_the_padding_id_bound_the_max_length(
    tmp_path, mpnet_base, data_dir, capsys
):
    # 66 positions, numbered from after the padding id 1: 64 tokens fit, 65 do not.
    args = train_args(mpnet_base, data_dir, tmp_path / "model", "--max-length", "65")
    assert main.main(args) == 2
    assert "--max-length 65 exceeds the 64 positions" in capsys.readouterr().err
