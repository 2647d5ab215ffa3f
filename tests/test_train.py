"""Training through its real entry points: `main.py` as a subprocess and `main.main(argv)`."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import MAX_LENGTH, VOCAB, make_frame, run_script, train_args, train_in_process
from safetensors.torch import load_file

import infer
import main
import train
from training import data, publish


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_main_publishes_a_complete_model(trained):
    output, result = trained
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Test on 40 reviews: accuracy" in result.stdout
    assert not (output.parent / ".model.checkpoints").exists()  # scratch removed on success
    names = {p.name for p in output.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json", "metrics.json"} <= names
    assert not {p.name for p in output.iterdir() if p.suffix in publish.PICKLE_SUFFIXES}
    assert not list(output.parent.glob(".model.partial-*"))
    config = json.loads((output / "config.json").read_text())
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    tokenizer_config = json.loads((output / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == MAX_LENGTH


def test_the_console_shows_phases_and_epochs_not_raw_logs(trained):
    _, result = trained
    console = result.stdout + result.stderr
    epochs = [line for line in console.splitlines() if line.startswith("Epoch ")]
    assert len(epochs) == 6 and epochs[0].startswith("Epoch 1/6: training loss")
    for phase in ("Baseline (untrained head)", "Fitting the head", "Training", "Testing"):
        assert phase in console
    assert "{'loss'" not in console and "'grad_norm'" not in console  # the Trainer's dicts
    assert "Loading weights" not in console


def test_help_names_every_command_with_what_it_does(capsys):
    with pytest.raises(SystemExit):
        main.main(["--help"])
    shown = capsys.readouterr().out
    assert "--batch-tokens" in shown and "--teacher" in shown
    commands = shown[shown.index("commands:") :]
    for name in set(main.COMMANDS) - {"train"}:
        described = main.COMMANDS[name]().description.split()[:4]
        assert f"  {name}  " in commands and " ".join(described) in " ".join(commands.split())


def test_metrics_json_reports_the_run(model_dir):
    report = json.loads((model_dir / "metrics.json").read_text())
    test = report["test"]
    assert test["reviews"] == 40
    assert sum(map(sum, test["confusion_matrix"])) == 40
    for name in ("accuracy", "precision", "recall", "f1"):
        assert 0 <= test[name] <= 1
    # The sentiment words decide the synthetic labels; a working pipeline learns them.
    assert test["accuracy"] >= 0.9
    sizes = {key: report["data"][key] for key in ("train", "validation", "test")}
    assert sizes == {"train": 120, "validation": 12, "test": 40}
    assert report["config"]["batch_size"] == 2 and report["config"]["grad_accum"] == 2
    assert 1 <= report["validation"]["epoch"] <= 6
    assert {"torch", "transformers", "python"} <= set(report["versions"])


def test_validation_reviews_come_from_beside_the_subset(data_dir):
    reviews = data.load_data(str(data_dir))
    config = train.TrainConfig(subset=60, val_reviews=10, test_subset=20, data=str(data_dir))
    splits = data.make_splits(reviews, config)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [60, 10, 20]
    assert sum(splits["train"]["label"]) == 30 and sum(splits["validation"]["label"]) == 5
    assert sum(splits["test"]["label"]) == 10
    assert 0 < sum(splits["train"]["label"][:10]) < 10  # shuffled, not label blocks
    train_texts, val_texts = set(splits["train"]["text"]), set(splits["validation"]["text"])
    assert len(train_texts | val_texts) == 70  # disjoint
    assert val_texts <= set(reviews["train"]["text"])
    everything = replace(config, subset=0)  # 0 takes every review the validation left
    assert len(data.make_splits(reviews, everything)["train"]) == 200 - 10


@pytest.mark.slow
def test_model_selection_never_sees_the_test_split(monkeypatch, tmp_path, base_model, data_dir):
    """Every evaluation during training runs on validation; the test split is only predicted:
    once before training (the baseline) and once after."""
    from transformers import Trainer

    seen: dict[str, list] = {"evaluate": [], "tested": []}
    tokenize, test_split, evaluate = train.tokenize, train.test_split, Trainer.evaluate

    def spy_tokenize(splits, *args):
        seen["tokenized"] = sorted(splits)
        seen["validation"] = splits["validation"]["text"]
        return tokenize(splits, *args)

    def spy_evaluate(self, eval_dataset=None, *args, **kwargs):
        seen["evaluate"].append(len(eval_dataset or self.eval_dataset))
        return evaluate(self, eval_dataset, *args, **kwargs)

    def spy_test_split(classifier, split, *args):
        seen["tested"].append(split["text"])
        return test_split(classifier, split, *args)

    monkeypatch.setattr(train, "tokenize", spy_tokenize)
    monkeypatch.setattr(train, "test_split", spy_test_split)
    monkeypatch.setattr(Trainer, "evaluate", spy_evaluate)
    assert main.main(train_args(base_model, data_dir, tmp_path / "model")) == 0
    assert seen["tokenized"] == ["train", "validation"]  # the Trainer never holds test reviews
    assert seen["evaluate"] == [len(seen["validation"])] * 6  # one per epoch
    test_texts = pd.read_parquet(data_dir / "test.parquet")["text"]
    assert len(seen["tested"]) == 2  # the baseline, then the best epoch
    assert all(set(texts) <= set(test_texts) for texts in seen["tested"])
    assert not set(seen["validation"]) & set(test_texts)


@pytest.mark.slow
def test_same_seed_gives_the_same_model(tmp_path, base_model, data_dir):
    weights = []
    for name in ("a", "b"):
        args = train_args(base_model, data_dir, tmp_path / name, "--epochs", "1")
        assert main.main(args) == 0
        weights.append(load_file(tmp_path / name / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(weights[0][k].equal(weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_training_drops_nothing_attention_included(pooling, base_model, monkeypatch):
    from torch import nn

    def train_mode_logits() -> tuple[set[float], list[torch.Tensor]]:
        config = train.TrainConfig(model=str(base_model), max_length=MAX_LENGTH, pooling=pooling)
        tokenizer, model = train.load_base(config)
        model.train()
        batch = tokenizer(["great film and a wonderful plot"] * 4, return_tensors="pt")
        probabilities = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
        torch.manual_seed(0)
        return probabilities, [model(**batch).logits for _ in range(2)]

    probabilities, (first, second) = train_mode_logits()
    assert probabilities == {0.0}
    assert first.equal(second)  # nothing dropped: training passes are repeatable
    monkeypatch.setattr(train, "set_dropout", lambda model, p: None)  # the base model's own
    probabilities, (first, second) = train_mode_logits()
    assert 0.0 not in probabilities
    assert not first.equal(second)


# (With --pooling cls, the tiny DistilBERT's random pre-classifier gives the probe features of
# almost no spread: nothing to fit.)
def test_a_probe_head_starts_as_the_logistic_regression_of_its_features(
    tmp_path, base_model, data_dir
):
    from sklearn.linear_model import LogisticRegression

    from training import probe as lp

    args = train_args(base_model, data_dir, tmp_path / "model", "--head-init", "probe")
    config = main.config_of(main.build_parser().parse_args(args))
    _, trainer = train.prepare(config, data.make_splits(data.load_data(str(data_dir)), config))
    (probe,) = [c for c in trainer.callback_handler.callbacks if type(c).__name__ == "ProbeHead"]
    # The reviews as the first epoch reads them, in the training loader's batches.
    features, labels = lp.head_features(trainer.model, trainer.get_train_dataloader())
    expected = LogisticRegression(C=lp.PROBE_C, max_iter=1000).fit(features, labels)
    classifier = lp.classifier_layer(trainer.model)

    def probabilities() -> np.ndarray:
        with torch.no_grad():
            return classifier(torch.as_tensor(features)).softmax(-1).numpy()

    assert not np.allclose(probabilities(), expected.predict_proba(features), atol=0.05)
    probe.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model)
    assert np.allclose(probabilities(), expected.predict_proba(features), atol=1e-3)
    assert trainer.model.training  # dropout back on for fine-tuning
    assert expected.score(features, labels) > 0.9  # the tiny reviews are easy to read


def test_a_large_training_split_is_probed_on_a_seeded_draw(
    tmp_path, base_model, data_dir, caplog, monkeypatch
):
    from training import probe as lp

    monkeypatch.setattr(lp, "PROBE_TEXTS", 50)
    caplog.set_level(logging.INFO, logger="training.probe")
    args = train_args(base_model, data_dir, tmp_path / "model", "--head-init", "probe")
    config = main.config_of(main.build_parser().parse_args(args))
    heads = []
    for _ in range(2):
        _, trainer = train.prepare(config, data.make_splits(data.load_data(str(data_dir)), config))
        (probe,) = [
            c for c in trainer.callback_handler.callbacks if type(c).__name__ == "ProbeHead"
        ]
        probe.on_train_begin(trainer.args, trainer.state, trainer.control, model=trainer.model)
        heads.append(lp.classifier_layer(trainer.model).weight.detach().clone())
    assert caplog.text.count("Head fitted as a linear probe on 50 training reviews") == 2
    assert torch.equal(heads[0], heads[1])  # the same draw from the same seed


@pytest.mark.slow
def test_by_default_the_head_is_fitted_inside_the_training_time_and_nothing_dropped(
    tmp_path, base_model, data_dir, caplog
):
    caplog.set_level(logging.INFO, logger="training.probe")
    model = train_in_process(tmp_path, base_model, data_dir)
    assert "Head fitted as a linear probe on 120 training reviews" in caplog.text
    assert json.loads((model / "metrics.json").read_text())["config"]["head_init"] == "probe"


@pytest.mark.slow
def test_a_head_the_probe_cannot_fit_stops_before_training(tmp_path, base_model, data_dir, capsys):
    from transformers import RobertaConfig, RobertaModel

    # RoBERTa's own head is two layers, not one linear `classifier` a logistic regression sets.
    folder = shutil.copytree(base_model, tmp_path / "roberta")
    (folder / "config.json").unlink()
    (folder / "model.safetensors").unlink()
    config = RobertaConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=70, pad_token_id=0,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(folder)
    args = train_args(folder, data_dir, tmp_path / "model", "--pooling", "cls")
    assert main.main(args) == 2
    assert "use --head-init random" in capsys.readouterr().err
    assert not (tmp_path / "model").exists() and not (tmp_path / ".model.checkpoints").exists()
    assert main.main([*args, "--head-init", "random", "--epochs", "1"]) == 0


def test_validation_batches_hold_reviews_of_like_length(tmp_path, base_model, data_dir):
    args = train_args(base_model, data_dir, tmp_path / "model", "--val-reviews", "60")
    config = main.config_of(main.build_parser().parse_args(args))
    splits = data.make_splits(data.load_data(str(data_dir)), config)
    _, trainer = train.prepare(config, splits)
    lengths = [len(ids) for ids in trainer.eval_dataset["input_ids"]]
    assert len(lengths) == 60 and lengths == sorted(lengths)  # so a batch pads to its neighbours
    drawn = [
        len(ids)
        for ids in train.tokenize(splits, trainer.processing_class, config)["validation"][
            "input_ids"
        ]
    ]
    assert drawn != lengths and sorted(drawn) == lengths  # drawn shuffled, then sorted


# ---------------------------------------------------------------------------------------------
# Bad input fails before training, with the fix in one line, and leaves ./model untouched.


def write_data(
    folder: Path, train_frame: pd.DataFrame, test_frame: pd.DataFrame | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    train_frame.to_parquet(folder / "train.parquet")
    (make_frame(20, seed=3) if test_frame is None else test_frame).to_parquet(
        folder / "test.parquet"
    )
    return folder


def bad_labels() -> pd.DataFrame:
    frame = make_frame(30, seed=4)
    frame.loc[5, "label"] = 2
    return frame


def empty_texts() -> pd.DataFrame:
    frame = make_frame(30, seed=4)
    frame.loc[7, "text"] = "   "
    return frame


BAD_DATA = {
    "no text column": (lambda: make_frame(30, 4).rename(columns={"text": "review"}), [], "'text'"),
    "no label column": (lambda: make_frame(30, 4).drop(columns="label"), [], "'label'"),
    "labels outside 0 and 1": (bad_labels, [], "use 0 for a negative review"),
    "empty texts": (empty_texts, [], "empty texts (first at row 7)"),
    "no validation reviews": (lambda: make_frame(30, 4), ["--val-reviews", "0"], "use 2 or more"),
    "subset larger than data": (
        lambda: make_frame(30, 4),
        ["--subset", "100"],
        "need 112 training reviews, but the data has 60; use --subset 48 or less",
    ),
    "one validation review": (lambda: make_frame(30, 4), ["--val-reviews", "1"], "use 2 or more"),
    "validation takes all": (
        lambda: make_frame(30, 4),
        ["--val-reviews", "60"],
        "--val-reviews 60 leaves too few of the 60 training reviews",
    ),
    "one label only": (
        lambda: make_frame(30, 4).query("label == 1"),
        ["--subset", "10"],
        "labelled 0",
    ),
}


@pytest.fixture()
def previous_model(tmp_path, model_dir) -> Path:
    """A copy of a published model, standing where a new run would publish."""
    folder = tmp_path / "model"
    folder.mkdir()
    for file in model_dir.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    return folder


@pytest.mark.parametrize("case", BAD_DATA, ids=list(BAD_DATA))
def test_bad_data_fails_fast_and_leaves_model_untouched(
    case, tmp_path, base_model, previous_model, capsys
):
    make, flags, fix = BAD_DATA[case]
    data = write_data(tmp_path / "data", make())
    before = folder_digest(previous_model)
    assert main.main([*train_args(base_model, data, previous_model), "--subset", "20", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error
    assert fix in error
    assert folder_digest(previous_model) == before
    assert not (tmp_path / ".model.checkpoints").exists()  # failed before any training step


@pytest.mark.parametrize(
    ("flag", "name"), [("--model", "distilbert-base-uncased"), ("--data", "stanfordnlp/imdb")]
)
def test_hub_name_without_hub_says_to_pass_a_path(
    flag, name, tmp_path, base_model, data_dir, capsys
):
    args = [*train_args(base_model, data_dir, tmp_path / "model"), flag, name]
    assert main.main(args) == 2
    error = capsys.readouterr().err
    assert "Hugging Face Hub is unreachable" in error and f"{flag} PATH" in error
    assert not (tmp_path / "model").exists()


def test_missing_data_folder_and_foreign_output_dir(tmp_path, base_model, data_dir, capsys):
    assert (
        main.main(
            [*train_args(base_model, tmp_path / "nowhere", tmp_path / "m"), "--data", "./nowhere"]
        )
        == 2
    )
    assert "no such folder" in capsys.readouterr().err
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    assert main.main(train_args(base_model, data_dir, foreign)) == 2
    assert "is not a model folder" in capsys.readouterr().err
    assert (foreign / "todo.txt").read_text() == "keep me"


@pytest.mark.slow
def test_bad_input_exit_code_from_the_command_line(tmp_path, base_model):
    data = write_data(tmp_path / "data", make_frame(30, 4).drop(columns="label"))
    result = run_script("main.py", *train_args(base_model, data, tmp_path / "model"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--truncation", "sliding"], "--truncation takes head, head+tail, got 'sliding'"),
        (
            ["--inference-truncation", "middle"],
            "--inference-truncation takes head, head+tail, sliding, got 'middle'",
        ),
        (["--head-init", "zero"], "--head-init takes probe, random, got 'zero'"),
        (["--pooling", "max"], "--pooling takes auto, mean, cls, got 'max'"),
        (["--learning-rate", "0"], "--learning-rate must be positive, got 0.0"),
    ],
)
def test_bad_truncation_flags_name_the_choices(flags, message, tmp_path, base_model, capsys):
    args = [*train_args(base_model, tmp_path / "nowhere", tmp_path / "model"), *flags]
    assert main.main(args) == 2
    assert message in capsys.readouterr().err


def test_truncation_is_saved_for_infer(tmp_path, base_model):
    config = train.TrainConfig(
        model=str(base_model),
        max_length=MAX_LENGTH,
        truncation="head",
        inference_truncation="head+tail",
    )
    tokenizer, model = train.load_base(config)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())["truncation"]
    assert saved == {"train": "head", "inference": "head+tail", "head_fraction": 0.25}
    classifier = infer.load(tmp_path, calibration=infer.Calibration())  # no calibration yet
    assert (classifier.truncation, classifier.head_fraction, classifier.max_length) == (
        "head+tail",
        0.25,
        MAX_LENGTH,
    )


@pytest.mark.parametrize(("truncation", "ends_with_tail"), [("head", False), ("head+tail", True)])
def test_training_reads_what_the_truncation_says(truncation, ends_with_tail, base_model):
    from datasets import Dataset

    config = train.TrainConfig(model=str(base_model), max_length=MAX_LENGTH, truncation=truncation)
    tokenizer, _ = train.load_base(config)
    review = "great " * 40 + "awful dull"
    split = Dataset.from_list([{"text": review, "label": 0}])
    (ids,) = train.tokenize({"train": split}, tokenizer, config)["train"]["input_ids"]
    tail = tokenizer.convert_tokens_to_ids(["awful", "dull", "[SEP]"])
    assert len(ids) == MAX_LENGTH
    assert (ids[-3:] == tail) is ends_with_tail


# ---------------------------------------------------------------------------------------------
# Publishing is atomic: the old model survives any failure before the swap.


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.slow
def test_failure_while_publishing_keeps_the_previous_model(
    failure, monkeypatch, tmp_path, base_model, data_dir, previous_model
):
    before = folder_digest(previous_model)

    def fail(folder):
        assert (folder / "model.safetensors").is_file()  # written, not yet swapped in
        raise failure

    monkeypatch.setattr(publish, "verify", fail)
    flags = main.build_parser().parse_args(train_args(base_model, data_dir, previous_model))
    with pytest.raises(type(failure)):
        train.run(main.config_of(flags))
    assert folder_digest(previous_model) == before
    assert not list(tmp_path.glob(".model.partial-*"))
    infer.load(previous_model).predict(["still works"])


@pytest.mark.slow
def test_killed_while_publishing_keeps_the_previous_model(
    tmp_path, base_model, data_dir, previous_model
):
    before = folder_digest(previous_model)
    args = train_args(base_model, data_dir, previous_model, "--epochs", "1")
    killer = (
        "import os, signal, sys, main\nfrom training import publish\n"
        "publish.verify = lambda folder: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"main.main({args!r})\n"
    )
    result = run_script("-c", killer)
    assert result.returncode == -signal.SIGKILL
    assert folder_digest(previous_model) == before
    assert infer.load(previous_model).labels == ("NEGATIVE", "POSITIVE")
    abandoned = list(tmp_path.glob(".model.partial-*"))
    assert len(abandoned) == 1 and (abandoned[0] / "model.safetensors").exists()
    # The next run clears what the killed one left and, resumed from the last checkpoint
    # (training had ended), publishes its own model.
    assert main.main(args) == 2  # without --resume it keeps the checkpoints and says so
    assert main.main([*args, "--resume"]) == 0
    assert not list(tmp_path.glob(".model.partial-*"))
    assert folder_digest(previous_model) != before


def test_swap_exchanges_folders_in_one_step(tmp_path):
    old, new = tmp_path / "model", tmp_path / "staging"
    old.mkdir()
    new.mkdir()
    (old / "which").write_text("old")
    (new / "which").write_text("new")
    inode = new.stat().st_ino
    publish._swap(new, old)
    assert (old / "which").read_text() == "new" and old.stat().st_ino == inode
    assert (new / "which").read_text() == "old"


@pytest.mark.parametrize("layout", ["csv", "jsonl", "aclImdb"])
def test_data_folder_layouts_load_the_same_rows(layout, tmp_path):
    frames = {"train": make_frame(5, seed=7), "test": make_frame(3, seed=8)}
    for split, frame in frames.items():
        if layout == "csv":
            frame.to_csv(tmp_path / f"{split}.csv", index=False)
        elif layout == "jsonl":
            frame.to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
        else:
            for i, row in frame.iterrows():
                folder = tmp_path / split / ("pos" if row.label else "neg")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{i:03d}_7.txt").write_text(row.text, encoding="utf-8")
    reviews = data.load_data(str(tmp_path))
    for split, frame in frames.items():
        loaded = sorted(zip(reviews[split]["text"], reviews[split]["label"], strict=True))
        assert loaded == sorted(zip(frame.text, frame.label, strict=True))


@pytest.mark.slow
def test_gradient_accumulation_does_not_scale_the_loss(tmp_path, base_model, data_dir):
    """With weights that barely move, the training loss is the untrained model's loss, not 2x."""
    args = train_args(base_model, data_dir, tmp_path / "model", "--learning-rate", "1e-12")
    assert main.main([*args, "--epochs", "1", "--grad-accum", "2"]) == 0
    report = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert report["train"]["loss"] == pytest.approx(report["validation"]["loss"], rel=0.1)


@pytest.mark.slow
def test_a_mean_pooled_bert_freezes_the_pooler_it_never_reads(tmp_path, base_model, data_dir):
    from transformers import BertConfig, BertModel

    # all-MiniLM-L6-v2 is a BERT: its pooler gets no gradient under mean pooling, which
    # torchrun's DDP refuses at the first step unless it is frozen.
    folder = shutil.copytree(base_model, tmp_path / "bert")
    (folder / "config.json").unlink()
    (folder / "model.safetensors").unlink()
    bert = BertConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64,
    )  # fmt: skip
    BertModel(bert).save_pretrained(folder)
    args = train_args(folder, data_dir, tmp_path / "model", "--pooling", "mean")
    config = main.config_of(main.build_parser().parse_args(args))
    _, trainer = train.prepare(config, data.make_splits(data.load_data(str(data_dir)), config))
    frozen = {name for name, p in trainer.model.named_parameters() if not p.requires_grad}
    assert frozen and all(".pooler." in name for name in frozen)
    assert any(".pooler." in name for name, _ in trainer.model.named_parameters())
    trainer.train()  # a step with the pooler out of the optimizer
