"""Inference through `infer.load`, `infer.predict` and the `infer.py` command line."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import MAX_LENGTH, run_script

import infer
from utils import MAX_CHARS, encode, top_label


@pytest.fixture(scope="module")
def classifier(model_dir):
    # PyTorch, so tests can check answers against the model itself (tests/test_onnx.py
    # holds ONNX to PyTorch's answers).
    return infer.load(model_dir, backend="torch")


def test_predict_one_review(classifier):
    (scores,) = classifier.predict(["wonderful great film"])
    assert set(scores) == {"NEGATIVE", "POSITIVE"}
    assert sum(scores.values()) == pytest.approx(1.0)
    assert top_label(scores) == "POSITIVE"


def test_batch_matches_one_by_one_in_order(classifier):
    texts = ["awful boring plot", "great", "the film was wonderful and moving and superb", "dull"]
    batch = classifier.predict(texts, batch_size=3)
    for text, scores in zip(texts, batch, strict=True):
        (alone,) = classifier.predict([text])
        assert scores == pytest.approx(alone, abs=1e-5)
    assert [top_label(s) for s in batch] == ["NEGATIVE", "POSITIVE", "POSITIVE", "NEGATIVE"]


def test_html_is_cleaned_as_in_training(classifier):
    with_tags, plain = classifier.predict(
        ["great<br /><br />film &amp; story", "great film & story"]
    )
    assert with_tags == pytest.approx(plain, abs=1e-6)


def test_long_review_is_cut_to_the_saved_max_length(classifier):
    long_text = "the film was great " * 5_000  # 95,000 characters, under the length cap
    assert classifier.max_length == MAX_LENGTH
    ids = encode(classifier.tokenizer, [long_text])["input_ids"][0]
    assert len(ids) == MAX_LENGTH
    (scores,) = classifier.predict([long_text])
    (head,) = classifier.predict([long_text[:MAX_CHARS]])
    assert scores == pytest.approx(head, abs=1e-6)


def test_serving_reads_the_tokens_training_reads(classifier, model_dir):
    # Serving reads tokenizer.json with `tokenizers` alone (the slim install has no
    # transformers); training tokenizes with transformers. Both must give the same ids.
    from serving.model_folder import transformers_tokenizer
    from serving.tokenizer import FolderTokenizer

    assert isinstance(classifier.tokenizer, FolderTokenizer)
    trained = transformers_tokenizer(model_dir)
    assert not isinstance(trained, FolderTokenizer)
    texts = [
        "A great film.",
        "awful [CLS] plot [SEP] typed [PAD] [MASK]",  # typed markers are text
        "Café naïve — “quoted” 😀 don't\tstop\nnow",
        "",
        "日本語のレビュー",
        "great wonderful " * 400,  # past any window: encode cuts, the tokenizer does not
    ]
    for strategy in ("sliding", "head+tail"):
        assert encode(classifier.tokenizer, texts, strategy) == encode(trained, texts, strategy)
    for text in texts:
        ours = classifier.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        theirs = trained(
            text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True
        )
        assert ours["input_ids"] == theirs["input_ids"]
        assert ours["offset_mapping"] == [tuple(pair) for pair in theirs["offset_mapping"]]
    special = ("model_max_length", "cls_token_id", "sep_token_id", "pad_token_id")
    assert [getattr(classifier.tokenizer, name) for name in special] == [
        getattr(trained, name) for name in special
    ]


def test_a_paste_past_the_length_cap_is_refused(classifier):
    with pytest.raises(ValueError, match="57,000,000 characters long, over the limit of 100,000"):
        classifier.predict(["the film was great " * 3_000_000])  # 57 MB


# Positive words, then a negative verdict: the head alone and head+tail read different reviews.
TWIST = "great wonderful superb " * 20 + "awful boring dull terrible waste hated " * 2


def probabilities(classifier, ids_list):
    """P(labels) from the model itself for explicit windows of token ids, averaged."""
    import torch

    width = max(map(len, ids_list))
    pad = classifier.tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in ids_list])
    mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in ids_list])
    with torch.inference_mode():
        logits = classifier.model(input_ids=input_ids, attention_mask=mask).logits
    probs = logits.double().softmax(-1).mean(0).tolist()
    return dict(zip(classifier.labels, probs, strict=True))


def test_the_saved_truncation_is_the_one_applied(classifier, model_dir):
    saved = json.loads((model_dir / "config.json").read_text())["truncation"]
    assert saved == {"train": "head+tail", "inference": "sliding", "head_fraction": 0.25}
    assert (classifier.truncation, classifier.head_fraction) == ("sliding", 0.25)
    encoded = encode(classifier.tokenizer, [TWIST], "sliding")
    assert len(encoded["input_ids"]) == 3  # 72 tokens of text in windows of 30, a quarter shared
    (prediction,) = classifier.classify([TWIST])
    assert prediction.scores == pytest.approx(probabilities(classifier, encoded["input_ids"]), 1e-6)
    assert prediction.read == prediction.tokens == 74
    short, long = classifier.classify(["great film", TWIST], batch_size=2)  # mixed in one batch
    assert long.scores == pytest.approx(prediction.scores, abs=1e-6)
    (alone,) = classifier.predict(["great film"])
    assert short.scores == pytest.approx(alone, abs=1e-6)


def test_head_tail_reads_the_opening_and_the_verdict(model_dir):
    classifier = infer.load(model_dir, truncation="head+tail", backend="torch")
    assert (classifier.truncation, classifier.head_fraction) == ("head+tail", 0.25)
    ids = encode(classifier.tokenizer, [TWIST], "head+tail", 0.25)["input_ids"]
    (prediction,) = classifier.classify([TWIST])
    assert prediction.scores == pytest.approx(probabilities(classifier, ids), abs=1e-9)
    (head,) = infer.Classifier(
        classifier.model, classifier.tokenizer, classifier.labels, "head"
    ).predict([TWIST])
    # The tiny model barely knows the words, but the same input gives the same output exactly:
    # a different output means the model read different tokens.
    assert head != pytest.approx(prediction.scores, abs=1e-6)
    assert (prediction.read, prediction.tokens) == (MAX_LENGTH, 2 + 60 + 12)


def test_a_folder_without_reading_settings_says_to_retrain(tmp_path, model_dir):
    folder = tmp_path / "old"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    del config["truncation"]  # as folders were saved before the setting existed
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(infer.ModelNotFoundError, match="Retrain it with `python main"):
        infer.load(folder)


def test_one_review_may_be_a_string(classifier):
    assert classifier.predict("great film") == classifier.predict(["great film"])


def test_no_reviews_give_no_predictions(classifier):
    assert classifier.classify([]) == [] and classifier.predict([]) == []


def test_the_bad_review_is_named(classifier):
    # The whole matrix of bad inputs, through every entry point, is in test_server.py.
    with pytest.raises(ValueError, match="Review 1 is empty"):
        classifier.predict(["ok", "  \n"])


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(infer.ModelNotFoundError, match=r"python main\.py --subset 2000"):
        infer.load(tmp_path / "nothing")


def test_hub_name_is_never_looked_up():
    with pytest.raises(infer.ModelNotFoundError, match="No model in 'distilbert-base-uncased/'"):
        infer.load("distilbert-base-uncased")


def test_incomplete_folder_names_what_is_missing(tmp_path, model_dir):
    folder = tmp_path / "half"
    shutil.copytree(model_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")  # never read: safetensors only
    with pytest.raises(infer.ModelNotFoundError, match=r"incomplete \(missing model.safetensors\)"):
        infer.load(folder)


def test_default_classifier_is_loaded_once_from_model_dir(monkeypatch, model_dir):
    monkeypatch.setenv("MODEL_DIR", str(model_dir))
    infer.reset()
    first = infer.get_classifier()
    assert infer.get_classifier() is first
    assert infer.predict(["great"])[0] == pytest.approx(first.predict(["great"])[0])
    infer.reset()
    assert infer.get_classifier() is not first


def test_cli_prints_label_and_confidence(model_dir):
    reviews = ("great wonderful film", "awful dull plot")
    result = run_script("infer.py", "--model-dir", str(model_dir), *reviews)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = infer.load(model_dir).classify(list(reviews))
    # Each line is the label and its probability as the library gives them.
    assert lines == [f"{p.label} {p.scores[p.label]:.1%}" for p in expected]
    assert [p.label for p in expected] == ["POSITIVE", "NEGATIVE"]


def test_cli_json_and_stdin(model_dir, capsys):
    import io
    import sys

    sys.stdin = io.StringIO("great wonderful\n\nawful dull\n")
    try:
        assert infer.main(["--model-dir", str(model_dir), "--json"]) == 0
    finally:
        sys.stdin = sys.__stdin__
    results = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in results] == ["POSITIVE", "NEGATIVE"]
    assert all(sum(r["scores"].values()) == pytest.approx(1.0) for r in results)


def test_cli_says_how_much_of_a_long_review_it_read(model_dir, capsys):
    assert infer.main(["--model-dir", str(model_dir), "great film and plot", TWIST]) == 0
    short, long = capsys.readouterr().out.splitlines()
    assert "read" not in short and "read" not in long  # sliding, the default, reads it all
    args = ["--model-dir", str(model_dir), "--truncation", "head+tail", TWIST]
    assert infer.main(args) == 0
    assert capsys.readouterr().out.strip().endswith(f"(read {MAX_LENGTH} of 74 tokens)")
    args = ["--model-dir", str(model_dir), "--json", "--truncation", "head+tail", TWIST]
    assert infer.main(args) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert (result["read"], result["tokens"]) == (MAX_LENGTH, 74)


def test_cli_without_model_says_how_to_train(tmp_path, capsys):
    assert infer.main(["--model-dir", str(tmp_path / "none"), "good"]) == 2
    assert "python main.py" in capsys.readouterr().err


def test_progress_counts_every_review_once_in_whole_steps(model_dir):
    classifier = infer.load(model_dir)  # sliding: the long review has several windows
    texts = ["great film", "awful " * 100, "dull plot", "superb acting"]
    steps: list[int] = []
    predictions = classifier.classify(texts, batch_size=2, progress=steps.append)
    assert sum(steps) == len(texts) and all(isinstance(n, int) and n >= 0 for n in steps)
    assert len(steps) > 2  # one call per batch, not one at the end
    assert [p.scores for p in predictions] == [p.scores for p in classifier.classify(texts)]


@pytest.mark.slow
def test_serving_by_onnx_never_imports_torch(model_dir):
    # torch costs 1.5 s of the app's start on 2 cores (benchmarks/NOTES.md, "Load"); only
    # "Why?" needs it, and loads it on first use.
    script = (
        "import sys, app, infer\n"
        f"classifier = infer.load({str(model_dir)!r})\n"
        "classifier.classify(['a fine film'])\n"
        "print(type(classifier.model).__name__, 'torch' in sys.modules)\n"
    )
    result = run_script("-c", script)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["OnnxModel", "False"]
