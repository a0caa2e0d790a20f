"""Per-class abstain thresholds, calibrated on one half of an evaluation and checked on the other.

The answers are a real classifier's on real images: scikit-learn's 8x8 digits (1,797 images, 10 classes), a
logistic regression trained on a small part of them (so that it errs often enough for thresholds to matter),
and the rest as the evaluation, one class cut down to fewer than 20 images. Each repeat splits the evaluation
in two halves at random (per class), calibrates every class on the first half for the target precision
(engine.class_thresholds, what the Models page suggests), and measures the precision and coverage the
thresholds keep on both halves. The issue's target: on the calibration half the target is met for every
class with at least 20 images, and the report says why where it cannot be.

    .venv/bin/python benchmarks/class_thresholds.py [--precision 0.95] [--train 120] [--repeats 20] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.class_thresholds import MIN_CLASS_IMAGES, calibrate_classes, kept_precision  # noqa: E402

TINY = {"repeats": 2}
SMALL_CLASS, SMALL_CLASS_IMAGES = 9, 30  # this class keeps 30 evaluation images: about 15 per half


def evaluation_answers(train: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(predicted, labels, confidence, class names) of a logistic regression trained on `train` digits,
    answering the others; the small class keeps SMALL_CLASS_IMAGES of its evaluation images."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    fit, rest = order[:train], order[train:]
    small = rest[digits.target[rest] == SMALL_CLASS]
    rest = np.r_[rest[digits.target[rest] != SMALL_CLASS], small[:SMALL_CLASS_IMAGES]]
    model = LogisticRegression(max_iter=2000, C=1.0).fit(digits.data[fit] / 16, digits.target[fit])
    probabilities = model.predict_proba(digits.data[rest] / 16)
    return (probabilities.argmax(axis=1), digits.target[rest], probabilities.max(axis=1),
            [f"digit {n}" for n in range(10)])


def halves(labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random half of each class's images, and the rest."""
    first = np.zeros(len(labels), dtype=bool)
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        first[members[: len(members) // 2]] = True
    return first, ~first


def one_repeat(answers, precision: float, rng: np.random.Generator) -> list[dict]:
    """Per class: calibrated on one half, measured on both."""
    predicted, labels, confidence, names = answers
    calibration, held_out = halves(labels, rng)
    report = calibrate_classes(predicted[calibration], labels[calibration], confidence[calibration], names, precision)
    thresholds = {index: found.threshold for index, found in enumerate(report) if found.threshold is not None}
    on_held_out = kept_precision(predicted[held_out], labels[held_out], confidence[held_out], thresholds)
    rows = []
    for index, found in enumerate(report):
        answers_out = int((predicted[held_out] == index).sum())
        held_precision, held_kept = on_held_out.get(index, (None, 0))
        rows.append({"class": found.name, "status": found.status, "threshold": found.threshold,
                     "calibration_images": found.images, "calibration_precision": found.precision,
                     "calibration_coverage": found.coverage, "calibration_kept": found.kept,
                     "held_out_images": int((labels[held_out] == index).sum()),
                     "held_out_precision": None if held_precision is None else round(held_precision, 4),
                     "held_out_coverage": round(held_kept / answers_out, 4) if answers_out else None,
                     "reason": found.reason})
    return rows


def summary(repeats: list[list[dict]], precision: float) -> dict:
    """What the target asks (every class with enough images met on the calibration half, or a reason), and
    how the thresholds carry to the held-out half."""
    rows = [row for repeat in repeats for row in repeat]
    enough = [row for row in rows if row["calibration_images"] >= MIN_CLASS_IMAGES]
    set_ = [row for row in rows if row["status"] == "threshold"]
    met = [row for row in enough if row["status"] in ("threshold", "not_needed")]
    held = [row["held_out_precision"] for row in set_ if row["held_out_precision"] is not None]
    return {
        "class_results": len(rows), "with_enough_images": len(enough),
        "met_on_calibration": sum(row["calibration_precision"] >= precision for row in met),
        "not_met_with_reason": sum(row["reason"] is not None for row in enough if row not in met),
        "target_met_or_explained_for_every_class": all(
            (row in met and row["calibration_precision"] >= precision) or row["reason"] for row in enough),
        "too_few_images_with_reason": sum(row["status"] == "too_few_images" and bool(row["reason"]) for row in rows),
        "thresholds_set": len(set_),
        "held_out_met_share": round(float(np.mean([value >= precision for value in held])), 4) if held else None,
        "held_out_mean_precision": round(float(np.mean(held)), 4) if held else None,
        "held_out_min_precision": round(float(np.min(held)), 4) if held else None,
        "calibration_mean_coverage": round(float(np.mean([row["calibration_coverage"] for row in set_])), 4)
        if set_ else None,
        "held_out_mean_coverage": round(float(np.mean([row["held_out_coverage"] for row in set_
                                                       if row["held_out_coverage"] is not None])), 4) if set_ else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", type=float, default=0.95)
    parser.add_argument("--train", type=int, default=120, help="digits the classifier is trained on")
    parser.add_argument("--repeats", type=int, default=20, help="random halvings of the evaluation")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_args(parser, TINY)
    started = time.perf_counter()
    answers = evaluation_answers(args.train, args.seed)
    predicted, labels = answers[0], answers[1]
    rng = np.random.default_rng(args.seed + 1)
    repeats = [one_repeat(answers, args.precision, rng) for _ in range(args.repeats)]
    print(json.dumps({
        "dataset": "digits", "model": f"logistic regression trained on {args.train} images",
        "evaluation_images": len(labels), "evaluation_accuracy": round(float((predicted == labels).mean()), 4),
        "precision_target": args.precision, "min_images": MIN_CLASS_IMAGES, "repeats": args.repeats,
        "summary": summary(repeats, args.precision), "first_repeat": repeats[0],
        "seconds": round(time.perf_counter() - started, 2)}, indent=2))


if __name__ == "__main__":
    main()
