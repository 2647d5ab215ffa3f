"""Text cleaning and metric math shared by training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from utils import MAX_CHARS, binary_metrics, clean_text, positive_probability, token_lengths


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Great film.<br /><br />Loved it.", "Great film. Loved it."),
        ("one<br>two<BR/>three<br  />four", "one two three four"),
        ("Tom &amp; Jerry &quot;rocks&quot;", 'Tom & Jerry "rocks"'),
        ("  spaced \t\n out  ", "spaced out"),
        ("No markup at all.", "No markup at all."),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_caps_characters():
    assert len(clean_text("word " * 2_000_000)) <= MAX_CHARS


def test_binary_metrics_match_hand_counts():
    # Cut at 0.5: 3 true positives, 1 false positive, 1 false negative, 1 true negative.
    labels, positive = [1, 1, 1, 0, 1, 0], [0.9, 0.8, 0.6, 0.7, 0.4, 0.1]
    metrics = binary_metrics(labels, positive)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 3]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1"] == pytest.approx(3 / 4)
    # Of the 8 positive-negative pairs, the positive scores higher in 6: 0.6 and 0.4 are below 0.7.
    assert metrics["roc_auc"] == pytest.approx(6 / 8)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.6, 0.3, 0.4, 0.9]))
    assert metrics["log_loss"] == pytest.approx(expected_loss)


def test_positive_probability_is_a_softmax():
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [1000.0, 0.0]])
    assert positive_probability(logits) == pytest.approx([0.5, 1 / (1 + np.exp(-2)), 0.0])


def test_token_lengths_count_the_whole_cleaned_review(model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    long_review = "great film " * 100  # 200 words, far past the 32-token cut
    assert token_lengths(tokenizer, ["great film", long_review, "great<br />film"]) == [4, 202, 4]
