"""What a run publishes beside its model: plots, the misclassified reviews, the model card.

    write_reports(folder, report, test_rows)

`report` is what `metrics.json` holds; `test_rows` has one entry per test review (text, label,
probability of label 1, predicted label id, tokens before truncation, tokens read). Training
writes these; the app reads the card's results section as a file, never through this module.
The card's prose is a template, `model_card.md`; this module fills it.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from serving.calibration import CALIBRATION_FILE
from serving.hub import hub_id
from training.plots import (
    plot_confusion,
    plot_lengths,
    plot_losses,
    plot_reliability,
    plot_validation,
)
from utils import (
    CARD_FILE,
    CONFUSION_PLOT,
    HEAD_FRACTION,
    RESULTS_HEADING,
)

PLOTS = {
    "confusion_matrix": CONFUSION_PLOT,
    "loss": "loss.png",
    "validation": "validation_metrics.png",
    "lengths": "review_lengths.png",
    "reliability": "reliability.png",
}
ERRORS_FILE = "errors.csv"
ERRORS_COLUMNS = ("text", "true_label", "predicted_label", "confidence", "tokens", "read")
# What `python main.py evaluate` writes afresh; the weights and tokenizer are kept as they are.
REWRITTEN_FILES = frozenset(
    {*PLOTS.values(), ERRORS_FILE, CARD_FILE, CALIBRATION_FILE, "metrics.json"}
)
CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
METRIC_NAMES = {
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "roc_auc": "ROC-AUC",
}


def write_reports(folder: Path, report: dict[str, Any], test_rows: dict[str, Any]) -> None:
    """Write every plot, `errors.csv` and the model card into `folder`."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    labels = report["labels"]
    plot_confusion(report["test"]["confusion_matrix"], labels, folder / PLOTS["confusion_matrix"])
    plot_losses(report["history"], folder / PLOTS["loss"])
    plot_validation(report["history"], folder / PLOTS["validation"])
    plot_lengths(test_rows, labels, report["max_length"], folder / PLOTS["lengths"])
    plot_reliability(test_rows, folder / PLOTS["reliability"])
    write_errors(test_rows, labels, folder / ERRORS_FILE)
    (folder / CARD_FILE).write_text(model_card(report))


# ---------------------------------------------------------------------------------------------
# Misclassified reviews


def write_errors(rows: dict[str, Any], labels: list[str], path: Path) -> None:
    """Every misclassified test review, most confidently wrong first, with its length in tokens
    and how many of those tokens the model read."""
    positive, predicted = np.asarray(rows["positive"]), np.asarray(rows["predicted"])
    confidence = np.where(predicted == 1, positive, 1 - positive)
    wrong = np.flatnonzero(predicted != np.asarray(rows["label"]))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(ERRORS_COLUMNS)
        for i in wrong[np.argsort(-confidence[wrong], kind="stable")]:
            writer.writerow(
                [
                    rows["text"][i],
                    labels[rows["label"][i]],
                    labels[predicted[i]],
                    f"{confidence[i]:.4f}",
                    int(rows["tokens"][i]),
                    int(rows["read"][i]),
                ]
            )


# ---------------------------------------------------------------------------------------------
# Model card


def model_card(report: dict[str, Any]) -> str:
    """A Hub model card: YAML front matter with a `model-index`, then results, settings, use;
    the prose is `model_card.md` beside this file, a Jinja template of `huggingface_hub`."""
    from huggingface_hub import ModelCard

    config = report["config"]
    shown = config | {key: display_name(config[key]) for key in ("model", "data", "output_dir")}
    shown["extra_data"] = ", ".join(map(display_name, config["extra_data"])) or "none"
    card = ModelCard.from_template(
        card_metadata(report),
        template_path=str(CARD_TEMPLATE),
        name=report["name"],
        labels=report["labels"],
        base=display_name(config["model"]),
        base_size=base_size(report),
        config=config,
        data=report["data"],
        test=report["test"],
        train=report["train"],
        validation=report["validation"],
        versions=report["versions"],
        max_length=report["max_length"],
        settings=shown,
        remote_code=config["pooling"] == "mean",
        results_heading=RESULTS_HEADING,
        trained_on=trained_on(report["data"]),
        distilled_from=distilled_from(report),
        results_table=results_table(report),
        calibration_section=calibration_section(report),
        reading=reading(config, report["max_length"], report["test_truncated_share"]),
    )
    return str(card) + "\n"


