"""Text cleaning and metric math shared by training and inference."""

from __future__ import annotations

import pytest

from utils import MAX_CHARS, binary_metrics, clean_text


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
    # 3 true positives, 1 false positive, 1 false negative, 1 true negative.
    metrics = binary_metrics([1, 1, 1, 0, 1, 0], [1, 1, 1, 1, 0, 0])
    assert metrics["confusion_matrix"] == [[1, 1], [1, 3]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1"] == pytest.approx(3 / 4)
