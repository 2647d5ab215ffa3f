"""The training workbench on the tiny model: recipe files, compare, search, resume, early
stopping, the non-finite-loss guard, top-K layers, precision and tracking."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
import signal
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_script, train_args, train_in_process

import main
from training import checkpoints
from training.config import TrainConfig, UsageError, as_saved, check_config, read_config
from training.trainer import resolve_precision


def weights(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def parsed(*argv: str) -> TrainConfig:
    return main.config_of(main.parse_config(main.build_train_parser(), list(argv)))


def test_a_recipe_file_sets_the_run_and_flags_override_it(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning-rate: 2e-5\nepochs: 3\nbatch_size: 8\nextra_data: a.csv\n")
    config = parsed("--config", str(recipe), "--epochs", "1")
    assert (config.learning_rate, config.epochs, config.batch_size) == (2e-5, 1.0, 8)
    assert config.extra_data == ("a.csv",) and config.grad_accum == TrainConfig.grad_accum
    as_json = tmp_path / "recipe.json"
    as_json.write_text(json.dumps({"subset": 300, "gradient_checkpointing": True}))
    assert parsed("--config", str(as_json)).gradient_checkpointing is True
    assert parsed("--config", str(as_json), "--no-gradient-checkpointing").subset == 300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: three\n", "epochs is 'three'; give a number"),
        ("subset: 2.5\n", "subset is 2.5; give a whole number"),
        ("ema_decay: 0.9\n", "does not know (ema_decay)"),
        ("- epochs\n", "hold a mapping of settings"),
        ("epochs: [\n", "cannot read it"),
    ],
)
def test_a_bad_recipe_file_names_what_to_fix(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(UsageError, match=re.escape(message)):
        read_config(recipe)
    assert main.main(["--config", str(recipe)]) == 2
    assert message in capsys.readouterr().err


def test_flags_are_read_by_the_validator_that_reads_recipe_files(capsys):
    with pytest.raises(SystemExit):
        main.build_parser().parse_args(["--subset", "2.5"])
    assert "--subset: '2.5': give a whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main.build_parser().parse_args(["--learning-rate", "fast"])
    assert "give a number" in capsys.readouterr().err
    args = main.build_parser().parse_args(["--subset", "3.0", "--test-subset", "0"])
    assert (main.config_of(args).subset, main.config_of(args).test_subset) == (3, 0)


@pytest.mark.slow
def test_a_published_metrics_json_reruns_its_recipe(tmp_path, model_dir, base_model, data_dir):
    config = read_config(model_dir / "metrics.json")
    assert as_saved(TrainConfig(**config)) == metrics(model_dir)["config"]
    again = tmp_path / "again"
    assert main.main(["--config", str(model_dir / "metrics.json"), "--output-dir", str(again)]) == 0
    assert weights(again) == weights(model_dir)  # the same recipe, so the same model
    assert metrics(again)["test"]["accuracy"] == metrics(model_dir)["test"]["accuracy"]


@pytest.mark.slow
def test_compare_trains_each_recipe_on_the_same_data_and_publishes_the_best_by_validation(
    tmp_path, base_model, data_dir
):
    fast, slow = tmp_path / "fast.yaml", tmp_path / "slow.yaml"
    fast.write_text("learning_rate: 0.002\nepochs: 2\n")
    slow.write_text("learning_rate: 1.0e-9\nepochs: 2\n")  # learns nothing: the worse one
    out, best = tmp_path / "comparison", tmp_path / "best"
    flags = train_args(base_model, data_dir, out)
    flags = [f for f in flags if f not in ("--learning-rate", "2e-3", "--epochs", "6")]
    args = ["compare", str(fast), str(slow), *flags, "--publish-to", str(best)]
    assert main.main(args) == 0
    with open(out / "comparison.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["recipe"] for r in rows] == ["fast", "slow"]
    runs = {name: metrics(out / "runs" / name) for name in ("fast", "slow")}
    assert float(rows[0]["validation_f1"]) == runs["fast"]["validation"]["f1"]
    assert float(rows[1]["learning_rate"]) == 1e-9
    assert runs["fast"]["data"]["sha256"] == runs["slow"]["data"]["sha256"]  # same splits
    assert weights(best) == weights(out / "runs" / "fast")
    assert "| fast |" in (out / "comparison.md").read_text()
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_refuses_recipes_that_would_see_different_reviews(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("subset: 100\n")
    b.write_text("subset: 200\n")
    assert main.main(["compare", str(a), str(b)]) == 2
    assert "differ in subset (a: 100, b: 200)" in capsys.readouterr().err
    assert main.main(["compare", str(a), str(b), "--subset", "50", "--epochs", "0"]) == 2


@pytest.mark.slow
def test_search_saves_the_best_recipe_and_a_rerun_continues_the_study(
    tmp_path, base_model, data_dir, capsys
):
    out, storage = tmp_path / "search", f"sqlite:///{tmp_path / 'study.db'}"
    flags = [*train_args(base_model, data_dir, out), "--storage", storage]
    flags[flags.index("--epochs") + 1] = "1"
    assert main.main(["search", "--trials", "2", *flags]) == 0
    best = read_config(out / "best.yaml")
    assert f"python main.py --config {out / 'best.yaml'}" in capsys.readouterr().out
    with open(out / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 2
    assert float(trials[0]["learning_rate"]) == pytest.approx(2e-3)  # the recipe as given first
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    top = max(float(t["validation_f1"]) for t in complete)
    chosen = next(t for t in complete if float(t["validation_f1"]) == top)  # the first of ties
    assert best["learning_rate"] == pytest.approx(float(chosen["learning_rate"]))
    assert not (out / "trial").exists() and not (out / ".trial.checkpoints").exists()
    assert main.main(["search", "--trials", "3", *flags]) == 0
    with open(out / "trials.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3


@pytest.mark.slow
def test_a_run_killed_after_its_first_checkpoint_finishes_with_resume_as_if_never_stopped(
    tmp_path, base_model, data_dir, model_dir, caplog, capsys
):
    output = tmp_path / "model"
    args = train_args(base_model, data_dir, output)
    killer = (
        "import os, signal, sys, transformers, main\n"
        "save = transformers.Trainer._save_checkpoint\n"
        "def save_then_die(self, *a, **k):\n"
        "    save(self, *a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "transformers.Trainer._save_checkpoint = save_then_die\n"
        f"main.main({args!r})\n"
    )
    assert run_script("-c", killer).returncode == -signal.SIGKILL
    assert not output.exists()
    folder = checkpoints.checkpoint_dir(TrainConfig(output_dir=str(output)))
    (saved,) = checkpoints.checkpoints(folder)
    # A later checkpoint cut short while saving, as a kill in the middle would leave it.
    shutil.copytree(saved, folder / "checkpoint-99999")
    (folder / "checkpoint-99999" / "trainer_state.json").write_text('{"global_st')
    assert main.main(args) == 2  # not without --resume: the killed run's work is kept
    assert "Continue it with --resume" in capsys.readouterr().err
    assert main.main([*args, "--learning-rate", "1e-3", "--resume"]) == 2
    caplog.set_level(logging.INFO, logger="training.checkpoints")
    assert main.main([*args, "--resume"]) == 0
    assert "Skipping checkpoint-99999" in caplog.text.replace(str(folder) + "/", "")
    assert weights(output) == weights(model_dir)
    assert metrics(output)["train"]["resumed_from"] == saved.name
    assert not folder.exists()


def test_resume_names_the_settings_that_changed(tmp_path, capsys):
    config = TrainConfig(output_dir=str(tmp_path / "model"), epochs=3.0)
    checkpoints.begin(config)
    folder = checkpoints.checkpoint_dir(config)
    for name in checkpoints.NEEDED:
        (folder / "checkpoint-10").mkdir(exist_ok=True)
        (folder / "checkpoint-10" / name).write_text("{}")
    (folder / "checkpoint-10" / "model.safetensors").write_text("")
    with pytest.raises(UsageError, match=re.escape("epochs: 3.0 then, 2.0 now")):
        checkpoints.start(TrainConfig(output_dir=str(tmp_path / "model")), resume=True)
    assert checkpoints.start(config, resume=True) == str(folder / "checkpoint-10")


@pytest.mark.slow
def test_early_stopping_stops_when_validation_f1_stops_improving(tmp_path, base_model, data_dir):
    output = train_in_process(
        tmp_path, base_model, data_dir, "--learning-rate", "1e-12", "--patience", "1"
    )
    epochs = [row["epoch"] for row in metrics(output)["history"] if "eval_f1" in row]
    assert epochs == [1, 2]  # F1 unchanged after epoch 1: one more epoch, then stop (of 6)


@pytest.mark.slow
def test_the_guard_stops_a_diverging_run_and_keeps_the_published_model(
    tmp_path, base_model, data_dir, model_dir, capsys
):
    output = shutil.copytree(model_dir, tmp_path / "model")
    before = weights(output)
    args = train_args(
        base_model, data_dir, output, "--learning-rate", "1e12", "--head-init", "random"
    )
    assert main.main(args) == 2
    error = capsys.readouterr().err
    assert "the run diverged" in error and "Lower --learning-rate" in error
    assert weights(output) == before and metrics(output) == metrics(model_dir)
    assert not checkpoints.checkpoint_dir(TrainConfig(output_dir=str(output))).exists()


@pytest.mark.slow
def test_train_layers_leaves_the_embeddings_and_lower_layers_as_pretrained(
    tmp_path, base_model, data_dir, capsys
):
    from safetensors.torch import load_file

    output = train_in_process(
        tmp_path, base_model, data_dir, "--train-layers", "1", "--epochs", "1"
    )
    trained, base = (
        load_file(output / "model.safetensors"),
        load_file(base_model / "model.safetensors"),
    )
    embedding = next(k for k in trained if k.endswith("word_embeddings.weight"))
    layer = next(k for k in trained if "layer.0.ffn.lin1.weight" in k)
    base_key = lambda key: next(k for k in base if key.endswith(k))  # noqa: E731
    assert (trained[embedding] == base[base_key(embedding)]).all()
    assert not (trained[layer] == base[base_key(layer)]).all()
    assert main.main(train_args(base_model, data_dir, tmp_path / "x", "--train-layers", "2")) == 2
    assert "--train-layers 2: the base model has 1 layers" in capsys.readouterr().err


def test_precision_follows_the_hardware_and_fp16_needs_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this test reads a CPU-only machine")
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    with pytest.raises(UsageError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16")


@pytest.mark.slow
def test_gradient_checkpointing_trains_the_same_model(tmp_path, base_model, data_dir, model_dir):
    from safetensors.torch import load_file

    output = train_in_process(tmp_path, base_model, data_dir, "--gradient-checkpointing")
    assert metrics(output)["config"]["gradient_checkpointing"] is True
    # Recomputed activations, the same arithmetic: every weight as the plain run trained it.
    ours, plain = (load_file(folder / "model.safetensors") for folder in (output, model_dir))
    assert ours.keys() == plain.keys()
    for name, weight in ours.items():
        assert torch.allclose(weight, plain[name], atol=1e-5), name


@pytest.mark.slow
def test_mlflow_tracks_a_run_in_a_local_store(tmp_path, base_model, data_dir, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    train_in_process(tmp_path, base_model, data_dir, "--report-to", "mlflow", "--epochs", "1")
    mlflow.set_tracking_uri(store)
    (run,) = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert {"eval_f1", "loss"} <= set(run.data.metrics)
    assert run.data.params["learning_rate"] == "0.002"


def test_a_missing_tracker_names_its_install(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    assert main.main(["--report-to", "wandb", "--output-dir", str(tmp_path / "m")]) == 2
    assert "pip install wandb" in capsys.readouterr().err


def test_recipe_files_in_configs_are_valid():
    files = sorted((ROOT / "configs").glob("*.yaml"))
    assert {"default.yaml", "typed-reviews.yaml", "teacher.yaml", "student.yaml"} <= {
        file.name for file in files
    }
    for file in files:
        assert file.read_text().startswith("# "), f"{file.name}: say what the recipe is for"
        settings = read_config(file)
        # What main.py makes of the file is what the file says, and a run would accept it.
        config = main.config_of(
            main.parse_config(main.build_train_parser(), ["--config", str(file)])
        )
        for name, value in settings.items():
            assert getattr(config, name) == (tuple(value) if isinstance(value, list) else value)
        assert (config != TrainConfig()) == (file.name != "default.yaml")
        if not config.teacher:  # a student's teacher folder is made by configs/teacher.yaml
            check_config(config)


@pytest.mark.slow
def test_torchrun_trains_as_one_and_publishes_one_model(tmp_path, base_model, data_dir):
    output = tmp_path / "model"
    args = train_args(base_model, data_dir, output, "--grad-accum", "1", "--epochs", "2")
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = run_script(*launch, "main.py", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batch 4 (2 per step x 2 processes x 1 steps per update)" in result.stderr
    assert result.stdout.count("Test on 40 reviews") == 1  # tested once, by process 0
    report = metrics(output)
    assert report["train"]["processes"] == 2
    # 120 reviews in batches of 2 per process: 30 steps an epoch, not 60 (the data is split).
    assert max(row["step"] for row in report["history"]) == 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no partial, no checkpoints
