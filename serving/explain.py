"""Why a verdict: the words that pushed it, and each sentence's own sentiment.

    words = explain.word_scores(classifier, "A dull plot, but a superb cast.")
    max(words, key=lambda pair: abs(pair[1]))
    # ('superb', 1.0)

Word scores are integrated gradients (Sundararajan et al. 2017) on the word embeddings: from a
baseline of [PAD] embeddings to the review's own, `STEPS` points, the gradient of the positive
logit minus the negative one, times the embedding's change, summed over its dimensions and over
a word's tokens. Positive pushes toward POSITIVE. A long review is read in the classifier's
sliding windows; a token two windows share gets the mean of its scores. Gradients need
PyTorch: a classifier served by ONNX loads its folder's PyTorch weights once, on first use.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from utils import clean_text, has_words, split_sentences, windows

# Points on the path from the baseline. For a 300-word review (two 256-token windows), MiniLM,
# 2 cores: 8 points take 1.55 to 1.90 s and rank words as 32 do (Spearman 0.998, the same top 10);
# 16 take 3.0 s, 4 take 0.87 s (0.951). benchmarks/attributions.py.
STEPS = 8
_WORD = re.compile(r"\S+")
_torch_models: dict[Path, tuple[Any, Any]] = {}  # folder: (ONNX model served, its weights)


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


def word_scores(
    classifier: Any, text: str, model_dir: Path | None = None, steps: int = STEPS
) -> list[tuple[str, float]]:
    """Each whitespace-separated word of the cleaned `text` with its score, scaled so the
    largest magnitude is 1 (0 for all when nothing moved the logits); `steps` points on the
    integration path (more: slower, closer to the exact integral)."""
    import torch

    model = _torch_model(classifier, model_dir)
    tokenizer = classifier.tokenizer
    cleaned = clean_text(text)
    encoded = tokenizer(
        cleaned,
        add_special_tokens=False,
        return_offsets_mapping=True,
        split_special_tokens=True,
        verbose=False,
    )
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    budget = classifier.max_length - 2  # [CLS] and [SEP]
    strategy = "sliding" if classifier.truncation == "sliding" else "head"
    totals, counts = np.zeros(len(ids)), np.zeros(len(ids))
    positive, negative = 1, 0  # label ids: the data's 1 is a positive review (id2label)
    for window in windows(list(range(len(ids))), budget, strategy):
        window_ids = [tokenizer.cls_token_id, *(ids[i] for i in window), tokenizer.sep_token_id]
        scores = _integrated_gradients(
            model, torch.tensor([window_ids]), tokenizer, positive, negative, steps
        )
        totals[window] += scores[1:-1]
        counts[window] += 1
    token_scores = np.divide(totals, counts, out=np.zeros_like(totals), where=counts > 0)
    words = [(match.group(), match.start(), match.end()) for match in _WORD.finditer(cleaned)]
    word_totals = np.zeros(len(words))
    starts = [start for _, start, _ in words]
    for (start, _), score in zip(offsets, token_scores, strict=True):
        word_totals[max(0, np.searchsorted(starts, start, side="right") - 1)] += score
    scale = np.abs(word_totals).max() if len(words) else 0.0
    if scale > 0:
        word_totals /= scale
    return [(word, float(score)) for (word, _, _), score in zip(words, word_totals, strict=True)]


def _integrated_gradients(
    model: Any, input_ids: Any, tokenizer: Any, positive: int, negative: int, steps: int
) -> np.ndarray:
    """Per-token integrated gradients of (positive - negative) logit for one window."""
    import torch

    embeddings = getattr(model, "encoder", model).get_input_embeddings()
    baseline_ids = torch.full_like(input_ids, tokenizer.pad_token_id or 0)
    baseline_ids[:, 0], baseline_ids[:, -1] = input_ids[:, 0], input_ids[:, -1]  # keep markers
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


def _torch_model(classifier: Any, model_dir: Path | None) -> Any:
    """The classifier's PyTorch model: its own, or its folder's loaded once when it serves ONNX.

    Kept per folder with the ONNX model it was loaded beside: after `infer.reset()` and a
    reload (a retrained folder), the next call loads the new weights instead of the old ones."""
    if classifier.backend == "torch":
        return classifier.model
    if model_dir is None:
        raise ValueError("An ONNX classifier needs its model_dir for word scores.")
    served, model = _torch_models.get(model_dir, (None, None))
    if served is not classifier.model:
        from serving.model_folder import torch_model

        model = torch_model(model_dir)
        _torch_models[model_dir] = (classifier.model, model)
    return model