def card_metadata(report: dict[str, Any]) -> Any:
    """The card's front matter; the `model-index` values are the test metrics of metrics.json."""
    from huggingface_hub import EvalResult, ModelCardData

    config, data = report["config"], report["data"]
    hub_data = hub_id(data["source"])
    results = [
        EvalResult(
            task_type="text-classification",
            task_name="Sentiment Analysis",
            dataset_type=hub_data or Path(data["source"]).name,
            dataset_name="IMDB"
            if "imdb" in data["source"].lower()
            else display_name(data["source"]),
            dataset_split="test",
            metric_type=key,
            metric_name=name,
            metric_value=report["test"][key],
        )
        for key, name in METRIC_NAMES.items()
        if report["test"].get(key) is not None
    ]
    return ModelCardData(
        model_name=report["name"],
        license="apache-2.0",
        base_model=hub_id(config["model"]),
        datasets=[
            name for name in [data["source"], *(s["source"] for s in data["extra"])] if hub_id(name)
        ]
        or None,
        language=["en"],
        metrics=["accuracy", "precision", "recall", "f1", "roc_auc"],
        pipeline_tag="text-classification",
        tags=["sentiment-analysis", "movie-reviews"],
        eval_results=results,
    )


def results_table(report: dict[str, Any]) -> str:
    """Markdown table of test metrics: fine-tuned, the untrained baseline, and the gain."""
    test, baseline = report["test"], report.get("baseline")
    lines = [
        "| metric | fine-tuned | base model, untrained head | gain |",
        "| --- | --- | --- | --- |",
    ]
    for key, name in METRIC_NAMES.items():
        if test.get(key) is None:
            continue
        # ROC-AUC is an area, not a share of reviews: shown as 0.950, its gain as +0.120.
        share = key != "roc_auc"
        show = (lambda v: f"{v:.1%}") if share else (lambda v: f"{v:.3f}")
        if baseline and baseline.get(key) is not None:
            delta = test[key] - baseline[key]
            base = show(baseline[key])
            gain = f"{100 * delta:+.1f} points" if share else f"{delta:+.3f}"
        else:
            base, gain = "not measured", ""
        lines.append(f"| {name} | {show(test[key])} | {base} | {gain} |")
    lines.append(f"| Log loss | {test['log_loss']:.3f} | {_loss(baseline)} | |")
    return "\n".join(lines)


def _loss(baseline: dict[str, Any] | None) -> str:
    return f"{baseline['log_loss']:.3f}" if baseline else "not measured"


def distilled_from(report: dict[str, Any]) -> str:
    """A paragraph naming the teacher of a distilled model, or nothing."""
    teacher = report.get("teacher")
    if not teacher:
        return ""
    return (
        f"Distilled from the teacher `{display_name(teacher['folder'])}` ({teacher['name']}"
        f"{base_size(teacher)}, test accuracy {teacher['test_accuracy']:.1%}): each training "
        "text's target is half the teacher's calibrated probabilities and half its true "
        "label, and each unlabelled text's the teacher's alone. The teacher's labels agree "
        f"with {teacher['agreement_with_training_labels']:.1%} of the true training labels.\n"
    )


def base_size(report: dict[str, Any]) -> str:
    """The base's architecture and size as the card names them after its name, such as
    ` (mpnet, 12 layers of 768, 109.5M parameters)`; nothing for a run that predates them."""
    base = report.get("base")
    if not base:
        return ""
    return (
        f" ({base['architecture']}, {base['layers']} layers of {base['hidden_size']}, "
        f"{base['parameters'] / 1e6:.1f}M parameters)"
    )


def trained_on(data: dict[str, Any]) -> str:
    """What the model learned from: the IMDB-shaped data and each extra source, with counts."""
    extra, unlabelled = data["extra"], data.get("unlabelled", [])
    imdb = data["train"] - sum(source["train"] for source in [*extra, *unlabelled])
    line = f"Trained on {imdb:,} reviews of `{display_name(data['source'])}`"
    if unlabelled:
        line += ", " + ", ".join(
            f"{source['train']:,} unlabelled texts of `{display_name(source['source'])}`"
            for source in unlabelled
        )
    if not extra:
        return line + "."
    parts = [
        f"{source['train']:,} of `{display_name(source['source'])}` ({source['validation']:,} "
        f"more held out for validation, {source['dropped']:,} dropped: evaluation texts, or "
        "no words)"
        for source in extra
    ]
    return f"{line} and short texts: {'; '.join(parts)}."


