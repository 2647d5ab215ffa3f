"""How long the app's "Why?" takes, and how many integrated-gradient steps it needs.

    python -m benchmarks.attributions --model-dir model --data IMDB

On the IMDB test review nearest 300 words: seconds for `explain.word_scores` (after one warm-up
call that loads the PyTorch weights), and, against 32 steps, the Spearman correlation of word
scores and the overlap of the 10 largest, for each step count. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import infer
from serving import explain
from training import data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("model"))
    parser.add_argument("--data", default="stanfordnlp/imdb")
    parser.add_argument("--words", type=int, default=300)
    args = parser.parse_args()
    texts = data.load_data(args.data)["test"]["text"]
    text = min(texts, key=lambda t: abs(len(t.split()) - args.words))
    classifier = infer.load(args.model_dir)
    explain.word_scores(classifier, "A warm-up review.")
    print(f"{len(text.split())} words, served by {classifier.backend}\n")
    print("| steps | seconds | Spearman vs 32 | top-10 overlap |\n| ---: | ---: | ---: | ---: |")
    reference = None
    for steps in (32, 16, 8, 6, 4):
        started = time.perf_counter()
        scored = explain.word_scores(classifier, text, steps)
        scores = np.array([score for _, score in scored])
        seconds = time.perf_counter() - started
        reference = scores if reference is None else reference
        top = set(np.argsort(-np.abs(reference))[:10]) & set(np.argsort(-np.abs(scores))[:10])
        rho = spearmanr(reference, scores)[0]
        print(f"| {steps} | {seconds:.2f} | {rho:.3f} | {len(top)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
