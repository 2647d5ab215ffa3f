"""What `utils.clean_text` changes in real IMDB reviews, measured in tokens, not assumed.

    python benchmarks/cleaning.py --model "$(../shared/tools/pretrained-encoder.sh)" \
        --data ../shared/data/imdb > benchmarks/results/cleaning.md

Counts, over the training split: reviews with `<br />` tags, with other HTML tags, with HTML
entities and with runs of whitespace; tokens per review before and after cleaning; and whether
the tokenizer's own lowercasing makes lowercasing in our code redundant.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from utils import clean_text

PATTERNS = {
    "`<br />` tags": re.compile(r"<br\s*/?>", re.IGNORECASE),
    "other HTML tags": re.compile(r"<(?!br\s*/?>)/?[a-z][^>]{0,40}>", re.IGNORECASE),
    "HTML entities (`&amp;` ...)": re.compile(r"&[a-z]+;|&#\d+;", re.IGNORECASE),
    "runs of 2+ spaces, tabs or newlines": re.compile(r"\s{2,}"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="folder of the tokenizer to measure")
    parser.add_argument("--data", required=True, help="folder with train.parquet")
    parser.add_argument("--max-length", type=int, default=256, help="the token budget")
    args = parser.parse_args(argv)

    import pandas as pd
    from transformers import AutoTokenizer

    texts = pd.read_parquet(Path(args.data) / "train.parquet")["text"].tolist()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    cleaned = [clean_text(t) for t in texts]

    def lengths(batch: list[str]) -> np.ndarray:
        ids = tokenizer(batch, verbose=False)["input_ids"]
        return np.array([len(row) for row in ids])

    raw, clean = lengths(texts), lengths(cleaned)
    lower = lengths([t.lower() for t in cleaned])
    same_ids = sum(
        a == b
        for a, b in zip(
            tokenizer(cleaned[:2000])["input_ids"],
            tokenizer([t.lower() for t in cleaned[:2000]])["input_ids"],
            strict=True,
        )
    )
    n, budget = len(texts), args.max_length
    print(f"Training split: {n:,} reviews; tokenizer `{Path(args.model).name}`.\n")
    print("| found in the raw text | reviews | share |\n| --- | ---: | ---: |")
    for name, pattern in PATTERNS.items():
        count = sum(bool(pattern.search(t)) for t in texts)
        print(f"| {name} | {count:,} | {count / n:.1%} |")
    print(
        "\n| tokens per review | raw | cleaned |\n| --- | ---: | ---: |\n"
        f"| mean | {raw.mean():.1f} | {clean.mean():.1f} |\n"
        f"| median | {np.median(raw):.0f} | {np.median(clean):.0f} |\n"
        f"| longer than {budget} | {np.mean(raw > budget):.1%} | {np.mean(clean > budget):.1%} |\n"
    )
    saved = raw - clean
    br = len(tokenizer("<br /><br />", add_special_tokens=False)["input_ids"])
    spaces = lengths([re.sub(r"\s+", " ", t) for t in texts])
    print(
        f"Cleaning removes {saved.sum():,} tokens in all ({saved.mean():.1f} per review, "
        f"{saved.sum() / raw.sum():.1%} of all tokens; up to {saved.max()} in one review). "
        f"IMDB's paragraph break `<br /><br />` costs {br} tokens of the budget. Collapsing "
        f"whitespace alone changes the token count of {int((spaces != raw).sum())} of {n:,} "
        "reviews.\n"
    )
    print(
        f"Lowercasing before the tokenizer changes the token ids of {2000 - same_ids} of the "
        f"first 2,000 cleaned reviews (tokens per review {lower.mean():.1f} lowercased, "
        f"{clean.mean():.1f} not): the uncased tokenizer lowercases itself "
        f"(`do_lower_case={getattr(tokenizer, 'do_lower_case', None)}`), so our code does not."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
