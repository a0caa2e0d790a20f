"""Likely label errors, the part that needs no Paddle: the confident-learning ranking of out-of-fold
probabilities, how the folds are dealt, and the search's plan (its options and time estimate), so that the web
app plans and ranks a search without loading Paddle. The K trainings are engine.label_errors.

`rank_label_issues` follows the confident-learning idea (Northcutt et al., "Confident Learning: Estimating
Uncertainty in Dataset Labels", 2021), written here from the paper's description: class j's threshold is the
mean probability of j over the images labelled j; an image is confidently of class j when its probability of j
reaches that threshold; an image confidently of another class than its label (the off-diagonal of the confident
joint), or whose most probable class is another, is a likely error, ranked by its normalised margin
p(given) - max p(other), the most doubtful first. `estimate_seconds` is the pre-flight estimate of the K
trainings from a measured speed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.config import TrainConfig
from engine.recommend import EVAL_SHARE, DatasetProfile
from engine.recommend import estimate_seconds as run_seconds

ROW_SUM_TOLERANCE = 1e-3  # probabilities are softmax outputs in float32: rows sum to 1 within rounding
VALIDATION_SHARE = 0.1  # of each fold's training images, set aside to pick its best epoch


@dataclass(frozen=True)
class LabelIssue:
    """One image whose given label the model doubts; classes are indices into the class names."""

    index: int  # position in the probabilities (the training images' order)
    given: int
    suggested: int  # the class the model puts the image in
    given_probability: float
    suggested_probability: float
    score: float  # p(given) - max p(other): from -1 (surely another class) to 1; lower is more doubtful

    def as_dict(self) -> dict:
        return asdict(self)


def rank_label_issues(probabilities: np.ndarray, labels: np.ndarray) -> list[LabelIssue]:
    """The images the model puts in another class than their label (`suggested_classes`), most doubtful
    first (lowest score; equal scores by index). `probabilities` (n, k) are out-of-sample, each row summing
    to 1; `labels` (n,) the given classes. Raises ValueError for shapes that do not match, labels out of
    range, NaN or rows that are no probabilities."""
    probabilities, labels = _checked(probabilities, labels)
    count, classes = probabilities.shape
    if count == 0 or classes < 2:
        return []
    rows = np.arange(count)
    suggested = suggested_classes(probabilities, labels)
    doubted = np.flatnonzero(suggested != labels)
    given_p = probabilities[rows, labels]
    others = probabilities.copy()
    others[rows, labels] = -np.inf
    score = given_p - others.max(axis=1)
    order = doubted[np.lexsort((doubted, score[doubted]))]
    return [LabelIssue(int(i), int(labels[i]), int(suggested[i]), float(given_p[i]),
                       float(probabilities[i, suggested[i]]), float(score[i])) for i in order]


def suggested_classes(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, the class the model puts it in: the most probable of the classes it is confidently of
    when that is not its label (the off-diagonal of the confident joint), else its most probable class.

    The second rule catches what the thresholds alone miss: a mislabelled image whose true class's
    probability falls just under that class's mean (label smoothing caps every probability, so the mean
    sits close to the top) while no other class reaches its own. On the digits benchmark it raised the
    flipped labels found among the top k from 62 and 56 of 72 (two seeds) to 69 and 69, and the ranking by
    margin keeps the model's ordinary mistakes below them. A class no image is labelled with is never
    suggested."""
    thresholds = class_thresholds(probabilities, labels)
    confident = probabilities >= thresholds
    confident_class = np.where(confident, probabilities, -1.0).argmax(axis=1)
    confidently_other = confident.any(axis=1) & (confident_class != labels)
    most_probable = np.where(np.isfinite(thresholds), probabilities, -1.0).argmax(axis=1)
    return np.where(confidently_other, confident_class, most_probable)


def class_thresholds(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per class, the mean probability of that class over the images labelled with it (the model's typical
    confidence in the class); infinite for a class no image is labelled with."""
    classes = probabilities.shape[1]
    sums = np.bincount(labels, weights=probabilities[np.arange(len(labels)), labels], minlength=classes)
    counts = np.bincount(labels, minlength=classes)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def _checked(probabilities: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inputs as float64 (n, k) and int64 (n,), or ValueError saying what is wrong with them."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if probabilities.ndim != 2 or labels.ndim != 1 or len(labels) != len(probabilities):
        raise ValueError(f"expected probabilities (n, k) and labels (n,), got {probabilities.shape} and "
                         f"{labels.shape}")
    if not np.isfinite(probabilities).all():
        raise ValueError("the probabilities contain NaN or infinite values")
    if (probabilities < 0).any() or not np.allclose(probabilities.sum(axis=1), 1.0, atol=ROW_SUM_TOLERANCE):
        raise ValueError("each row of probabilities must be non-negative and sum to 1")
    if len(labels) and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= probabilities.shape[1]):
        raise ValueError(f"labels must be class indices from 0 to {probabilities.shape[1] - 1}")
    return probabilities, labels.astype(np.int64)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold (0 to folds - 1): every class's images shuffled by `seed` and dealt round the folds,
    the deal going on from class to class so the folds also stay equal in size."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        assignment[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return assignment


def validation_slice(indices: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): about VALIDATION_SHARE of each class of `indices` (at least one image in all) to pick a
    fold's best epoch, the rest to train on."""
    rng = np.random.default_rng(seed)
    val = []
    for label in np.unique(labels[indices]):
        members = rng.permutation(indices[labels[indices] == label])
        val.extend(members[:round(len(members) * VALIDATION_SHARE)])
    if not val:
        val = [indices[rng.integers(len(indices))]]
    held = np.isin(indices, val)
    return indices[~held], indices[held]


def fold_profile(num_images: int, folds: int) -> DatasetProfile:
    """What one fold's training run sees, as a dataset profile: its training images, its validation slice,
    and the held-out fold it predicts in the place of a test split."""
    held_out = math.ceil(num_images / folds)
    val = max(1, round((num_images - held_out) * VALIDATION_SHARE))
    rest = num_images - held_out - val
    return DatasetProfile(0, rest, val, held_out, 0, 0, 0)


def estimate_seconds(num_images: int, folds: int, config: TrainConfig, seconds_per_image: float) -> float:
    """Seconds the search takes at most on a device that trains one image of `config`'s backbone, image size
    and batch size in `seconds_per_image` (a worker's measured step timing, `engine.recommend.seconds_per_image`).

    Each fold is a training run of `config.epochs` epochs (early stopping may end it sooner) costed as
    `engine.recommend.estimate_seconds` costs a job, with the held-out fold as its test split. Head-only
    runs pass each image through the backbone once for its cached features, shared by every fold, and once
    more to predict it. Decoding images into the cache and building the models are left out."""
    if config.trains_on_features:
        return seconds_per_image * EVAL_SHARE * 2 * num_images
    return folds * run_seconds(fold_profile(num_images, folds), config.epochs, seconds_per_image)


def search_options(suggested: dict, pretrained_available: dict[str, bool]) -> dict:
    """Job options for a search from a dataset's suggested ones (`engine.recommend.suggest`): the head-only
    fast path when the suggested backbone's pretrained weights are on this machine (features computed once
    make each fold cheap), the suggestion itself otherwise."""
    if suggested.get("pretrained") and pretrained_available.get(suggested["backbone"]):
        return {**suggested, "freeze_backbone": True, "augmentation": "none"}
    return dict(suggested)
