"""What text the model is given: the input rules every entry point applies (`check_texts`),
and warnings for text it was not trained for, each saying what the visitor can do.

    text_warnings("Ce film est magnifique, je l'ai adoré.")
    # ['This reads as French (fr), not English: the model was trained on English reviews ...']

The model learnt from English film reviews of a paragraph or more. It still answers on other
text, but a visitor should know when the answer stands on little. Serving side only; the
language identifier (py3langid, its model shipped in the package: about 90 MB and 1 s to load
once, then under 1 ms a text) loads on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from utils import clean_text, has_words

# Longest text accepted, in characters (about 100 KB of English; 7x IMDB's longest review).
# Past `utils.MAX_CHARS` a text is read only in part, and every answer says so.
MAX_REVIEW_CHARS = 100_000
MIN_WORDS = 3  # a word or two ("Boring.", "Loved it!") is little to go on
# py3langid's normalised probability. Short English often scores low for every language
# ("Not bad at all.": en 0.25), so only a confident other language warns.
LANGUAGE_CONFIDENCE = 0.8
_LETTER = re.compile(r"[^\W\d_]")
_LINK = re.compile(r"^(https?://|www\.)", re.IGNORECASE)


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def language(text: str) -> tuple[str, float]:
    """The most likely language of `text` (ISO 639-1) and its probability."""
    code, probability = _identifier().classify(text)
    return code, float(probability)


def text_warnings(text: str) -> list[str]:
    """What is unusual about `text` as a movie review, as sentences for the visitor; [] if
    nothing. At most one warning: the first that applies.

    text_warnings("The acting was superb and the story kept me guessing.")
    # []
    """
    cleaned = clean_text(text)
    words = cleaned.split()
    worded = [word for word in words if _LETTER.search(word) and not _LINK.match(word)]
    if len(worded) < max(1, len(words) / 2):
        return [
            "This does not look like a review: it has few or no words. Type a sentence or "
            "two about a film."
        ]
    # Scripts without spaces (Chinese, Japanese) are one "word": ask the identifier first.
    long_enough = len(cleaned) >= 8 or not cleaned.isascii()
    code, probability = language(cleaned[:2000]) if long_enough else ("en", 0.0)
    if code != "en" and probability >= LANGUAGE_CONFIDENCE:
        return [
            f"This reads as {_NAMES.get(code, code)} ({code}), not English: the model was "
            "trained on English reviews and may guess. An English review reads best."
        ]
    if len(worded) < MIN_WORDS:
        return [
            "A word or two is little to go on: a sentence about what you liked or disliked "
            "reads more reliably."
        ]
    return []


_NAMES = {
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
    "hi": "Hindi",
    "tr": "Turkish",
    "pl": "Polish",
    "sv": "Swedish",
}


def check_texts(texts: str | Sequence[str]) -> list[str]:
    """`texts` as a list of reviews, or TypeError / ValueError saying which review is wrong and
    what to do: one string or a list of strings, each with words, at most MAX_REVIEW_CHARS long.

    check_texts("Loved it!")
    # ['Loved it!']
    """
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, Mapping | bytes) or not isinstance(texts, Iterable):
        raise TypeError(
            f"Give a review as a string, or a list of strings; got {type(texts).__name__}."
        )
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"Review {i} is a {type(text).__name__}: give its text as a string.")
        if not text.strip():
            raise ValueError(f"Review {i} is empty: give the text of a movie review.")
        if len(text) > MAX_REVIEW_CHARS:
            raise ValueError(
                f"Review {i} is {len(text):,} characters long, over the limit of "
                f"{MAX_REVIEW_CHARS:,}: paste the review alone, or split it into parts."
            )
        if not has_words(text):
            raise ValueError(
                f"Review {i} has no words to read (only symbols, digits, emoji or invisible "
                "characters): write a sentence or two about the film."
            )
    return texts
