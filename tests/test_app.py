"""The Gradio app on loopback, used through `gradio_client` as a visitor's browser would."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import MAX_LENGTH
from gradio_client import Client
from gradio_client.exceptions import AppError

import app
import infer
from serving import words


def launch(model_dir: Path):
    demo = app.build_demo(model_dir)
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo, url


@pytest.fixture(scope="module")
def served(model_dir):
    infer.reset()
    demo, url = launch(model_dir)
    yield url, Client(url, verbose=False)
    demo.close()


@pytest.fixture(scope="module")
def served_without_model(tmp_path_factory):
    demo, url = launch(tmp_path_factory.mktemp("empty") / "model")
    yield url, Client(url, verbose=False)
    demo.close()


def page_notice(url: str) -> str:
    config = httpx.get(f"{url}config", timeout=10).json()
    (notice,) = [c for c in config["components"] if c["props"].get("elem_id") == "model-notice"]
    return notice["props"]["value"]


def test_predict_shows_both_labels_with_confidences(served):
    _, client = served
    result, read = client.predict("great wonderful superb film", api_name="/predict")
    assert result["label"] == "POSITIVE"
    assert read.startswith("**Positive**, ") and read.endswith("Read all 6 tokens of the review.")
    confidences = {c["label"]: c["confidence"] for c in result["confidences"]}
    assert set(confidences) == {"NEGATIVE", "POSITIVE"}
    assert sum(confidences.values()) == pytest.approx(1.0)


def test_long_review_says_how_much_was_read(served):
    _, client = served
    review = " ".join(["great film"] * 50)  # 100 words, 102 tokens with [CLS] and [SEP]
    _, read = client.predict(review, api_name="/predict")
    # The tiny model, as main.py trains by default, reads long reviews in sliding windows.
    assert f"Read all 102 tokens, in windows of {MAX_LENGTH}" in read


def test_blank_review_gets_a_message_not_a_prediction(served):
    _, client = served
    with pytest.raises(AppError, match="Type or paste a movie review first"):
        client.predict("   ", api_name="/predict")


def test_page_with_a_model_has_no_warning(served):
    url, _ = served
    assert page_notice(url) == ""


def test_page_without_a_model_says_how_to_train(served_without_model):
    url, client = served_without_model
    assert "python main.py --subset 2000" in page_notice(url)
    with pytest.raises(AppError, match="No model in"):
        client.predict("a fine film", api_name="/predict")


def test_every_example_review_gets_an_answer_as_a_visitor_sees_it(model_dir):
    answers = [app.classify(example, model_dir) for example in app.EXAMPLES]
    for example, (scores, shown) in zip(app.EXAMPLES, answers, strict=True):
        expected = infer.load(model_dir).classify([example])[0]
        assert scores == pytest.approx(expected.scores)
        assert shown.startswith(words.verdict(expected))
    # The pasted one of several paragraphs is long enough to be read in several windows.
    assert any("in windows of" in shown for _, shown in answers)


@pytest.mark.parametrize(
    ("tokens", "read", "truncation", "says"),
    [
        (6, 6, "head", "Read all 6 tokens of the review."),
        (612, 256, "head", "Read 256 of 612 tokens: a long review, so the model read the opening "),
        (612, 256, "head+tail", "read the opening and the ending and skipped the rest."),
        (612, 612, "sliding", "Read all 612 tokens, in windows of 256 whose verdicts"),
    ],
)
def test_coverage_line_says_what_was_read(tokens, read, truncation, says):
    from types import SimpleNamespace

    prediction = infer.Prediction({"NEGATIVE": 0.2, "POSITIVE": 0.8}, tokens, read)
    classifier = SimpleNamespace(truncation=truncation, max_length=256)
    assert says in words.coverage(prediction, classifier)


@pytest.mark.parametrize(
    ("scores", "unsure", "says"),
    [
        ({"NEGATIVE": 0.02, "POSITIVE": 0.98}, False, "**Positive**, very sure (98%)."),
        ({"NEGATIVE": 0.85, "POSITIVE": 0.15}, False, "**Negative**, fairly sure (85%)."),
        ({"NEGATIVE": 0.4, "POSITIVE": 0.6}, True, "**Mixed or unclear**: it leans positive (60%)"),
    ],
)
def test_the_verdict_is_said_in_plain_words(scores, unsure, says):
    assert words.verdict(infer.Prediction(scores, 6, 6, unsure=unsure)).startswith(says)


def test_a_warning_is_shown_beside_the_prediction(served):
    _, client = served
    _, details = client.predict("Ce film est magnifique, je l'ai adoré.", api_name="/predict")
    assert "⚠️ This reads as French (fr), not English" in details
    _, details = client.predict("great wonderful superb film", api_name="/predict")
    assert "⚠️" not in details
