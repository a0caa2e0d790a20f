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
