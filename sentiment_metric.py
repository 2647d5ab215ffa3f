"""The project's evaluation metric: an `evaluate` module that works offline.

    import evaluate
    metric = evaluate.load("sentiment_metric.py")  # a local path: the Hub is never asked
    metric.compute(predictions=[0.2, 0.9, 0.4], references=[0, 1, 1])["accuracy"]
    # 0.6666666666666666

`predictions` are the probabilities of label 1 (POSITIVE), one per review; a review counts as
positive above 0.5, so a tie goes to label 0, as `utils.top_label` decides. Training validates
each epoch with it, and `main.py` tests with it. This file imports no module of the project, so
`evaluate.load` can copy it anywhere; one import a line, as evaluate parses them for dependencies.
"""

import datasets
import evaluate
import numpy as np
from sklearn import metrics

_DESCRIPTION = (
    "Binary sentiment metrics from the probability of label 1: accuracy, precision, recall, "
    "F1 and ROC-AUC of label 1, log loss, Brier score, expected calibration error of the top "
    "label (15 equal-width bins), and the confusion matrix (rows: true label)."
)
ECE_BINS = 15  # equal-width bins of top-label confidence, from 0.5 to 1
_KWARGS = """
Args:
    predictions: probability of label 1 per review, in [0, 1].
    references: true label per review, 0 or 1.
Returns:
    accuracy, precision, recall, f1, roc_auc (None unless both labels occur), log_loss,
    brier (mean squared error of the probability of label 1), ece (expected calibration error
    of the top label: the gap between confidence and accuracy, weighted over 15 bins),
    confusion_matrix ([[tn, fp], [fn, tp]]).
"""


class SentimentMetric(evaluate.Metric):
    """Accuracy, precision, recall, F1, ROC-AUC, log loss and confusion matrix of label 1."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions: list[float], references: list[int]) -> dict:
        labels = np.asarray(references)
        positive = np.asarray(predictions, dtype=np.float64)
        if positive.min() < 0 or positive.max() > 1:
            raise ValueError(
                "predictions must be probabilities of label 1 in [0, 1]; "
                "pass softmax(logits)[:, 1], not logits."
            )
        predicted = (positive > 0.5).astype(int)
        precision, recall, f1, _ = metrics.precision_recall_fscore_support(
            labels, predicted, average="binary", pos_label=1, zero_division=0
        )
        both = len(np.unique(labels)) == 2  # ROC-AUC needs both labels among the reviews
        return {
            "accuracy": float(metrics.accuracy_score(labels, predicted)),
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "roc_auc": float(metrics.roc_auc_score(labels, positive)) if both else None,
            "log_loss": float(metrics.log_loss(labels, positive, labels=[0, 1])),
            "brier": float(np.mean((positive - labels) ** 2)),
            "ece": expected_calibration_error(positive, labels),
            "confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        }


def expected_calibration_error(positive: np.ndarray, labels: np.ndarray) -> float:
    """Top-label ECE: sum over confidence bins of (share of reviews) x |accuracy - confidence|."""
    confidence = np.maximum(positive, 1 - positive)
    correct = (positive > 0.5).astype(int) == labels
    # Confidence lies in [0.5, 1]; 15 equal bins of [0, 1] as usual, so the lower 7 stay empty.
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)
