"""Why a verdict: the words that pushed it, and each sentence's own sentiment.

    words = explain.word_scores(classifier, "A dull plot, but a superb cast.")
    max(words, key=lambda pair: abs(pair[1]))
    # ('superb', 1.0)

Word scores are integrated gradients (Sundararajan et al. 2017) on the word embeddings: from a
baseline of [PAD] embeddings to the review's own, `STEPS` points, the gradient of the positive
logit minus the negative one, times the embedding's change, summed over its dimensions and over
a word's tokens. Positive pushes toward POSITIVE. A review is read as the classifier reads it
(`utils.encode`): in its sliding windows, where a token two windows share gets the mean of its
scores, or head+tail. Gradients need PyTorch: a classifier served by ONNX loads its folder's
PyTorch weights once, on first use (`Classifier.torch_model`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from utils import clean_text, encode, has_words, split_sentences

# Points on the path from the baseline. For a 300-word review (two 256-token windows), MiniLM,
# 2 cores: 8 points take 1.55 to 1.90 s and rank words as 32 do (Spearman 0.998, the same top 10);
# 16 take 3.0 s, 4 take 0.87 s (0.951). benchmarks/attributions.py.
STEPS = 8
_WORD = re.compile(r"\S+")


def sentence_labels(classifier: Any, text: str) -> list[tuple[str, str | None]]:
    """Each sentence of `text` with its label in lower case, "mixed" when the classifier is
    unsure of it, or None for one without words ("8/10.": the classifier refuses those); []
    for a text of one sentence (its verdict is the whole answer)."""
    sentences = split_sentences(clean_text(text))
    if len(sentences) < 2:
        return []
    readable = [sentence for sentence in sentences if has_words(sentence)]
    labels = {
        sentence: "mixed" if prediction.unsure else prediction.label.lower()
        for sentence, prediction in zip(readable, classifier.classify(readable), strict=True)
    }
    pairs = []
    for sentence in sentences:
        pairs += [(sentence, labels.get(sentence)), (" ", None)]
    return pairs[:-1]


def word_scores(classifier: Any, text: str, steps: int = STEPS) -> list[tuple[str, float]]:
    """Each whitespace-separated word of the cleaned `text` with its score, scaled so the
    largest magnitude is 1 (0 for all when nothing moved the logits); `steps` points on the
    integration path (more: slower, closer to the exact integral). The text is read as the
    classifier reads it (`utils.encode`: its windows, head+tail or sliding); a word the model
    did not read (the middle of a long review read head+tail) scores 0."""
    import torch

    model = classifier.torch_model
    encoded = encode(
        classifier.tokenizer, [text], classifier.truncation, classifier.head_fraction, spans=True
    )
    try:
        positive, negative = (classifier.labels.index(name) for name in ("POSITIVE", "NEGATIVE"))
    except ValueError:
        raise ValueError(
            f"Why? scores the pull toward POSITIVE against NEGATIVE; this model's labels are "
            f"{', '.join(classifier.labels)}. Explain a model trained by python main.py."
        ) from None
    pad = classifier.tokenizer.pad_token_id or 0
    totals: dict[tuple[int, int], float] = {}
    counts: dict[tuple[int, int], int] = {}
    for ids, spans in zip(encoded["input_ids"], encoded["spans"], strict=True):
        special = torch.tensor([span is None for span in spans])
        scores = _integrated_gradients(
            model, torch.tensor([ids]), special, pad, positive, negative, steps
        )
        for span, score in zip(spans, scores, strict=True):
            if span is not None:  # a token two windows share gets the mean of its scores
                totals[span] = totals.get(span, 0.0) + score
                counts[span] = counts.get(span, 0) + 1
    cleaned = clean_text(text)
    words = [(match.group(), match.start()) for match in _WORD.finditer(cleaned)]
    starts = [start for _, start in words]
    word_totals = np.zeros(len(words))
    for span, total in totals.items():
        word = max(0, np.searchsorted(starts, span[0], side="right") - 1)
        word_totals[word] += total / counts[span]
    scale = np.abs(word_totals).max() if len(words) else 0.0
    if scale > 0:
        word_totals /= scale
    return [(word, float(score)) for (word, _), score in zip(words, word_totals, strict=True)]


def _integrated_gradients(
    model: Any,
    input_ids: Any,
    special: Any,
    pad: int,
    positive: int,
    negative: int,
    steps: int,
) -> np.ndarray:
    """Per-token integrated gradients of (positive - negative) logit for one window; the
    baseline is [PAD] for every token but the `special` ones ([CLS], [SEP]), which it keeps."""
    import torch

    embeddings = getattr(model, "encoder", model).get_input_embeddings()
    baseline_ids = torch.where(special[None, :], input_ids, torch.full_like(input_ids, pad))
    with torch.no_grad():
        real, base = embeddings(input_ids), embeddings(baseline_ids)
    alphas = (torch.arange(steps, dtype=real.dtype) + 0.5) / steps
    path = (base + alphas[:, None, None] * (real - base)).requires_grad_(True)
    hook = embeddings.register_forward_hook(lambda module, args, output: path)
    try:
        logits = model(
            input_ids=input_ids.expand(steps, -1),
            attention_mask=torch.ones(steps, input_ids.shape[1], dtype=torch.long),
        ).logits
    finally:
        hook.remove()
    # autograd.grad, not backward(): nothing accumulates in the weights' .grad between calls.
    (gradient,) = torch.autograd.grad((logits[:, positive] - logits[:, negative]).sum(), path)
    mean_gradient = gradient.mean(dim=0)
    return ((real - base)[0] * mean_gradient).sum(dim=-1).detach().double().numpy()
