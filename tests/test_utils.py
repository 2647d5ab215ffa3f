"""Text cleaning, truncation, the label rule and the metric shared by training and inference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import MAX_LENGTH

from sentiment_metric import SentimentMetric
from serving.calibration import served_probabilities
from utils import (
    MAX_CHARS,
    STRATEGIES,
    check_strategy,
    clean_text,
    encode,
    predicted_ids,
    top_label,
    windows,
)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Great film.<br /><br />Loved it.", "Great film. Loved it."),
        ("one<br>two<BR/>three<br  />four", "one two three four"),
        ("Tom &amp; Jerry &quot;rocks&quot;", 'Tom & Jerry "rocks"'),
        ("  spaced \t\n out  ", "spaced out"),
        ("No markup at all.", "No markup at all."),
        # Treebank spacing (SST-2, Rotten Tomatoes) and a phone's quotes, joined as people type.
        ("it does n't work , and ca n't", "it doesn't work , and can't"),
        ("I didn\u2019t care, \u201cfine\u201d", 'I didn\'t care, "fine"'),
        ("-lrb- sort of -rrb- ``good''", '( sort of ) "good"'),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_typed_and_treebank_negations_reach_the_model_as_the_same_tokens(base_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    typed, treebank = (encode(tokenizer, [text])["input_ids"][0] for text in (
        "the film wasn\u2019t boring", "the film was n't boring"
    ))  # fmt: skip
    assert typed == treebank


def test_clean_text_caps_characters():
    assert len(clean_text("word " * 2_000_000)) <= MAX_CHARS


def test_the_metric_matches_hand_counts():
    # Cut at 0.5: 3 true positives, 1 false positive, 1 false negative, 1 true negative.
    labels, positive = [1, 1, 1, 0, 1, 0], [0.9, 0.8, 0.6, 0.7, 0.4, 0.1]
    metrics = SentimentMetric().compute(predictions=positive, references=labels)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 3]]
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["f1"] == pytest.approx(3 / 4)
    # Of the 8 positive-negative pairs, the positive scores higher in 6: 0.6 and 0.4 are below 0.7.
    assert metrics["roc_auc"] == pytest.approx(6 / 8)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.6, 0.3, 0.4, 0.9]))
    assert metrics["log_loss"] == pytest.approx(expected_loss)


def test_the_metric_loads_by_path_offline_as_evaluate_loads_it():
    import evaluate
    from conftest import ROOT

    labels, positive = [1, 0, 1, 0], [0.8, 0.3, 0.2, 0.6]
    loaded = evaluate.load(str(ROOT / "sentiment_metric.py"))
    assert loaded.compute(predictions=positive, references=labels) == SentimentMetric().compute(
        predictions=positive, references=labels
    )


def test_the_metric_refuses_logits():
    with pytest.raises(ValueError, match="softmax"):
        SentimentMetric().compute(predictions=[2.5, -1.0], references=[1, 0])


def test_one_window_untempered_is_the_softmax_and_every_label_rule_gives_a_tie_to_label_0():
    logits = np.array([[0.0, 0.0], [1.0, 3.0], [1000.0, 0.0]])
    probs = served_probabilities(logits, [0, 1, 2], 1.0)
    assert probs[:, 1] == pytest.approx([0.5, 1 / (1 + np.exp(-2)), 0.0])
    assert predicted_ids(probs[:, 1]).tolist() == [0, 1, 0]
    named = [top_label(dict(zip(("NEGATIVE", "POSITIVE"), row, strict=True))) for row in probs]
    assert named == ["NEGATIVE", "POSITIVE", "NEGATIVE"]
    # A review at exactly 0.5 is NEGATIVE for all, so metrics count what the app shows. The
    # metric script keeps its own copy of the rule: evaluate.load(PATH) copies the file alone.
    tie = SentimentMetric().compute(predictions=[0.5, 0.5], references=[0, 1])
    assert tie["confusion_matrix"] == [[1, 0], [1, 0]]


@pytest.fixture(scope="module")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)  # the tiny vocab, cut at MAX_LENGTH tokens


IDS = list(range(100))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_short_sequence_is_read_whole(strategy):
    assert windows(IDS[:10], 10, strategy) == [IDS[:10]]


def test_head_keeps_the_start():
    assert windows(IDS, 10, "head") == [IDS[:10]]


@pytest.mark.parametrize(("fraction", "head"), [(0.25, 2), (0.5, 5), (0.0, 0), (1.0, 10)])
def test_head_tail_keeps_both_ends(fraction, head):
    (piece,) = windows(IDS, 10, "head+tail", fraction)
    assert piece == IDS[:head] + IDS[100 - (10 - head) :]
    assert len(piece) == 10 and (head == 10 or piece[-1] == 99)


@pytest.mark.parametrize(("length", "budget"), [(100, 10), (11, 10), (57, 8), (1000, 254)])
def test_sliding_windows_cover_every_token_in_order(length, budget):
    pieces = windows(list(range(length)), budget, "sliding")
    assert all(len(piece) == budget for piece in pieces)
    assert pieces[0][0] == 0 and pieces[-1][-1] == length - 1
    covered = sorted({i for piece in pieces for i in piece})
    assert covered == list(range(length))
    assert len(pieces) == -(-length // budget)  # as few windows as cover it
    for before, after in itertools.pairwise(pieces):
        assert after[0] <= before[-1] + 1  # each starts where the one before ends, or earlier


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="head, head\\+tail, sliding"):
        check_strategy("middle")
    with pytest.raises(ValueError, match="takes head, head\\+tail, got 'sliding'"):
        check_strategy("sliding", allowed=("head", "head+tail"))
    with pytest.raises(ValueError, match="between 0 and 1"):
        windows(IDS, 10, "head+tail", 1.5)


def test_encode_counts_tokens_of_the_whole_cleaned_review(tokenizer):
    long_review = "great film " * 100  # 200 words, far past the 32-token cut
    encoded = encode(tokenizer, ["great film", long_review, "great<br />film"])
    assert encoded["tokens"] == [4, 202, 4]  # [CLS] and [SEP] included
    assert encoded["read"] == [4, MAX_LENGTH, 4]
    assert [len(ids) for ids in encoded["input_ids"]] == [4, MAX_LENGTH, 4]


def test_encode_head_tail_keeps_the_verdict_at_the_end(tokenizer):
    review = "great " * 40 + "awful dull"
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    great, awful, dull = tokenizer.convert_tokens_to_ids(["great", "awful", "dull"])
    head = encode(tokenizer, [review], "head")["input_ids"][0]
    both = encode(tokenizer, [review], "head+tail", 0.25)["input_ids"][0]
    assert head == [cls] + [great] * (MAX_LENGTH - 2) + [sep]
    # 30 tokens of budget: round(7.5) = 8 from the start, 22 from the end.
    assert both == [cls] + [great] * 8 + [great] * 20 + [awful, dull] + [sep]


def test_encode_sliding_wraps_every_window(tokenizer):
    review = " ".join(["great", "awful", "film", "plot"] * 25)  # 100 words
    encoded = encode(tokenizer, ["dull", review], "sliding")
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert encoded["review"][0] == 0 and set(encoded["review"][1:]) == {1}
    for ids in encoded["input_ids"][1:]:
        assert ids[0] == cls and ids[-1] == sep and len(ids) == MAX_LENGTH
    body = tokenizer(review, add_special_tokens=False)["input_ids"]
    pieces = [ids[1:-1] for ids in encoded["input_ids"][1:]]
    assert pieces == windows(body, MAX_LENGTH - 2, "sliding")
    assert encoded["tokens"] == encoded["read"] == [3, 102]