def calibration_section(report: dict[str, Any]) -> str:
    """How honest the probabilities are, before and after temperature scaling, per test set."""
    fit = report["calibration"]
    lines = [
        "### Calibration",
        "",
        f"Probabilities are scaled by a temperature of {fit['temperature']:.2f}, of "
        f"{fit.get('windows_temperature') or fit['temperature']:.2f} for reviews read in "
        f"several windows and of {fit['short_temperature']:.2f} for texts of at most "
        f"{fit['short_tokens']} tokens, fitted on {fit['texts']:,} held-out training texts "
        f"(the validation reviews, a snippet of each, {fit.get('short_reviews', 0):,} short "
        f"reviews{extra_rows(report)}). Below {fit['unsure_below']:.0%} confidence a review reads "
        f"as mixed or unclear: the answers above it were right {fit['target_accuracy']:.0%} of "
        "the time there, each kind of text weighing the same.",
        "",
        *short_reviews_line(fit),
        "| test set | reviews | accuracy | ECE before → after | Brier before → after "
        "| unsure | accuracy on the rest |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, metrics in {"IMDB test": report["test"], **report["short"]}.items():
        raw = metrics["uncalibrated"]
        lines.append(
            f"| {name} | {metrics['reviews']:,} | {metrics['accuracy']:.1%} "
            f"| {raw['ece']:.3f} → {metrics['ece']:.3f} | {raw['brier']:.3f} → "
            f"{metrics['brier']:.3f} | {metrics['unsure_share']:.1%} "
            f"| {metrics['accuracy_answered']:.1%} |"
        )
    return "\n".join(lines + kinds_table(report["short"]))


def extra_rows(report: dict[str, Any]) -> str:
    """The card's words for the --extra-data rows calibration saw (their validation rows)."""
    rows = sum(count["validation"] for count in report["data"].get("extra", []))
    return f" and {rows:,} texts of the extra data" if rows else ""


def kinds_table(short: dict[str, Any]) -> list[str]:
    """Lines of a table per kind of review, for the short sets that mark each review's kind."""
    rows = [
        f"| {name}: {kind} | {m['reviews']:,} | {m['accuracy']:.1%} | {m['unsure_share']:.1%} "
        f"| {m['accuracy_answered']:.1%} | {m['wrong_answered']} |"
        for name, metrics in short.items()
        for kind, m in metrics.get("kinds", {}).items()
    ]
    if not rows:
        return []
    return [
        "",
        "| kind of review | reviews | accuracy | unsure | accuracy on the rest "
        "| wrong answers shown |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def short_reviews_line(fit: dict[str, Any]) -> list[str]:
    """A sentence and a blank line on the held-out short reviews, the kind visitors type;
    none when the run had none (`--subset 0` leaves no review unused)."""
    if fit["short_reviews_accuracy"] is None:
        return []
    return [
        f"On the {fit['short_reviews']:,} IMDB reviews of at most {fit['short_tokens']} "
        "tokens that neither training nor the choice of epoch saw, the model is right "
        f"{fit['short_reviews_accuracy']:.1%} of the time (the temperatures above never "
        "change a label).",
        "",
    ]


def display_name(name: str) -> str:
    """A Hub id as it is, a local folder by its last part: no path of this machine is shown."""
    return name if hub_id(name) else Path(name).name


def reading(config: dict[str, Any], cut: int, share: float) -> str:
    """One sentence on how the model reads reviews longer than its `cut` tokens."""
    strategy = config["inference_truncation"]
    longer = f"{share:.1%} of the test reviews are longer than {cut} tokens"
    if strategy == "sliding":
        return (
            f"{longer}; `infer.py` reads them whole, in {cut}-token windows whose "
            "predictions it averages, at the cost of one pass per window."
        )
    if strategy == "head+tail":
        head = round(cut * HEAD_FRACTION)
        return (
            f"{longer}; `infer.py` reads their first {head} and last {cut - head} tokens "
            "and skips the middle."
        )
    return f"{longer}; it reads their first {cut} tokens only, missing verdicts at the end."


def write_results(folder: Path, report: dict[str, Any], rows: dict[str, Any]) -> None:
    """`metrics.json`, then the plots, `errors.csv` and the model card (below)."""
    (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_reports(folder, report, rows)
