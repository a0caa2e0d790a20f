"""Choosing an abstain threshold for a precision from per-image confidences."""
import numpy as np

from engine.metrics import calibration_sample, suggest_threshold


def test_the_lowest_threshold_that_keeps_the_precision():
    confidence = [0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [1, 1, 1, 1, 0, 1, 0, 0]
    exact = suggest_threshold(confidence, correct, 1.0)
    assert (exact["threshold"], exact["precision"], exact["coverage"]) == (0.8, 1.0, 0.5)
    looser = suggest_threshold(confidence, correct, 0.8)
    assert (looser["threshold"], looser["precision"], looser["coverage"]) == (0.6, 0.8333, 0.75)


def test_no_threshold_when_every_answer_already_meets_it_or_none_can():
    assert suggest_threshold([0.9, 0.8, 0.3], [1, 1, 1], 0.95)["threshold"] is None
    assert suggest_threshold([0.9, 0.8, 0.3], [1, 1, 1], 0.95)["coverage"] == 1.0
    hopeless = suggest_threshold([0.9, 0.8], [0, 0], 0.5)
    assert hopeless["threshold"] is None and hopeless["reachable"] is False
    assert suggest_threshold([], [], 0.9)["reachable"] is False


def test_ties_are_never_split_by_a_threshold():
    # Answers at 0.8 are half right: a threshold at 0.8 takes both, so precision 1.0 needs 0.9.
    result = suggest_threshold([0.9, 0.8, 0.8], [1, 1, 0], 1.0)
    assert result["threshold"] == 0.9 and result["coverage"] == round(1 / 3, 4)


def test_calibration_sample_is_the_top_confidence_and_whether_it_was_right():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    sample = calibration_sample(probabilities, np.array([0, 1, 0]))
    assert sample == {"confidence": [0.7, 0.6, 0.5], "correct": [1, 0, 1], "predicted": [0, 2, 0], "label": [0, 1, 0]}
    big = calibration_sample(np.tile(probabilities, (10, 1)), np.tile([0, 1, 0], 10), limit=7)
    assert len(big["confidence"]) == len(big["correct"]) == 7
