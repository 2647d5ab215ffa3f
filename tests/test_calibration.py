"""Calibration, the unsure verdict, snippets and text warnings, on the tiny model."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import run_script, train_args

import infer
import main
from sentiment_metric import SentimentMetric
from serving import calibration as calibrate
from serving import checks
from serving.calibration import CALIBRATION_FILE
from training import data, scoring
from training.config import saved_config

REVIEWS = [
    "great wonderful film",
    "awful boring plot",
    "the plot was dull and the acting was great",
    "loved it",
    "a waste",
    "superb moving brilliant story . " * 12,  # longer than the window: read in several
]


def with_calibration(model_dir, folder, temperature: float, unsure_below: float):
    shutil.copytree(model_dir, folder)
    saved = {
        "temperature": temperature,
        "short_temperature": 2 * temperature,
        "short_tokens": 10,
        "unsure_below": unsure_below,
        "windows_temperature": temperature - 1,
    }
    (folder / CALIBRATION_FILE).write_text(json.dumps(saved))
    infer.reset()
    return folder


def test_scaling_never_changes_the_predicted_label(model_dir):
    classifier = infer.load(model_dir)
    by_temperature = {
        t: replace(classifier, calibration=infer.Calibration(t, t, windows_temperature=t))
        for t in (0.2, 1.0, 5.0)
    }
    results = {t: c.classify(REVIEWS) for t, c in by_temperature.items()}
    labels = {t: [p.label for p in r] for t, r in results.items()}
    assert labels[0.2] == labels[1.0] == labels[5.0]
    top = {t: [p.scores[p.label] for p in r] for t, r in results.items()}
    assert all(a > b > c for a, b, c in zip(top[0.2], top[1.0], top[5.0], strict=True))


def test_the_saved_temperature_and_threshold_are_what_every_entry_point_applies(
    model_dir, tmp_path, capsys
):
    import app

    folder = with_calibration(model_dir, tmp_path / "model", 4.0, 0.99)
    classifier = infer.load(folder)
    assert classifier.calibration == infer.Calibration(4.0, 8.0, 10, 0.99, 3.0)
    logits, encoded = classifier.window_logits(REVIEWS)
    windows = np.bincount(encoded["review"])
    temperatures = [
        8.0 if n <= 10 else 3.0 if w > 1 else 4.0
        for n, w in zip(encoded["tokens"], windows, strict=True)
    ]
    # Short texts, reviews read in one window and in several each get their own.
    assert temperatures[:2] == [8.0, 8.0] and temperatures[-1] == 3.0 and 4.0 in temperatures
    expected = infer.served_probabilities(logits, encoded["review"], np.array(temperatures))
    api = infer.predict(REVIEWS, folder)
    assert np.allclose([[p["NEGATIVE"], p["POSITIVE"]] for p in api], expected)
    assert all(p.unsure for p in classifier.classify(REVIEWS))  # nothing reaches 99% at T >= 4

    assert infer.main(["--model-dir", str(folder), "--json", REVIEWS[0]]) == 0
    (printed,) = json.loads(capsys.readouterr().out)
    assert printed["unsure"] is True
    assert printed["scores"]["POSITIVE"] == pytest.approx(expected[0, 1])
    assert infer.main(["--model-dir", str(folder), REVIEWS[0]]) == 0
    assert "(mixed or unclear)" in capsys.readouterr().out

    scores, details = app.classify(REVIEWS[0], folder)
    assert scores["POSITIVE"] == pytest.approx(expected[0, 1])
    assert details.startswith("**Mixed or unclear**")


def test_a_training_run_saves_its_calibration_and_reports_it(model_dir):
    saved = json.loads((model_dir / CALIBRATION_FILE).read_text())
    assert saved["temperature"] > 0 and 0.5 <= saved["unsure_below"] < 1
    report = json.loads((model_dir / "metrics.json").read_text())
    assert report["calibration"]["temperature"] == saved["temperature"]
    # 12 validation reviews, a snippet of most, and the 68 short training reviews neither
    # trained (120) nor validated on: all of the tiny data's reviews are short.
    fit = report["calibration"]
    assert fit["short_reviews"] == 200 - 120 - 12
    assert 12 + 68 < fit["texts"] <= 2 * 12 + 68
    assert fit["windows_temperature"] == saved["windows_temperature"] > 0
    assert {"ece", "brier", "unsure_share", "accuracy_answered"} <= set(report["test"])
    assert {"ece", "brier", "log_loss"} == set(report["test"]["uncalibrated"])
    card = (model_dir / "README.md").read_text()
    assert "### Calibration" in card and "| IMDB test | 40 |" in card
    assert (model_dir / "reliability.png").stat().st_size > 10_000


def test_the_card_gives_the_accuracy_on_held_out_short_reviews(model_dir, data_dir):
    report = json.loads((model_dir / "metrics.json").read_text())
    config = saved_config(report["config"], str(model_dir))
    imdb = data.load_data(str(data_dir))
    splits = data.make_splits(imdb, config)
    short = data.short_reviews(imdb, splits)
    assert len(short["text"]) == report["calibration"]["short_reviews"] == 68
    # Read again in PyTorch, as training read them; a wrong count or set would differ.
    classifier = infer.load(model_dir, backend="torch")
    predicted = [classifier.labels.index(p.label) for p in classifier.classify(short["text"])]
    right = np.mean(np.asarray(predicted) == np.asarray(short["label"]))
    assert report["calibration"]["short_reviews_accuracy"] == pytest.approx(right)
    # The figure is counted, not assumed: the same reviews with their labels flipped score 1 - it.
    flipped = {"text": short["text"], "label": [1 - label for label in short["label"]]}
    _, fit = scoring.calibrated(classifier, splits["validation"], config.seed, flipped, [])
    assert fit["short_reviews_accuracy"] == pytest.approx(1 - right)
    card = (model_dir / "README.md").read_text()
    assert "On the 68 IMDB reviews of at most 64 tokens" in card
    assert f"the model is right {right:.1%} of the time" in card


def test_the_temperature_fit_recovers_a_known_temperature():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 2))
    true_t = 2.5  # the labels follow softmax(logits / 2.5): the logits are too sure
    positive = 1 / (1 + np.exp(-(logits[:, 1] - logits[:, 0]) / true_t))
    labels = (rng.random(4000) < positive).astype(int).tolist()
    fitted = calibrate.fit_temperature(logits, list(range(4000)), labels)
    assert fitted == pytest.approx(true_t, rel=0.1)


def test_the_unsure_threshold_is_the_lowest_that_keeps_answers_right_as_targeted():
    # Confident answers right, the 0.6 ones a coin toss: 90% right from 0.7 up, not below.
    top = np.array([0.95] * 8 + [0.75] * 1 + [0.6] * 10)
    correct = [True] * 8 + [False] + [True, False] * 5
    probs = np.stack([1 - top, top], axis=1)
    labels = [1 if ok else 0 for ok in correct]
    assert calibrate.unsure_threshold(probs, labels, target=0.88) == 0.61
    assert calibrate.unsure_threshold(probs[:8], labels[:8]) == 0.5  # all right: never unsure


def test_many_easy_texts_of_one_kind_cannot_set_the_band_for_the_others():
    # 1,000 sure and right phrases beside 19 reviews, the 0.6 ones a coin toss: pooled, the
    # phrases hide the coin toss (never unsure); each kind weighing the same, 0.6 is unsure.
    top = np.array([0.99] * 1000 + [0.95] * 8 + [0.75] * 1 + [0.6] * 10)
    correct = [True] * 1008 + [False] + [True, False] * 5
    probs = np.stack([1 - top, top], axis=1)
    labels = [1 if ok else 0 for ok in correct]
    groups = ["phrases"] * 1000 + ["reviews"] * 19
    assert calibrate.unsure_threshold(probs, labels) == 0.5
    weights = calibrate.group_weights(groups)
    assert weights[:1000].sum() == pytest.approx(weights[1000:].sum()) == pytest.approx(0.5)
    assert calibrate.unsure_threshold(probs, labels, weights=weights) == 0.61


def test_ece_matches_a_hand_count():
    # Confidences 0.9, 0.9, 0.8, 0.6 in three bins; right, wrong, right, right.
    metrics = SentimentMetric().compute(predictions=[0.9, 0.9, 0.2, 0.6], references=[1, 0, 0, 1])
    assert metrics["ece"] == pytest.approx(0.5 * 0.4 + 0.25 * 0.2 + 0.25 * 0.4)
    assert metrics["brier"] == pytest.approx((0.01 + 0.81 + 0.04 + 0.16) / 4)


def test_a_folder_without_calibration_says_how_to_calibrate_it(model_dir, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "model")
    (folder / CALIBRATION_FILE).unlink()
    with pytest.raises(infer.ModelNotFoundError, match=r"python main\.py evaluate --model-dir"):
        infer.load(folder)
    assert main.main(["evaluate", "--model-dir", str(folder)]) == 0
    assert json.loads((folder / CALIBRATION_FILE).read_text()) == json.loads(
        (model_dir / CALIBRATION_FILE).read_text()
    )  # the same validation reviews, so the same fit


def test_snippets_are_one_or_two_sentences_of_their_review_with_its_label():
    texts = [
        "A great film. The cast is superb and moving. I loved every minute of it!",
        "Dull.",  # no sentence of four words or more: no snippet
        "The plot is awful and boring. The acting is terrible too.",
    ]
    out = data.snippets(texts, [1, 0, 0], 2, seed=3)
    assert out["label"] == [1, 1, 0, 0]
    for snippet, label in zip(out["text"], out["label"], strict=True):
        source = texts[0] if label else texts[2]
        assert snippet in source and 4 <= len(snippet.split()) <= 40
    assert out == data.snippets(texts, [1, 0, 0], 2, seed=3)  # seeded


@pytest.mark.slow
def test_short_sets_are_reported_beside_the_test_split(tmp_path, base_model, data_dir):
    from conftest import make_frame

    short = tmp_path / "short"
    short.mkdir()
    make_frame(10, seed=9).to_parquet(short / "typed.parquet")
    args = train_args(base_model, data_dir, tmp_path / "model", "--epochs", "1")
    assert main.main([*args, "--short-data", str(short)]) == 0
    report = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert set(report["short"]) == {"typed"} and report["short"]["typed"]["reviews"] == 20
    assert "| typed | 20 |" in (tmp_path / "model" / "README.md").read_text()
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main.main([*args, "--short-data", str(empty)]) == 2


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ("Boring.", "A word or two is little to go on"),
        ("Ce film est magnifique, je l'ai adoré du début à la fin.", "reads as French (fr)"),
        ("Die Schauspieler waren schrecklich und der Film langweilig.", "reads as German (de)"),
        ("12345 !!! ???", "does not look like a review"),
        ("https://example.com/watch?v=1", "does not look like a review"),
    ],
)
def test_each_warning_fires_on_its_case(text, warning):
    (said,) = checks.text_warnings(text)
    assert warning in said


@pytest.mark.parametrize(
    "text",
    [
        "The acting was superb and the story kept me guessing.",
        "It was okay, nothing special.",
        "Not bad at all.",
        "I expected little, but this film won me over: a sharp script and a warm lead.",
    ],
)
def test_no_warning_on_an_ordinary_review(text):
    assert checks.text_warnings(text) == []


def test_the_cli_prints_warnings(model_dir):
    result = run_script("infer.py", "--model-dir", str(model_dir), "Boring.")
    assert result.returncode == 0, result.stderr
    assert "note: A word or two is little to go on" in result.stdout


def test_calibration_json_reads_back_as_written_and_a_broken_one_names_the_fix(model_dir, tmp_path):
    folder = with_calibration(model_dir, tmp_path / "model", 4.0, 0.6)
    calibration = infer.load(folder).calibration
    calibrate.write(folder, replace(calibration, unsure_below=0.7))
    assert calibrate.read(folder) == replace(calibration, unsure_below=0.7)
    encoded = {"tokens": [5, 40, 90], "review": [0, 1, 2, 2]}  # short, one window, two
    assert calibration.temperatures(encoded).tolist() == [8.0, 4.0, 3.0]
    saved = json.loads((folder / CALIBRATION_FILE).read_text())
    for broken in (
        {k: v for k, v in saved.items() if k != "windows_temperature"},
        saved | {"temperature": 0},
        saved | {"unsure_below": 1.5},
        [1, 2],
    ):
        (folder / CALIBRATION_FILE).write_text(json.dumps(broken))
        infer.reset()
        with pytest.raises(infer.ModelNotFoundError, match=r"main\.py evaluate --model-dir"):
            infer.load(folder)


def test_calibration_holds_out_the_short_reviews_nobody_trained_or_validated_on():
    texts = ["a b c", "a b c d", " ".join(["word"] * 61), "e f", "g h"]
    imdb = {"train": {"text": texts, "label": [0, 1, 1, 0, 1]}}
    splits = {"train": {"text": ["a b c"]}, "validation": {"text": ["e f"]}}
    short = data.short_reviews(imdb, splits)
    assert short == {"text": ["a b c d", "g h"], "label": [1, 1]}  # not 61 words, not used
