"""Likely label errors: out-of-sample class probabilities by K-fold training.

Every training image gets probabilities from a model that never saw it (`out_of_sample_probabilities`: K
trainings through the one `Trainer`, each predicting the fold it left out); engine.label_ranking ranks them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from engine.config import TrainConfig
from engine.data import Sample
from engine.label_ranking import stratified_folds, validation_slice
from engine.trainer import Callbacks, Trainer, TrainData, TrainingCancelled


class FoldProgress(Callbacks):
    """The trainer's callbacks during one search: steps reported as epochs done over every fold's epochs
    (fractional within an epoch), and the caller's stop request passed on."""

    def __init__(self, folds: int, epochs: int, progress: Callable[[float, int], None] | None,
                 should_stop: Callable[[], bool] | None) -> None:
        self.total, self.epochs, self.fold = folds * epochs, epochs, 0
        self.progress, self.stop = progress, should_stop

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if self.progress:
            self.progress(self.fold * self.epochs + epoch - 1 + step / steps, self.total)

    def fold_done(self) -> None:
        """A fold finished (perhaps stopped early): its epochs count as done."""
        self.fold += 1
        if self.progress:
            self.progress(self.fold * self.epochs, self.total)

    def should_stop(self) -> bool:
        return bool(self.stop and self.stop())


def out_of_sample_probabilities(train: list[Sample], class_names: list[str], config: TrainConfig, folds: int,
                                device: str | None, workdir: Path | str,
                                progress: Callable[[float, int], None] | None = None,
                                should_stop: Callable[[], bool] | None = None) -> np.ndarray:
    """(n, k) class probabilities of every image of `train`, in its order, each from a model that did not
    train on it: `folds` stratified folds (dealt by `config.seed`); each fold's model trains with `config` on
    the other folds, less a validation slice that picks its best epoch, then predicts the fold.

    The held-out fold is not the validation split, so its labels (the ones under suspicion) choose nothing.
    `workdir` holds the caches: decoded images in `images/`, backbone features in `features/` (the studio's
    `DATA_DIR/cache` shares them with jobs); with a head-only config each image's features are computed once
    for all folds. `progress(done, total)` counts epochs over all folds; `should_stop()` is asked at every step
    and between folds, and raises TrainingCancelled."""
    labels = np.array([sample.label for sample in train], dtype=np.int64)
    if not 2 <= folds <= len(train):
        raise ValueError(f"folds must be between 2 and the number of images ({len(train)}), got {folds}")
    assignment = stratified_folds(labels, folds, config.seed)
    probabilities = np.zeros((len(train), len(class_names)), dtype=np.float32)
    callbacks = FoldProgress(folds, config.epochs, progress, should_stop)
    for fold in range(folds):
        if callbacks.should_stop():
            raise TrainingCancelled()
        fit_on, pick_on = validation_slice(np.flatnonzero(assignment != fold), labels, config.seed + fold)
        data = TrainData(class_names, [train[i] for i in fit_on], [train[i] for i in pick_on])
        trainer = Trainer(config, data, Path(workdir) / "images", callbacks, device=device)
        trainer.fit()
        held_out = np.flatnonzero(assignment == fold)
        probabilities[held_out] = trainer.predict([train[i] for i in held_out])
        callbacks.fold_done()
    return probabilities


