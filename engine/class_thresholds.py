"""Abstain thresholds per class: for each class, the lowest threshold on the top-1 confidence of the answers
naming that class such that the answers it keeps are right at least a target share of the time.

Calibrated on a split's answers (each image's predicted class, its true class and the top-1 confidence).
A class with too few images in the split, or that the model never named, gets no threshold and a reason in
words (a `Message`, translated by the web app), as does a class whose answers never reach the target.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.messages import N_, Message
from engine.metrics import suggest_threshold

MIN_CLASS_IMAGES = 20  # fewer images of a class than this in the split: its precision is too uncertain to set


@dataclass(frozen=True)
class ClassThreshold:
    """The calibration of one class.

    `status`: "threshold" (answers under `threshold` should abstain), "not_needed" (every answer already
    meets the target), "unreachable" (no threshold does), "too_few_images" or "never_predicted". `precision`
    and `kept` are those of the answers the threshold keeps (all of them without one); `coverage` is `kept`
    out of `answers`, the answers naming the class."""

    name: str
    images: int
    answers: int
    status: str
    threshold: float | None
    precision: float | None
    kept: int
    coverage: float | None
    reason: Message | None = None


def calibrate_classes(predicted: np.ndarray, labels: np.ndarray, confidence: np.ndarray, class_names: list[str],
                      precision: float, min_images: int = MIN_CLASS_IMAGES) -> list[ClassThreshold]:
    """One `ClassThreshold` per class of `class_names` (in their order), for the target `precision`.

    `predicted` and `labels` are class indexes per image, `confidence` the top-1 probability."""
    predicted, labels = np.asarray(predicted, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    return [_calibrate_one(name, int((labels == index).sum()), confidence[predicted == index],
                           (labels == index)[predicted == index], precision, min_images)
            for index, name in enumerate(class_names)]


def _calibrate_one(name: str, images: int, confidence: np.ndarray, correct: np.ndarray, precision: float,
                   min_images: int) -> ClassThreshold:
    answers = len(confidence)
    as_is = round(float(correct.mean()), 4) if answers else None
    unset = {"name": name, "images": images, "answers": answers, "threshold": None, "precision": as_is,
             "kept": answers, "coverage": 1.0 if answers else None}
    if images < min_images:
        return ClassThreshold(**unset, status="too_few_images", reason=Message(
            N_("Only %(count)s images of '%(class)s' in the split; at least %(min)s are needed to set its "
               "threshold."), {"count": images, "class": name, "min": min_images}))
    if not answers:
        return ClassThreshold(**unset, status="never_predicted", reason=Message(
            N_("The model named '%(class)s' for none of the images in the split, so no threshold can be "
               "calibrated for it."), {"class": name}))
    found = suggest_threshold(confidence.tolist(), correct.astype(int).tolist(), precision)
    if not found["reachable"]:
        return ClassThreshold(**unset, status="unreachable", reason=Message(
            N_("No threshold keeps %(target)s precision for '%(class)s': at best its answers are right "
               "%(best)s of the time."), {"target": _percent(precision), "class": name,
                                          "best": _percent(_best_precision(confidence, correct))}))
    kept = answers if found["threshold"] is None else int((confidence >= found["threshold"]).sum())
    return ClassThreshold(name=name, images=images, answers=answers,
                          status="threshold" if found["threshold"] is not None else "not_needed",
                          threshold=found["threshold"], precision=found["precision"], kept=kept,
                          coverage=found["coverage"])


def _best_precision(confidence: np.ndarray, correct: np.ndarray) -> float:
    """The highest precision any threshold keeps (the answers at or above some confidence)."""
    order = np.argsort(-confidence, kind="stable")
    ranked, right = confidence[order], np.cumsum(correct[order])
    cut = np.r_[ranked[1:] != ranked[:-1], True]
    return float((right / np.arange(1, len(ranked) + 1))[cut].max())


def _percent(share: float) -> str:
    return f"{share * 100:.1f}".rstrip("0").rstrip(".") + "%"


def kept_precision(predicted: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                   thresholds: dict[int, float]) -> dict[int, tuple[float | None, int]]:
    """For each class index, the precision of its answers that a set of per-class thresholds keeps and how
    many it keeps: how calibrated thresholds fare on other images (a class without a threshold keeps all)."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    confidence = np.asarray(confidence, dtype=np.float64)
    result = {}
    for index in np.unique(np.r_[predicted, labels]).tolist():
        keep = (predicted == index) & (confidence >= thresholds.get(index, 0.0))
        kept = int(keep.sum())
        result[index] = (float((labels[keep] == index).mean()) if kept else None, kept)
    return result
