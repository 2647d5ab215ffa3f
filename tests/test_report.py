"""What each run publishes beside its model: metrics, plots, errors.csv, the model card."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import MAX_LENGTH, train_args, train_in_process
from huggingface_hub import ModelCard
from PIL import Image

import app
import infer
import main
from training.report import CARD_FILE, ERRORS_COLUMNS, ERRORS_FILE, PLOTS, display_name, model_card

TIMING = ("seconds", "reviews_per_second")


@pytest.fixture(scope="module")
def weak_model(tmp_path_factory, base_model, data_dir) -> Path:
    """A model that learned nothing (a random head, learning rate 1e-12), so it gets many reviews
    wrong; it reads long reviews head+tail, so errors.csv shows reviews read in part."""
    folder = tmp_path_factory.mktemp("weak")
    flags = ("--learning-rate", "1e-12", "--epochs", "1", "--inference-truncation", "head+tail")
    flags += ("--head-init", "random")  # a fitted head would read the tiny reviews right
    return train_in_process(folder, base_model, data_dir, *flags)


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_every_report_file_is_written(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {*PLOTS.values(), ERRORS_FILE, CARD_FILE, "metrics.json"} <= names
    for name in PLOTS.values():
        with Image.open(model_dir / name) as image:
            image.verify()
            assert image.format == "PNG" and min(image.size) >= 300


def test_metrics_json_has_baseline_timing_fingerprint_and_history(model_dir):
    report = metrics(model_dir)
    for section in ("test", "baseline"):
        assert {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"} <= set(
            report[section]
        )
        assert report[section]["reviews"] == 40
    assert report["test"]["accuracy"] > report["baseline"]["accuracy"]
    assert report["validation"]["confusion_matrix"] and "roc_auc" in report["validation"]
    assert report["train"]["seconds"] > 0 and report["train"]["reviews_per_second"] > 0
    assert report["test"]["reviews_per_second"] > 0
    assert set(report["data"]["sha256"]) == {"train", "validation", "test"}
    assert [row["epoch"] for row in report["history"] if "eval_f1" in row] == [1, 2, 3, 4, 5, 6]
    assert 0 <= report["test_truncated_share"] <= 1


@pytest.mark.slow
def test_errors_csv_lists_only_misclassified_reviews_most_confident_first(weak_model):
    report = metrics(weak_model)
    with (weak_model / ERRORS_FILE).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == ERRORS_COLUMNS
        rows = list(reader)
    (_, false_positive), (false_negative, _) = report["test"]["confusion_matrix"]
    assert len(rows) == false_positive + false_negative > 0
    assert all(row["true_label"] != row["predicted_label"] for row in rows)
    confidences = [float(row["confidence"]) for row in rows]
    assert confidences == sorted(confidences, reverse=True)
    # The served (calibrated) probability of the wrong label each row shows.
    served = infer.load(weak_model, backend="torch").classify([row["text"] for row in rows])
    shown = [p.scores[row["predicted_label"]] for p, row in zip(served, rows, strict=True)]
    assert confidences == pytest.approx(shown, abs=1e-4)
    assert all(int(row["read"]) == min(int(row["tokens"]), MAX_LENGTH) for row in rows)
    assert any(int(row["read"]) < int(row["tokens"]) for row in rows)


def test_model_card_metadata_matches_metrics_json(model_dir):
    text = (model_dir / CARD_FILE).read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["pipeline_tag"] == "text-classification" and front["license"] == "apache-2.0"
    card = ModelCard(text)  # the Hub's own parser
    test = metrics(model_dir)["test"]
    values = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert values == {
        key: test[key] for key in ("accuracy", "precision", "recall", "f1", "roc_auc")
    }
    assert all(result.dataset_split == "test" for result in card.data.eval_results)
    assert "points |" in text and 'pipeline("text-classification"' in text
    assert f"first {MAX_LENGTH} tokens" in text


def test_model_card_says_how_the_model_reads_long_reviews(model_dir):
    body = model_card(metrics(model_dir))
    assert "cut long reviews by `head+tail`" in body
    assert "reads long reviews by `sliding`" in body and "in 32-token windows" in body


def test_model_card_shows_no_path_of_this_machine(model_dir, base_model, data_dir):
    body = model_card(metrics(model_dir))
    assert str(base_model) not in body and str(data_dir) not in body
    assert f"`{base_model.name}`" in body
    assert display_name("distilbert-base-uncased") == "distilbert-base-uncased"


def test_evaluate_refuses_a_folder_from_another_version(tmp_path, model_dir, capsys):
    copy = shutil.copytree(model_dir, tmp_path / "model")
    report = metrics(copy)
    report["config"]["ema_decay"] = 0.0  # a setting this version no longer has
    (copy / "metrics.json").write_text(json.dumps(report))
    before = (copy / "metrics.json").read_text()
    assert main.main(["evaluate", "--model-dir", str(copy)]) == 2
    error = capsys.readouterr().err
    assert "does not know (ema_decay)" in error
    assert "retrain it with python main.py" in error
    assert (copy / "metrics.json").read_text() == before


def test_evaluate_reproduces_the_saved_test_metrics(tmp_path, model_dir, capsys):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    (copy / PLOTS["loss"]).unlink()
    before = metrics(copy)
    del before["data"]["extra"]  # as folders published before --extra-data existed
    (copy / "metrics.json").write_text(json.dumps(before))
    assert main.main(["evaluate", "--model-dir", str(copy)]) == 0
    after = metrics(copy)
    assert after["data"]["extra"] == []
    strip = lambda section: {k: v for k, v in section.items() if k not in TIMING}  # noqa: E731
    assert strip(after["test"]) == strip(before["test"])
    assert after["baseline"] == before["baseline"]
    assert (copy / PLOTS["loss"]).is_file()
    assert "Test on 40 reviews" in capsys.readouterr().out


def test_evaluate_on_other_reviews_drops_the_stale_baseline(tmp_path, model_dir):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    assert main.main(["evaluate", "--model-dir", str(copy), "--test-subset", "20"]) == 0
    report = metrics(copy)
    assert report["test"]["reviews"] == 20 and report["baseline"] is None
    assert "not measured" in (copy / CARD_FILE).read_text()


def test_evaluate_without_a_model_names_the_fix(tmp_path, capsys):
    assert main.main(["evaluate", "--model-dir", str(tmp_path / "none")]) == 2
    assert "python main.py" in capsys.readouterr().err


@pytest.mark.slow
def test_tensorboard_logs_go_to_runs(monkeypatch, tmp_path, base_model, data_dir):
    monkeypatch.chdir(tmp_path)
    args = train_args(base_model, data_dir, tmp_path / "model", "--epochs", "1")
    assert main.main([*args, "--report-to", "tensorboard"]) == 0
    assert list((tmp_path / "runs").glob("model-*/events.out.tfevents.*"))


def test_about_tab_shows_results_or_says_there_are_none(tmp_path, model_dir):
    text, image = app.about_model(model_dir)
    assert text.startswith("## Results") and "| Accuracy |" in text and "![" not in text
    assert image.size[0] >= 300
    text, image = app.about_model(tmp_path)
    assert "No evaluation report" in text and image is None
