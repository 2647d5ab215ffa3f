"""The plots a run publishes beside its model, as PNG files (matplotlib, no display).

plot_reliability(test_rows, folder / "reliability.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from utils import predicted_ids


def truncated_share(tokens: Any, max_length: int) -> float:
    """Share of reviews longer than `max_length` tokens, which the model reads only in part."""
    return float(np.mean(np.asarray(tokens) > max_length))


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path) -> None:
    """Counts and row shares of true against predicted labels."""
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    shares = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, col), count in np.ndenumerate(counts):
        color = "white" if shares[row, col] > 0.5 else "black"
        text = f"{count:,}\n{shares[row, col]:.1%}"
        ax.text(col, row, text, ha="center", va="center", color=color)
    ax.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="Predicted label",
        ylabel="True label",
        title=f"Test confusion matrix ({counts.sum():,} reviews)",
    )
    _save(fig, path)


def plot_losses(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss at each logging step and validation loss at each epoch's end."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    train = [(row["step"], row["loss"]) for row in history if "loss" in row]
    val = [(row["step"], row["eval_loss"]) for row in history if "eval_loss" in row]
    if train:
        ax.plot(*zip(*train, strict=True), label="training (per logging step)", color="tab:blue")
    ax.plot(*zip(*val, strict=True), "o-", label="validation (per epoch)", color="tab:orange")
    ax.set(xlabel="Optimizer step", ylabel="Cross-entropy loss", title="Loss during fine-tuning")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_validation(history: list[dict[str, Any]], path: Path) -> None:
    """Validation accuracy and F1 at each epoch's end, in percent."""
    import matplotlib.pyplot as plt

    rows = [row for row in history if "eval_f1" in row]
    epochs = [row["epoch"] for row in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    for key, name in (("eval_accuracy", "accuracy"), ("eval_f1", "F1")):
        ax.plot(epochs, [100 * row[key] for row in rows], "o-", label=name)
    ax.set(xlabel="Epoch", ylabel="Percent", title="Validation accuracy and F1 per epoch")
    ax.set_xticks(epochs)
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_lengths(rows: dict[str, Any], labels: list[str], max_length: int, path: Path) -> None:
    """Histogram of test review lengths in tokens by label, with the max-length cut marked."""
    import matplotlib.pyplot as plt

    tokens, truth = np.asarray(rows["tokens"]), np.asarray(rows["label"])
    top = max(int(np.percentile(tokens, 99)), max_length) * 1.05
    bins = np.linspace(0, top, 50)
    fig, ax = plt.subplots(figsize=(6.4, 4), dpi=120)
    for label_id, name in enumerate(labels):
        ax.hist(tokens[truth == label_id].clip(max=top), bins=bins, alpha=0.55, label=name)
    share = truncated_share(tokens, max_length)
    ax.axvline(max_length, color="black", linestyle="--", label=f"cut at {max_length} tokens")
    ax.set(
        xlabel="Review length in tokens (longest 1% drawn at the right edge)",
        ylabel="Test reviews",
        title=f"Review lengths: {share:.1%} are longer than the cut and read in part",
    )
    ax.legend()
    _save(fig, path)


def plot_reliability(rows: dict[str, Any], path: Path, bins: int = 15) -> None:
    """Accuracy against top-label confidence on the test reviews, before and after scaling."""
    import matplotlib.pyplot as plt

    labels = np.asarray(rows["label"])
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    ax.plot([0.5, 1], [0.5, 1], "--", color="gray", label="perfectly calibrated")
    for key, name in (("raw_positive", "as trained"), ("positive", "calibrated")):
        positive = np.asarray(rows[key])
        confidence = np.maximum(positive, 1 - positive)
        correct = predicted_ids(positive) == labels
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        points = [
            (confidence[which == b].mean(), correct[which == b].mean(), (which == b).sum())
            for b in np.unique(which)
        ]
        x, y, _ = zip(*points, strict=True)
        ax.plot(x, y, "o-", label=name)
        if key == "positive":
            for xi, yi, ni in points:
                ax.annotate(str(ni), (xi, yi), textcoords="offset points", xytext=(0, 6),
                            fontsize=7, ha="center")  # fmt: skip
    ax.set(
        xlabel="Confidence of the top label",
        ylabel="Share right",
        title=f"Reliability on {len(labels):,} test reviews ({bins} bins)",
        xlim=(0.48, 1.01),
        ylim=(0, 1.05),
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    _save(fig, path)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
