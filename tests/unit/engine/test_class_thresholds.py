"""Abstain thresholds per class, calibrated for a target precision on a split's answers."""
import numpy as np

from engine.class_thresholds import calibrate_classes, kept_precision

CLASSES = ["cat", "dog", "fox", "owl"]


def simulated_split(seed: int = 3):
    """cat: 60 images, 12 of them called dogs at low confidence; dog: 40 images, always right; fox: 8 images
    (too few); owl: 30 images the model never names (it calls them cats at low confidence)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(60), np.ones(40), np.full(8, 2), np.full(30, 3)].astype(int)
    predicted = labels.copy()
    confidence = rng.uniform(0.5, 1.0, len(labels))
    wrong_cats = np.flatnonzero(labels == 0)[:12]
    confidence[wrong_cats] = rng.uniform(0.5, 0.7, 12)  # the wrong answers about cats are among its doubtful ones
    predicted[wrong_cats] = 1  # called dogs: dog's answers hold 12 wrong ones, all at 0.7 or below
    predicted[labels == 3] = 0
    confidence[labels == 3] = rng.uniform(0.4, 0.6, 30)
    return predicted, labels, confidence


def test_each_class_with_enough_images_meets_the_target_on_its_kept_answers():
    predicted, labels, confidence = simulated_split()
    report = {c.name: c for c in calibrate_classes(predicted, labels, confidence, CLASSES, 0.95)}
    for name in ("cat", "dog"):
        found = report[name]
        assert found.status == "threshold" and found.reason is None and found.precision >= 0.95
        index = CLASSES.index(name)
        keep = (predicted == index) & (confidence >= found.threshold)
        assert found.kept == keep.sum() and abs((labels[keep] == index).mean() - found.precision) < 1e-4
        assert found.coverage == round(found.kept / found.answers, 4) and 0 < found.coverage < 1
        lower = confidence[(predicted == index) & (confidence < found.threshold)].max()
        below = (predicted == index) & (confidence >= lower)
        assert (labels[below] == index).mean() < 0.95  # the threshold is the lowest that meets the target
    assert report["dog"].images == 40 and report["dog"].answers == 52


def test_classes_that_cannot_be_calibrated_say_why():
    predicted, labels, confidence = simulated_split()
    report = {c.name: c for c in calibrate_classes(predicted, labels, confidence, CLASSES, 0.95)}
    assert report["fox"].status == "too_few_images" and report["fox"].threshold is None
    assert report["fox"].reason == ("Only 8 images of 'fox' in the split; at least 20 are needed to set its "
                                    "threshold.")
    assert report["fox"].reason.params == {"count": 8, "class": "fox", "min": 20}
    assert report["owl"].status == "never_predicted" and report["owl"].answers == 0
    assert "'owl'" in report["owl"].reason and report["owl"].precision is None


def test_an_unreachable_target_names_the_best_precision_and_an_easy_one_needs_no_threshold():
    labels = np.r_[np.zeros(30), np.ones(30)].astype(int)
    predicted = np.r_[np.zeros(30), np.zeros(10), np.ones(20)].astype(int)  # cat's best answers are dogs
    confidence = np.r_[np.full(30, 0.6), np.full(10, 0.9), np.full(20, 0.8)]
    cat, dog = calibrate_classes(predicted, labels, confidence, ["cat", "dog"], 0.9)
    assert cat.status == "unreachable" and cat.threshold is None and cat.precision == 0.75
    assert cat.reason == "No threshold keeps 90% precision for 'cat': at best its answers are right 75% of the time."
    assert dog.status == "not_needed" and dog.threshold is None and (dog.precision, dog.kept, dog.coverage) == (1.0, 20, 1.0)


def test_kept_precision_applies_thresholds_to_other_images():
    predicted, labels, confidence = np.array([0, 0, 0, 1]), np.array([0, 1, 0, 1]), np.array([0.9, 0.5, 0.8, 0.7])
    assert kept_precision(predicted, labels, confidence, {0: 0.6}) == {0: (1.0, 2), 1: (1.0, 1)}
    assert kept_precision(predicted, labels, confidence, {0: 0.95})[0] == (None, 0)
