"""A prediction in words, for the visitor: the verdict, its warnings, how much was read.

details(classifier.classify(["Dull."])[0], classifier)
# '**Negative**, very sure (97%).\n\n⚠️ A word or two is little to go on: ...'
"""

from __future__ import annotations

from serving.classifier import Classifier, Prediction


def verdict(prediction: Prediction) -> str:
    """The answer in plain words, e.g. '**Positive**, fairly sure (87%).'"""
    share, lean = prediction.scores[prediction.label], prediction.label.lower()
    if prediction.unsure:
        return f"**Mixed or unclear**: it leans {lean} ({share:.0%}), too little to call."
    sure = "very sure" if share >= 0.95 else "fairly sure" if share >= 0.8 else "leaning"
    return f"**{lean.capitalize()}**, {sure} ({share:.0%})."


def details(prediction: Prediction, classifier: Classifier) -> str:
    """The verdict, each warning and the coverage line, as paragraphs of Markdown."""
    warnings = [f"⚠️ {warning}" for warning in prediction.warnings]
    return "\n\n".join([verdict(prediction), *warnings, coverage(prediction, classifier)])


def coverage(prediction: Prediction, classifier: Classifier) -> str:
    """How much of the review the model read, e.g. 'Read 256 of 612 tokens: ...'."""
    if prediction.chars_read < prediction.chars:
        return (
            f"Read the first {prediction.chars_read:,} of {prediction.chars:,} characters "
            f"({prediction.read} tokens): the model reads at most {prediction.chars_read:,} "
            "characters of a review (IMDB's longest is 13,704), so the rest was skipped."
        )
    if prediction.read < prediction.tokens:
        part = "opening and the ending" if classifier.truncation == "head+tail" else "opening"
        return (
            f"Read {prediction.read} of {prediction.tokens} tokens: a long review, so the model "
            f"read the {part} and skipped the rest."
        )
    if prediction.tokens > classifier.max_length:  # only sliding reads a long review whole
        return (
            f"Read all {prediction.tokens} tokens, in windows of "
            f"{classifier.max_length} whose verdicts are averaged."
        )
    return f"Read all {prediction.tokens} tokens of the review."
