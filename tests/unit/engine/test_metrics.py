"""Top-k accuracy, confusion matrix and per-class precision/recall/F1."""
import numpy as np

from engine.metrics import confusion_matrix, per_class_report, top_k_accuracy


def test_top_k_accuracy_counts_a_hit_anywhere_in_the_top_k():
    probabilities = np.array([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    labels = np.array([2, 0, 1])
    assert top_k_accuracy(probabilities, labels, 1) == 1 / 3
    assert top_k_accuracy(probabilities, labels, 2) == 2 / 3
    assert top_k_accuracy(probabilities, labels, 3) == 1.0


def test_confusion_rows_are_true_classes_and_report_follows():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predictions = np.array([0, 0, 1, 1, 1, 0])
    matrix = confusion_matrix(labels, predictions, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    report = {row["class"]: row for row in per_class_report(matrix, ["猫", "狗", "鸟"])}
    assert report["猫"] == {"class": "猫", "precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert report["狗"]["precision"] == 0.6667 and report["狗"]["recall"] == 1.0 and report["狗"]["f1"] == 0.8
    assert report["鸟"] == {"class": "鸟", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
