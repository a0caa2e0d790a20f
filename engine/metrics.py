"""Classification metrics from predicted probabilities."""
from __future__ import annotations

import numpy as np


def top_k_accuracy(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-probabilities, axis=1)[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_report(matrix: np.ndarray, class_names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support for each class."""
    report = []
    for index, name in enumerate(class_names):
        true_positive = matrix[index, index]
        predicted = matrix[:, index].sum()
        support = matrix[index, :].sum()
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report.append({"class": name, "precision": round(float(precision), 4), "recall": round(float(recall), 4),
                       "f1": round(float(f1), 4), "support": int(support)})
    return report


def calibration_sample(probabilities: np.ndarray, labels: np.ndarray, limit: int = 20_000) -> dict:
    """Top confidence, whether the answer was right, the class it named and the true class, per image (an
    evenly spaced subset above `limit`): what choosing an abstain threshold, overall or per class, needs, small
    enough to keep in a bundle's metadata."""
    if len(labels) > limit:
        keep = np.linspace(0, len(labels) - 1, limit).astype(int)
        probabilities, labels = probabilities[keep], labels[keep]
    predicted = probabilities.argmax(axis=1)
    return {"confidence": [round(float(c), 5) for c in probabilities.max(axis=1)],
            "correct": [int(c) for c in predicted == labels],
            "predicted": [int(c) for c in predicted], "label": [int(c) for c in labels]}


def suggest_threshold(confidence: list[float], correct: list[int], precision: float) -> dict:
    """The lowest confidence threshold whose answers (confidence >= threshold) are right at least `precision`
    of the time, with the share of images still answered. `threshold` is None when every answer already
    meets the precision (no threshold needed) or when none does (`reachable` False)."""
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")
    ranked = np.asarray(confidence, dtype=np.float64)[order]
    right = np.cumsum(np.asarray(correct, dtype=np.int64)[order])
    total = len(ranked)
    result = {"precision_target": precision, "samples": total, "threshold": None, "reachable": True,
              "precision": None, "coverage": None}
    if not total:
        return {**result, "reachable": False}
    answered = np.arange(1, total + 1)
    met = right / answered >= precision
    # A threshold can only cut between different confidences: the last index of each run of equal values.
    cut = np.r_[ranked[1:] != ranked[:-1], True]
    usable = np.flatnonzero(met & cut)
    if not len(usable):
        return {**result, "reachable": False}
    best = int(usable[-1])
    threshold = None if best == total - 1 else float(ranked[best])
    return {**result, "threshold": threshold, "precision": round(float(right[best] / (best + 1)), 4),
            "coverage": round((best + 1) / total, 4)}
