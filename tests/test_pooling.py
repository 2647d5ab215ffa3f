"""The mean-pooling classifier: what it reads, what it saves, and who can load it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import train_in_process
from transformers import AutoModel, AutoTokenizer

import infer
import train
from pooling import MODEL_TYPE, MeanPoolingClassifier
from utils import CARD_FILE


@pytest.fixture()
def classifier(base_model) -> MeanPoolingClassifier:
    torch.manual_seed(0)
    return MeanPoolingClassifier.from_encoder(str(base_model), num_labels=2).eval()


def test_from_encoder_keeps_every_pretrained_weight(classifier, base_model):
    pretrained = AutoModel.from_pretrained(base_model).state_dict()
    encoder = classifier.encoder.state_dict()
    assert encoder.keys() == pretrained.keys()
    assert all(torch.equal(encoder[name], pretrained[name]) for name in pretrained)


def test_logits_are_the_head_on_the_mean_of_the_unpadded_states(classifier, base_model):
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    short, long = "great film", "the plot was dull and the acting was awful and boring"
    batch = tokenizer([short, long], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # short is padded
    with torch.no_grad():
        batched = classifier(**batch).logits
        alone = classifier(**tokenizer([short], return_tensors="pt")).logits
        states = classifier.encoder(**tokenizer([short], return_tensors="pt")).last_hidden_state
        by_hand = classifier.classifier(states.mean(dim=1))
    torch.testing.assert_close(batched[0], alone[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(alone, by_hand, atol=1e-6, rtol=0)


def test_labels_give_the_cross_entropy_loss(classifier, base_model):
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    batch = tokenizer(["great film", "awful film"], return_tensors="pt")
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        output = classifier(**batch, labels=labels)
    expected = torch.nn.functional.cross_entropy(output.logits, labels)
    torch.testing.assert_close(output.loss, expected)


def test_the_default_run_publishes_a_mean_pooling_folder(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == MODEL_TYPE
    assert config["encoder_config"]["model_type"] == "distilbert"
    assert config["auto_map"]["AutoModelForSequenceClassification"] == (
        "pooling.MeanPoolingClassifier"
    )
    assert (model_dir / "pooling.py").read_text() == (
        Path(train.__file__).parent / "pooling.py"
    ).read_text()
    assert isinstance(infer.load(model_dir, backend="torch").model, MeanPoolingClassifier)
    assert (
        'model="path/to/this/folder", trust_remote_code=True)'
        in (model_dir / CARD_FILE).read_text()
    )


LOAD_ELSEWHERE = """
import json, sys
from transformers import pipeline
classifier = pipeline("text-classification", model=sys.argv[1], trust_remote_code=True)
print(json.dumps({"scores": classifier(sys.argv[2], top_k=None),
                  "project": "pooling" in sys.modules or "infer" in sys.modules}))
"""


@pytest.mark.slow
def test_the_folder_loads_without_the_project(model_dir, tmp_path):
    """Hub users have the folder alone: its copy of pooling.py must be enough."""
    review = "a wonderful film with a moving story"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, str(model_dir), review],
        cwd=tmp_path,  # not the repository: `import pooling` would fail here
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert not loaded["project"]
    elsewhere = {row["label"]: row["score"] for row in loaded["scores"]}
    # Without the project's cleaning, head+tail cut and calibration, a short clean review reads
    # the same as the raw model.
    plain = infer.load(model_dir, calibration=infer.Calibration(), backend="torch")
    (ours,) = plain.predict([review])
    assert elsewhere == pytest.approx(ours, abs=1e-5)


PLAIN_PIPELINE = """
import json, sys
from transformers import pipeline
print(json.dumps(pipeline("text-classification", model=sys.argv[1])("great film", top_k=None)))
"""


@pytest.mark.slow
def test_auto_pooling_gives_a_plain_base_the_standard_architecture(tmp_path, base_model, data_dir):
    plain_base = tmp_path / "plain-base"
    shutil.copytree(base_model, plain_base)
    (plain_base / "modules.json").unlink()  # a base like distilbert-base-uncased
    output = train_in_process(tmp_path, plain_base, data_dir, "--epochs", "1")
    config = json.loads((output / "config.json").read_text())
    assert config["architectures"] == ["DistilBertForSequenceClassification"]
    assert json.loads((output / "metrics.json").read_text())["config"]["pooling"] == "cls"
    result = subprocess.run(  # no trust_remote_code, not the repository
        [sys.executable, "-c", PLAIN_PIPELINE, str(output)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    labels = {row["label"] for row in json.loads(result.stdout.strip().splitlines()[-1])}
    assert labels == {"NEGATIVE", "POSITIVE"}


@pytest.fixture(scope="module")
def cls_model_dir(tmp_path_factory, base_model, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("cls")
    return train_in_process(folder, base_model, data_dir, "--pooling", "cls", "--epochs", "1")


@pytest.mark.slow
def test_cls_pooling_publishes_the_standard_architecture(cls_model_dir):
    config = json.loads((cls_model_dir / "config.json").read_text())
    assert config["model_type"] == "distilbert"
    assert config["architectures"] == ["DistilBertForSequenceClassification"]
    assert "auto_map" not in config and not (cls_model_dir / "pooling.py").exists()
    assert "trust_remote_code" not in (cls_model_dir / CARD_FILE).read_text()
    assert infer.load(cls_model_dir).predict(["great film"])[0].keys() == {"NEGATIVE", "POSITIVE"}


@pytest.mark.slow
def test_evaluate_retests_a_cls_folder_as_it_was_trained(cls_model_dir, tmp_path):
    from training.retest import retest

    folder = shutil.copytree(cls_model_dir, tmp_path / "model")
    report = json.loads((folder / "metrics.json").read_text())
    rewritten = retest(folder)
    assert rewritten["config"] == report["config"]
    # The same test reviews as training drew, so the baseline stays and the metrics repeat.
    assert rewritten["data"]["sha256"] == report["data"]["sha256"]
    assert rewritten["baseline"] == report["baseline"]
    assert rewritten["test"]["accuracy"] == report["test"]["accuracy"]
    assert "trust_remote_code" not in (folder / CARD_FILE).read_text()


def test_max_length_is_checked_against_the_encoder(base_model):
    config = train.TrainConfig(model=str(base_model), max_length=65)  # the tiny model holds 64
    with pytest.raises(train.UsageError, match="--max-length 65 exceeds the 64 positions"):
        train.load_base(config)
