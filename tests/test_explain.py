"""Why a verdict: word scores by integrated gradients, and sentence-by-sentence labels."""

from __future__ import annotations

import pytest

import app
import infer
from serving import explain

# The same neutral words around one word of sentiment: swapping that word flips the label.
DECIDED_BY = {"superb": "the film was superb", "awful": "the film was awful"}


@pytest.fixture(scope="module")
def classifier(model_dir):
    return infer.load(model_dir)  # ONNX, as served: the scores come from its PyTorch weights


@pytest.mark.parametrize("word", DECIDED_BY)
def test_the_word_that_decides_the_label_gets_the_largest_score(classifier, model_dir, word):
    text = DECIDED_BY[word]
    label = classifier.classify([text])[0].label
    assert label == ("POSITIVE" if word == "superb" else "NEGATIVE")
    scores = dict(explain.word_scores(classifier, text))
    top = max(scores, key=lambda w: abs(scores[w]))
    assert top == word
    assert scores[word] == (1.0 if label == "POSITIVE" else -1.0)  # scaled, signed as its pull


def test_word_scores_cover_every_word_of_a_long_review_in_windows(classifier, model_dir):
    text = " ".join(["the film was great"] * 30)  # 120 words: several windows of 32 tokens
    scores = explain.word_scores(classifier, text)
    assert [w for w, _ in scores] == text.split()
    assert max(abs(s) for _, s in scores) == pytest.approx(1.0)


def test_the_same_scores_from_pytorch_and_onnx_classifiers(classifier, model_dir):
    plain = infer.load(model_dir, backend="torch")
    text = DECIDED_BY["superb"]
    torch_scores = explain.word_scores(plain, text)
    onnx_scores = explain.word_scores(classifier, text)
    assert [w for w, _ in torch_scores] == [w for w, _ in onnx_scores]
    assert [s for _, s in torch_scores] == pytest.approx([s for _, s in onnx_scores])


def test_each_sentence_gets_its_own_label(classifier):
    pairs = explain.sentence_labels(classifier, "great wonderful superb film. awful dull boring.")
    labelled = [(text, label) for text, label in pairs if label is not None]
    assert labelled[0][0] == "great wonderful superb film." and labelled[0][1] == "positive"
    # "mixed" where the classifier is unsure of the sentence, else its label: as it reads it.
    alone = classifier.classify(["awful dull boring."])[0]
    assert labelled[1] == ("awful dull boring.", "mixed" if alone.unsure else alone.label.lower())
    assert labelled[1][1] == "negative"  # the tiny model is sure of three negative words
    assert explain.sentence_labels(classifier, "one sentence only") == []


def test_a_sentence_without_words_is_shown_unlabelled(classifier):
    # A review ending in its score: "8/10." alone has no words, which classify() refuses.
    pairs = explain.sentence_labels(classifier, "great wonderful superb film. 8/10.")
    assert pairs[0] == ("great wonderful superb film.", "positive")
    assert pairs[-1] == ("8/10.", None)


def test_the_page_shows_words_with_spaces_between(model_dir):
    infer.reset()
    view = app.word_view("superb film", model_dir)
    assert [text for text, _ in view] == ["superb", " ", "film"]
    assert view[1][1] is None and view[0][1] < 0  # pushed toward positive: purple, below 0


def test_a_reloaded_folder_gets_its_weights_read_again(model_dir):
    # After retraining into the same folder, infer.reset() and a reload must not leave Why
    # scoring with the weights loaded for the old model.
    first = infer.load(model_dir)
    assert first.folder == model_dir
    weights = first.torch_model
    assert first.torch_model is weights  # loaded once per served model
    reloaded = infer.load(model_dir)
    assert reloaded.torch_model is not weights


def test_a_head_and_tail_model_is_explained_as_it_reads(model_dir):
    """Words the model skipped (the middle of a long review read head+tail) score 0; its head
    and its tail are scored, as the classifier's windows say."""
    classifier = infer.load(model_dir, truncation="head+tail")
    text = "superb " + "plot " * 60 + "awful"  # 62 words: past the tiny model's 32 tokens
    scores = explain.word_scores(classifier, text)
    assert [word for word, _ in scores] == text.split()
    assert scores[0][1] != 0 and scores[-1][1] != 0  # the head and the tail are read
    assert all(score == 0 for _, score in scores[10:40])  # the middle is not
    sliding = explain.word_scores(infer.load(model_dir), text)
    assert all(score != 0 for _, score in sliding[10:40])  # read whole, every word counts


def test_an_onnx_classifier_without_its_folder_says_how_to_explain_it(model_dir):
    served = infer.load(model_dir)
    orphan = infer.Classifier(served.model, served.tokenizer, served.labels, served.truncation)
    with pytest.raises(ValueError, match=r"infer.load\(FOLDER\)"):
        explain.word_scores(orphan, "superb film")
