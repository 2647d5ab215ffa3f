"""Distillation: a student learns its teacher's calibrated probabilities (`--teacher`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_frame, train_args, train_in_process

import infer
import main
import train
from training import data, distill, probe
from training.config import UsageError


@pytest.fixture(scope="module")
def unlabelled_file(tmp_path_factory, data_dir) -> Path:
    """60 reviews without labels, and one that copies a test review (it must be dropped)."""
    frame = make_frame(30, seed=11)[["text"]]
    test_text = pd.read_parquet(data_dir / "test.parquet")["text"].iloc[0]
    frame = pd.concat([frame, pd.DataFrame({"text": [test_text]})], ignore_index=True)
    path = tmp_path_factory.mktemp("unlabelled") / "unsup.parquet"
    frame.to_parquet(path)
    return path


def student_config(model_dir: Path, base_model: Path, data_dir: Path, output: Path, *extra):
    args = train_args(base_model, data_dir, output, "--teacher", str(model_dir), *extra)
    return main.config_of(main.build_parser().parse_args(args))


def test_targets_are_half_the_teachers_probabilities_and_half_the_label(
    model_dir, base_model, data_dir, unlabelled_file, tmp_path
):
    config = student_config(model_dir, base_model, data_dir, tmp_path / "student")
    splits = data.make_splits(data.load_data(str(data_dir)), config)
    evaluation = [*splits["validation"]["text"], *splits["test"]["text"]]
    texts, counts = distill.unlabelled_texts((f"{unlabelled_file}:40",), evaluation, 0)
    assert counts == [{"source": str(unlabelled_file), "rows": 61, "train": 40}]
    assert not set(texts) & set(splits["test"]["text"])
    train_split, _ = distill.with_targets(splits["train"], texts, str(model_dir))
    assert len(train_split) == len(splits["train"]) + 40
    served = infer.load(model_dir).classify(list(train_split["text"]))
    teacher = np.array([[p.scores["NEGATIVE"], p.scores["POSITIVE"]] for p in served])
    targets = np.array(train_split["soft_labels"])
    labels = np.array(splits["train"]["label"])
    n = len(labels)
    assert targets[:n] == pytest.approx(0.5 * teacher[:n] + 0.5 * np.eye(2)[labels], abs=1e-5)
    assert targets[n:] == pytest.approx(teacher[n:], abs=1e-5)  # unlabelled: the teacher's
    assert train_split["label"][n:] == teacher[n:].argmax(1).tolist()


def test_a_second_student_reads_the_teachers_labels_from_the_cache(
    model_dir, tmp_path, monkeypatch
):
    monkeypatch.setattr("datasets.config.HF_DATASETS_CACHE", str(tmp_path / "cache"))
    texts = ["A warm, funny film.", "Two hours I will never get back."]
    first = distill.teacher_probabilities(str(model_dir), texts)
    assert len(list((tmp_path / "cache" / "teacher-labels").glob("*.npy"))) == 1

    def no_teacher(*args, **kwargs):
        raise AssertionError("the teacher was loaded again")

    monkeypatch.setattr("serving.classifier.load", no_teacher)
    assert distill.teacher_probabilities(str(model_dir), texts) == pytest.approx(first)
    with pytest.raises(AssertionError, match="loaded again"):  # other texts: labelled afresh
        distill.teacher_probabilities(str(model_dir), texts[:1])


@pytest.mark.slow
def test_the_students_loss_is_against_the_soft_targets(
    model_dir, base_model, data_dir, unlabelled_file, tmp_path
):
    config = student_config(
        model_dir, base_model, data_dir, tmp_path / "student", "--batch-tokens", "256"
    )
    splits = data.make_splits(data.load_data(str(data_dir)), config)
    train_split, _ = distill.with_targets(splits["train"], [], str(model_dir))
    _, trainer = train.prepare(config, splits | {"train": train_split})
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "soft_labels"}
    model = trainer.model
    # The tiny teacher is sure of its easy reviews (its targets are near the labels): a target
    # far from the label shows which one the loss reads.
    batch["soft_labels"][0] = torch.tensor([0.3, 0.7]) if batch["labels"][0] == 0 else 0.5
    with torch.no_grad():
        # A head of some spread (the probe fits it when training begins): logits far from 0.
        torch.nn.init.normal_(probe.classifier_layer(model).weight, std=2.0)
        loss = trainer.compute_loss(model, dict(batch))
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        soft = -(batch["soft_labels"] * logits.log_softmax(-1)).sum(-1).mean()
        hard = torch.nn.functional.cross_entropy(logits, batch["labels"])
    assert float(loss) == pytest.approx(float(soft), rel=1e-5)
    assert abs(float(soft) - float(hard)) > 1e-3  # not the true labels' loss


@pytest.mark.slow
def test_a_student_is_a_normal_model_folder_that_names_its_teacher(
    model_dir, base_model, data_dir, unlabelled_file, tmp_path
):
    flags = ["--teacher", str(model_dir), "--unlabelled-data", f"{unlabelled_file}:40"]
    flags += ["--seed", "7", "--data-seed", "42"]  # its own weights and order, the same splits
    student = train_in_process(tmp_path, base_model, data_dir, *flags)
    report = json.loads((student / "metrics.json").read_text())
    assert report["teacher"]["folder"] == str(model_dir)
    assert report["teacher"]["name"] == json.loads((model_dir / "metrics.json").read_text())["name"]
    assert report["data"]["unlabelled"][0]["train"] == 40
    assert report["data"]["train"] == 120 + 40
    card = (student / "README.md").read_text()
    assert f"Distilled from the teacher `{model_dir.name}`" in card
    assert "40 unlabelled texts of `unsup.parquet`" in card
    assert infer.load(student).backend == "onnx"  # served as any model
    assert report["test"]["accuracy"] > 0.7


def test_a_student_drawing_other_splits_is_refused_with_the_flags(
    model_dir, base_model, data_dir, tmp_path, capsys
):
    args = train_args(base_model, data_dir, tmp_path / "m", "--teacher", str(model_dir))
    assert main.main([*args, "--subset", "100", "--seed", "3"]) == 2
    error = capsys.readouterr().err
    assert "drew its splits otherwise (--subset, --data-seed)" in error
    assert "Add: --subset 120 --data-seed 42" in error
    assert not (tmp_path / "m").exists()


def test_unlabelled_data_without_a_teacher_is_refused(base_model, data_dir, tmp_path, capsys):
    args = train_args(base_model, data_dir, tmp_path / "m", "--unlabelled-data", "x.parquet")
    assert main.main(args) == 2
    assert "--unlabelled-data needs --teacher FOLDER" in capsys.readouterr().err


def test_unlabelled_texts_come_from_a_hub_datasets_unsupervised_split(monkeypatch):
    import datasets

    from serving import hub

    imdb = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a labelled review"], "label": [1]}),
        unsupervised=datasets.Dataset.from_dict(
            {"text": ["first unlabelled", "second unlabelled", "1987", "a test text"]}
        ),
    )
    asked = []
    monkeypatch.setattr(hub, "reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda name: asked.append(name) or imdb)
    texts, counts = distill.unlabelled_texts(("stanfordnlp/imdb",), ["a test text"], 0)
    # Not the train split's; the row without a letter and the evaluation text are dropped.
    assert asked == ["stanfordnlp/imdb"] and texts == ["first unlabelled", "second unlabelled"]
    assert counts == [{"source": "stanfordnlp/imdb", "rows": 4, "train": 2}]
    drawn, _ = distill.unlabelled_texts(("stanfordnlp/imdb:1",), ["a test text"], 0)
    assert len(drawn) == 1 and drawn[0] in texts


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("stanfordnlp/imdb:1000", r"stanfordnlp/imdb: .*unreachable.*--unlabelled-data PATH"),
        ("./missing.parquet:10", r"no such \.csv, \.jsonl or \.parquet file"),
    ],
)
def test_unreadable_unlabelled_data_is_refused_with_the_fix(spec, says):
    with pytest.raises(UsageError, match=says):
        distill.unlabelled_texts((spec,), [], 0)
