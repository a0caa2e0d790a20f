"""Fine-tune a classifier: a small trainer whose steps are separate methods, reporting via callbacks.

One epoch loop (`Trainer.fit`) owns the epochs, the schedule, validation, early stopping, checkpoints and
callbacks; a training path owns how batches are produced and what a step takes in: image batches
(`ImageBatches`: full fine-tuning, distillation) or cached backbone features (`engine.headonly.CachedFeatures`).
"""
from __future__ import annotations

import logging
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager, Iterable, Iterator, Protocol

import numpy as np
import paddle
from paddle import nn

from engine.backbones import build_backbone, freeze_backbone
from engine.amp import FLOAT16, decay_factor, device_amp_dtype, loss_scaler, restore_scaler, scaler_state
from engine.bundle import Preprocess, write_bundle
from engine.checkpoint import Checkpoint, CheckpointStore, LoopState
from engine.config import TrainConfig
from engine.data import BatchLoader, ImageCache, Sample, loader_pace
from engine.distill import distillation_loss
from engine.device import is_gpu, pick_device
from engine.epochs import EpochStats
from engine.feed import DeviceFeed
from engine.headonly import CachedFeatures
from engine.metrics import calibration_sample, confusion_matrix, per_class_report, top_k_accuracy

log = logging.getLogger(__name__)


# Epochs with at least this many steps leave BatchNorm's running averages settled on the epoch's weights
# (four times the ~10-step memory of momentum 0.9); shorter ones are recalibrated before validation.
SETTLED_BATCHNORM_STEPS = 40


# A step's loss is read to the host (a wait for the GPU) on the first step of an epoch, every this many steps
# after, and on its last; the epoch's figures add up on the device.
LOSS_READ_EVERY = 10
ONNX_CHECK_IMAGES = 8  # validation images the exported ONNX model is compared on
# One step's inputs, labels and the teacher's log-probabilities (or None), on the training device.
StepInputs = tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor | None]


def reads_loss(step: int, steps: int) -> bool:
    """Whether step `step` (from 1) of an epoch of `steps` reads its loss to the host for the progress report."""
    return (step - 1) % LOSS_READ_EVERY == 0 or step == steps


class EpochFigures:
    """An epoch's summed training loss and right answers, added up on the device and read once at its end."""

    def __init__(self) -> None:
        self.loss_sum = paddle.zeros([], dtype="float64")
        self.correct = paddle.zeros([], dtype="int64")

    @paddle.no_grad()
    def add(self, loss: paddle.Tensor, logits: paddle.Tensor, labels: paddle.Tensor) -> None:
        """A step's mean loss over its batch, and its answers against `labels` (class indices, or soft labels
        of mixed batches, where the larger share counts)."""
        truth = labels.argmax(axis=1) if labels.ndim == 2 else labels
        self.loss_sum += loss.detach().astype("float64") * truth.shape[0]
        self.correct += (logits.argmax(axis=1) == truth.astype("int64")).astype("int64").sum()

    def read(self) -> tuple[float, int]:
        """(summed loss, right answers) on the host."""
        return float(self.loss_sum), int(self.correct)


class TrainingCancelled(Exception):
    """Raised inside the loop when the callbacks ask to stop."""


@dataclass
class TrainData:
    class_names: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample] = field(default_factory=list)  # held out: evaluated once, on the best epoch


@dataclass
class FitResult:
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int = 0
    best_val_acc: float = 0.0
    confusion: list[list[int]] = field(default_factory=list)
    per_class: list[dict] = field(default_factory=list)
    calibration: dict = field(default_factory=dict)  # per validation image: top confidence, right or not
    stopped_early: bool = False
    resumed_from_epoch: int | None = None
    test: dict | None = None  # the best epoch on the test split: accuracy, loss, confusion, per class
    # per split, every image's answer from the best epoch: {"key", "label", "predicted", "top": [[class, p]]}
    predictions: dict = field(default_factory=dict)
    head_only: bool = False  # trained on cached backbone features


@dataclass
class BestEpoch:
    """What the loop keeps of the best epoch so far, beside the result's best epoch and accuracy."""

    state: dict | None = None  # its weights
    loss: float = float("inf")  # its validation loss, the tie-breaker between equal accuracies
    waited: int = 0  # epochs since, for early stopping
    answers: tuple[np.ndarray, np.ndarray] | None = None  # its validation probabilities and labels


Validation = tuple[float, np.ndarray, np.ndarray]  # loss, probabilities, labels


def image_answers(samples: list[Sample], probabilities: np.ndarray, top: int = 3) -> list[dict]:
    """What the model answered for each image of a split (its three most likely classes), in sample order."""
    order = np.argsort(-probabilities, axis=1)[:, :top]
    return [{"key": sample.key, "label": sample.label, "predicted": int(best[0]),
             "top": [[int(index), round(float(row[index]), 4)] for index in best]}
            for sample, row, best in zip(samples, probabilities, order)]


class Callbacks:
    """Progress reported outward; the engine never knows who listens."""

    def on_phase(self, phase: str, done: int, total: int) -> None: ...

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        """After every step; `loss` is the latest loss read to the host (see LOSS_READ_EVERY)."""

    def on_epoch(self, stats: EpochStats) -> None: ...

    def on_checkpoint(self, epoch: int, size_bytes: int) -> None: ...

    def should_stop(self) -> bool:
        return False


class TrainingPath(Protocol):
    """How one kind of training feeds the epoch loop: its batches, what a step takes in, and what the model
    takes as input while the path trains and validates."""

    head_only: bool

    def prepare(self) -> None:
        """Once, after the model is built (and a checkpoint loaded), before the first epoch."""

    @property
    def steps(self) -> int:
        """Training steps per epoch."""

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch's training batches (inputs, labels: class indices or soft labels)."""

    def step_inputs(self, x: paddle.Tensor, y: paddle.Tensor) -> StepInputs:
        """Inputs, labels and the teacher's log-probabilities (or None) of one step on a batch already on the
        training device."""

    def validation_batches(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """The validation split as (inputs, labels) batches."""

    def model_input(self) -> ContextManager[None]:
        """Within it, the model takes this path's inputs."""

    def before_validation(self, first_epoch: bool) -> None:
        """After an epoch's steps: settle what validation must not see stale."""


class ImageBatches:
    """Full fine-tuning (and distillation): every step trains the model on a batch of augmented images."""

    head_only = False

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer

    def prepare(self) -> None:
        """Nothing more: the training loader holds every decoded image after `Trainer.prepare`."""

    @property
    def steps(self) -> int:
        return len(self.trainer.train_loader)

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self.trainer.train_loader.epoch(epoch)

    def step_inputs(self, x: paddle.Tensor, y: paddle.Tensor) -> StepInputs:
        teacher = self.trainer.teacher  # its softened answers on the same pixels join the loss
        return x, y, teacher.answer(x) if teacher else None

    def validation_batches(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        return self.trainer.val_loader.epoch()

    def model_input(self) -> ContextManager[None]:
        return nullcontext()

    def before_validation(self, first_epoch: bool) -> None:
        if self.trainer.batchnorm_stale(first_epoch):
            self.trainer.recalibrate_batchnorm()


class Trainer:
    """prepare -> build -> per epoch on a training path (train_epoch, before_validation, evaluate) -> export."""

    def __init__(self, config: TrainConfig, data: TrainData, cache_root: Path | str,
                 callbacks: Callbacks | None = None, device: str | None = None, teacher=None,
                 init_weights: Path | None = None, feature_cache: Path | str | None = None) -> None:
        self.config, self.data = config, data
        # Head-only runs keep backbone features here; by default in `features/` beside the image cache.
        self.feature_cache = Path(feature_cache) if feature_cache else Path(cache_root).parent / "features"
        self.init_weights = init_weights  # a finished run's checked best weights to start from
        self.teacher = teacher  # engine.distill.Teacher: its softened answers join the loss
        self.callbacks = callbacks or Callbacks()
        self.device = device or pick_device()
        self.amp_dtype = device_amp_dtype(self.device)  # None: float32, as on the CPU
        self.feed = DeviceFeed(self.device)  # every batch reaches the device through it
        self.preprocess = Preprocess.for_input_size(config.image_size)
        self.cache = ImageCache(cache_root, self.preprocess)
        self.num_classes = len(data.class_names)

    @property
    def precision(self) -> str:
        """The precision its steps compute in: the AMP dtype on a GPU, float32 on the CPU."""
        return self.amp_dtype or "float32"

    def prepare(self) -> None:
        """Decode (or fetch from the cache) every image once, and build the loaders."""
        paddle.set_device(self.device)
        paddle.seed(self.config.seed)
        samples = self.data.train + self.data.val + self.data.test
        arrays = self.cache.load_all(samples, lambda done, total: self.callbacks.on_phase("preparing", done, total))
        train_end, val_end = len(self.data.train), len(self.data.train) + len(self.data.val)
        labels = np.array([s.label for s in samples], dtype=np.int64)
        rule, batch = self.preprocess, self.config.batch_size
        self.train_loader = BatchLoader(arrays[:train_end], labels[:train_end], batch, rule, True, self.config.seed,
                                        self.config.policy(), self.num_classes, loader_pace(is_gpu(self.device)))
        self.val_loader = BatchLoader(arrays[train_end:val_end], labels[train_end:val_end], batch, rule, False)
        self.test_loader = (BatchLoader(arrays[val_end:], labels[val_end:], batch, rule, False)
                            if self.data.test else None)

    def build(self, steps_per_epoch: int | None = None) -> None:
        """Model, loss, warm-up + cosine schedule, optimizer with global-norm clipping. The schedule spans the
        training loader's steps per epoch, or `steps_per_epoch` when there is no loader (a speed measurement)."""
        self.model = build_backbone(self.config.backbone, self.num_classes,
                                    self.config.pretrained and self.init_weights is None)
        if self.init_weights is not None:
            own = self.model.state_dict()
            state = paddle.load(str(self.init_weights))
            usable = {k: v for k, v in state.items() if k in own and list(v.shape) == list(own[k].shape)}
            self.model.set_state_dict(usable)
            log.info("started from %s: %d of %d tensors", self.init_weights, len(usable), len(own))
        self.frozen = freeze_backbone(self.config.backbone, self.model) if self.config.freeze_backbone else []
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
        steps = max(1, len(self.train_loader) if steps_per_epoch is None else steps_per_epoch)
        total = steps * self.config.epochs
        warmup = min(int(self.config.warmup_epochs * steps), total - 1)
        base_lr = self.config.resolved_learning_rate()
        schedule = paddle.optimizer.lr.CosineAnnealingDecay(base_lr, T_max=max(1, total - warmup))
        self.scheduler = (paddle.optimizer.lr.LinearWarmup(schedule, warmup, base_lr * 0.01, base_lr)
                          if warmup > 0 else schedule)
        self.optimizer = self._optimizer([p for p in self.model.parameters() if not p.stop_gradient])
        self.scaler = loss_scaler(self.amp_dtype)
        log.info("training on %s in %s", self.device, self.amp_dtype or "float32")

    def _optimizer(self, parameters):
        clip = nn.ClipGradByGlobalNorm(self.config.grad_clip)
        decay, name = self.config.weight_decay, self.config.optimizer
        self.decoupled_decay = ([], 0.0)
        if name == "adamw":
            # AdamW as Adam with decoupled weight decay applied before each step (Paddle's AdamW rule,
            # p *= 1 - lr * decay): Paddle's AdamW updates one parameter at a time, ~75 ms a step for
            # resnet18 on a 2-core CPU against ~18 ms for Adam's multi-tensor update.
            self.decoupled_decay = (parameters, decay)
            return paddle.optimizer.Adam(self.scheduler, parameters=parameters, grad_clip=clip, use_multi_tensor=True)
        if name == "adam":
            return paddle.optimizer.Adam(self.scheduler, parameters=parameters,
                                         weight_decay=paddle.regularizer.L2Decay(decay), grad_clip=clip)
        return paddle.optimizer.Momentum(self.scheduler, momentum=0.9, parameters=parameters,
                                         weight_decay=paddle.regularizer.L2Decay(decay), grad_clip=clip)

    def _train_mode(self) -> None:
        self.model.train()
        for layer in self.frozen:  # frozen layers keep their BatchNorm statistics
            layer.eval()

    def training_path(self) -> TrainingPath:
        """Cached features on the head-only fast path, image batches otherwise."""
        return CachedFeatures(self) if self.head_only else ImageBatches(self)

    def train_epoch(self, epoch: int, path: TrainingPath | None = None) -> tuple[float, float, float]:
        """One pass over the training set on `path` (image batches unless given); returns (loss, accuracy,
        seconds spent in steps)."""
        path = path or ImageBatches(self)
        self._train_mode()
        figures, seen, steps, value = EpochFigures(), 0, path.steps, float("nan")
        started = time.perf_counter()
        with path.model_input():
            for step, (x, y) in enumerate(self.feed.batches(path.batches(epoch)), start=1):
                if self.callbacks.should_stop():
                    raise TrainingCancelled()
                inputs = path.step_inputs(x, y)
                loss, logits = self._step(*inputs)
                figures.add(loss, logits, inputs[1])
                seen += y.shape[0]
                if reads_loss(step, steps):
                    value = float(loss)
                self.callbacks.on_step(epoch, step, steps, value)
        total_loss, correct = figures.read()
        return total_loss / max(seen, 1), correct / max(seen, 1), time.perf_counter() - started

    def time_steps(self, batches: Iterable[tuple[paddle.Tensor, paddle.Tensor]]) -> tuple[int, float]:
        """Train on `batches` (inputs, labels) and return (images, seconds): the training step alone, as the
        speed probe and the benchmarks time it, without an epoch's callbacks and figures. Needs `build`."""
        self._train_mode()
        images, started = 0, time.perf_counter()
        for x, y in batches:
            float(self._step(x, y)[0])
            images += len(y)
        return images, time.perf_counter() - started

    def _step(self, x: paddle.Tensor, y: paddle.Tensor, teacher_log_p: paddle.Tensor | None = None):
        with paddle.amp.auto_cast(enable=self.amp_dtype is not None, dtype=self.amp_dtype or FLOAT16):
            logits = self.model(x)
            if y.ndim == 2:  # soft labels from Mixup / CutMix, smoothed like hard ones
                smoothing = self.config.label_smoothing
                soft = y * (1 - smoothing) + smoothing / self.num_classes
                loss = nn.functional.cross_entropy(logits.astype("float32"), soft, soft_label=True)
            else:
                loss = self.loss_fn(logits, y)
            if teacher_log_p is not None:
                weight = self.config.distill_weight
                loss = (1 - weight) * loss + weight * distillation_loss(logits, teacher_log_p,
                                                                        self.config.distill_temperature)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            # Unscaling first sets the scaler's inf/nan flag (a device tensor Paddle offers no public reader
            # for), which the decay and the optimizer's step both follow.
            self.scaler.unscale_(self.optimizer)
            self._decay_weights(self.scaler._found_inf)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self._decay_weights()
            self.optimizer.step()
        self.optimizer.clear_grad()
        self.scheduler.step()
        return loss, logits

    @paddle.no_grad()
    def _decay_weights(self, found_inf: paddle.Tensor | None = None) -> None:
        """Decoupled weight decay (AdamW), after the gradients are computed and before the update; none on a
        step the loss scaler skips for inf/nan gradients (`found_inf`), as the update itself is skipped."""
        parameters, decay = self.decoupled_decay
        if decay:
            factor = decay_factor(self.optimizer.get_lr(), decay, found_inf)
            for parameter in parameters:
                if found_inf is None:
                    parameter.scale_(factor)
                else:
                    parameter.multiply_(factor)

    @paddle.no_grad()
    def recalibrate_batchnorm(self, max_images: int = 256) -> None:
        """Replace BatchNorm running statistics by exact averages over un-augmented training images.

        The running averages lag far behind the weights early in training (and in short runs from
        scratch), which makes validation numbers meaningless; this makes them honest.
        """
        frozen = {id(layer) for part in self.frozen for layer in part.sublayers(include_self=True)}
        norms = [layer for layer in self.model.sublayers()
                 if isinstance(layer, nn.layer.norm._BatchNormBase) and id(layer) not in frozen]
        if not norms:
            return
        momentum = [layer._momentum for layer in norms]
        self._train_mode()
        pick = np.random.default_rng(self.config.seed).permutation(len(self.train_loader.images))[:max_images]
        images = self.train_loader.images[pick]  # shuffled: batches must mix classes like training ones
        for k, start in enumerate(range(0, len(images), self.config.batch_size), start=1):
            for layer in norms:
                layer._momentum = (k - 1) / k
            self.model(self.feed.put([self.preprocess.batch(images[start:start + self.config.batch_size])])[0])
        for layer, value in zip(norms, momentum):
            layer._momentum = value

    @property
    def head_only(self) -> bool:
        """The fast path: a frozen backbone and no augmentation that needs pixels -> train on cached features."""
        return self.config.trains_on_features and self.teacher is None

    @paddle.no_grad()
    def evaluate(self, loader: BatchLoader | None = None, batches=None) -> tuple[float, np.ndarray, np.ndarray]:
        """Loss, probabilities and labels on the validation split, on `loader`, or on (x, y) `batches`."""
        self.model.eval()
        loss_sum, probabilities, labels = paddle.zeros([], dtype="float64"), [], []
        for x, y in self.feed.batches(batches if batches is not None else (loader or self.val_loader).epoch()):
            logits = self.model(x).astype("float32")
            loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").astype("float64")
            probabilities.append(nn.functional.softmax(logits, axis=-1))
            labels.append(y)
        labels_all = paddle.concat(labels).numpy()  # the pass's one read to the host, with the two below
        return float(loss_sum) / len(labels_all), paddle.concat(probabilities).numpy(), labels_all

    def predict(self, samples: list[Sample]) -> np.ndarray:
        """Class probabilities of `samples` (un-augmented, in their order) from the model as it stands, after
        `fit` its best epoch: images outside the run's splits, such as a held-out fold. Decoded through the
        image cache."""
        labels = np.array([sample.label for sample in samples], dtype=np.int64)
        loader = BatchLoader(self.cache.load_all(samples), labels, self.config.batch_size, self.preprocess, False)
        return self.evaluate(loader)[1]

    def fit(self, checkpoints: CheckpointStore | None = None, resume_from: Checkpoint | None = None) -> FitResult:
        """Train for the configured epochs, keep the best epoch by val accuracy, stop early if asked.

        With `checkpoints`, every finished epoch is saved there; with `resume_from`, the run continues
        after that checkpoint's epoch with its weights, optimizer, schedule and history.
        """
        self.prepare()
        self.build()
        path = self.training_path()
        result, best = FitResult(), BestEpoch()
        first = self._resume(resume_from, result, best) if resume_from is not None else 1
        path.prepare()
        result.head_only = path.head_only
        for epoch in range(first, self.config.epochs + 1):
            if self._stopping_early(result, best.waited, epoch - 1):
                break
            stats, validation = self.run_epoch(path, epoch, first_epoch=epoch == first)
            result.history.append(stats)
            self.callbacks.on_epoch(stats)
            improved = self._keep_if_best(result, best, stats, validation)
            if checkpoints is not None:
                self._checkpoint(checkpoints, result, best, improved)
        self.model.set_state_dict(best.state)
        self._final_report(result, best.answers)
        return result

    def run_epoch(self, path: TrainingPath, epoch: int, first_epoch: bool) -> tuple[EpochStats, Validation]:
        """Train one epoch on `path`, then validate: the epoch's figures and its validation answers."""
        paddle.seed(self.config.seed + 7919 * epoch)  # what the epoch draws depends on the epoch alone
        started = time.perf_counter()
        train_loss, train_acc, step_seconds = self.train_epoch(epoch, path)
        path.before_validation(first_epoch)
        with path.model_input():
            validation = self.evaluate(batches=path.validation_batches())
        stats = self._epoch_stats(epoch, train_loss, train_acc, *validation, time.perf_counter() - started,
                                  step_seconds)
        return stats, validation

    def _resume(self, checkpoint: Checkpoint, result: FitResult, best: BestEpoch) -> int:
        """Continue after `checkpoint`'s epoch with its weights, optimizer, schedule, history and best epoch;
        returns the next epoch."""
        best.state = checkpoint.load_into(self.model, self.optimizer)
        state = checkpoint.state
        result.history = [EpochStats(**epoch) for epoch in state.history]
        result.best_epoch, result.best_val_acc = state.best_epoch, state.best_val_acc
        best.loss, best.waited = state.best_loss, state.waited
        result.resumed_from_epoch = state.epoch
        self._resume_scaler(state.scaler)
        return state.epoch + 1

    def _resume_scaler(self, state: dict | None) -> None:
        """Continue with the checkpoint's loss scale and counters, so a resumed fp16 run does not start again
        at the initial scale and skip steps finding its way down; a checkpoint without them starts afresh."""
        if self.scaler is None:
            return
        if state is None:
            log.info("the checkpoint keeps no loss scaler state: the loss scaler starts afresh")
            return
        restore_scaler(self.scaler, state)

    def _keep_if_best(self, result: FitResult, best: BestEpoch, stats: EpochStats, validation: Validation) -> bool:
        """Keep the epoch's weights and validation answers if its accuracy is the best so far (equal accuracy:
        if its loss is lower); whether it was kept."""
        val_loss, probabilities, labels = validation
        improved = stats.val_acc > result.best_val_acc or best.state is None or (
            stats.val_acc == result.best_val_acc and val_loss < best.loss)
        if improved:
            result.best_epoch, result.best_val_acc, best.loss, best.waited = stats.epoch, stats.val_acc, val_loss, 0
            best.state = {k: v.numpy().copy() for k, v in self.model.state_dict().items()}
            best.answers = (probabilities, labels)
        else:
            best.waited += 1
        return improved

    def _checkpoint(self, store: CheckpointStore, result: FitResult, best: BestEpoch, improved: bool) -> None:
        """Save the epoch just finished and the loop's state, so a stopped run resumes after it."""
        epoch = result.history[-1].epoch
        state = LoopState(epoch, result.best_epoch, result.best_val_acc, best.loss, best.waited,
                          [stats.as_dict() for stats in result.history], scaler_state(self.scaler))
        store.save(state, self.model, self.optimizer, best.state, improved)
        self.callbacks.on_checkpoint(epoch, store.size_bytes())

    def batchnorm_stale(self, first_epoch: bool) -> bool:
        """Whether BatchNorm's running statistics may lag the weights enough to skew validation: in the
        first epoch of a run (weights move fast, the averages start from nothing), and in epochs too short
        for the averages (momentum 0.9: about the last 10 steps count) to settle on the epoch's weights."""
        return first_epoch or len(self.train_loader) < SETTLED_BATCHNORM_STEPS

    def _stopping_early(self, result: FitResult, waited: int, done: int) -> bool:
        """After `done` epochs: whether validation stopped improving for the patience (never after the last)."""
        patience = self.config.early_stopping_patience
        if patience and waited >= patience and 0 < done < self.config.epochs:
            result.stopped_early = True
        return result.stopped_early

    def _epoch_stats(self, epoch, train_loss, train_acc, val_loss, probabilities, labels, seconds,
                     step_seconds) -> EpochStats:
        top5 = top_k_accuracy(probabilities, labels, 5) if self.num_classes > 5 else None
        return EpochStats(epoch=epoch, train_loss=round(train_loss, 5), train_acc=round(train_acc, 5),
                          val_loss=round(val_loss, 5), val_acc=round(top_k_accuracy(probabilities, labels, 1), 5),
                          val_top5=None if top5 is None else round(top5, 5), lr=float(self.optimizer.get_lr()),
                          seconds=round(seconds, 3),
                          images_per_s=round(len(self.train_loader.labels) / max(step_seconds, 1e-9), 2))

    def _final_report(self, result: FitResult, best_answers: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Confusion, per-class report, calibration and answers of the best epoch (its validation pass is
        reused when this run made it), and the test split's once."""
        probabilities, labels = best_answers if best_answers is not None else self.evaluate()[1:]
        matrix = confusion_matrix(labels, probabilities.argmax(axis=1), self.num_classes)
        result.confusion = matrix.tolist()
        result.per_class = per_class_report(matrix, self.data.class_names)
        result.calibration = {"split": "val", **calibration_sample(probabilities, labels)}
        result.predictions["val"] = image_answers(self.data.val, probabilities)
        if self.test_loader is not None:
            loss, probabilities, labels = self.evaluate(self.test_loader)
            result.predictions["test"] = image_answers(self.data.test, probabilities)
            matrix = confusion_matrix(labels, probabilities.argmax(axis=1), self.num_classes)
            top5 = top_k_accuracy(probabilities, labels, 5) if self.num_classes > 5 else None
            result.test = {"images": int(len(labels)), "accuracy": round(top_k_accuracy(probabilities, labels, 1), 5),
                           "top5": None if top5 is None else round(top5, 5), "loss": round(loss, 5),
                           "confusion": matrix.tolist(), "per_class": per_class_report(matrix, self.data.class_names)}
            # abstain thresholds are calibrated on held-out images when there are some
            result.calibration = {"split": "test", **calibration_sample(probabilities, labels)}

    def export(self, folder: Path, provenance: dict, result: FitResult) -> dict:
        """Write the best model, its classes and preprocessing rule and its provenance into a new bundle."""
        meta = {
            "classes": self.data.class_names,
            "backbone": self.config.backbone,
            "config": self.config.to_dict(),
            "device": self.device,
            "precision": self.precision,
            "metrics": {"best_epoch": result.best_epoch, "val_acc": result.best_val_acc,
                        "per_class": result.per_class, "confusion": result.confusion,
                        "calibration": result.calibration, "test": result.test,
                        "history": [stats.as_dict() for stats in result.history]},
            **provenance,
        }
        int8 = None
        if self.config.export_int8:
            from engine.quantize import CALIBRATION_IMAGES, Int8Request

            pick = np.random.default_rng(self.config.seed).permutation(len(self.train_loader.images))
            int8 = Int8Request(self.preprocess.batch(self.train_loader.images[pick[:CALIBRATION_IMAGES]]),
                               self.preprocess.batch(self.val_loader.images), self.val_loader.labels.astype(np.int64),
                               self.config.int8_max_accuracy_drop)
        shown = self.val_loader.images[:ONNX_CHECK_IMAGES]  # ONNX is compared with Paddle on the model's own kind
        check = self.preprocess.batch(shown) if len(shown) else None
        return write_bundle(self.model, folder, self.preprocess, meta, device=self.device, int8=int8, check=check)


def measure_seconds_per_image(config: TrainConfig, num_classes: int = 10, device: str | None = None,
                              steps: int = 3) -> float:
    """Seconds per trained image of `config`'s backbone, image size and batch size on this device: a few
    timed training steps on random pixels after one untimed step (the pre-flight estimate's measurement),
    with soft labels when its augmentation mixes images, as its job's steps have."""
    with tempfile.TemporaryDirectory() as cache:
        trainer = Trainer(config, TrainData([str(index) for index in range(num_classes)], [], []), cache,
                          device=device)
    paddle.set_device(trainer.device)
    rng = np.random.default_rng(0)
    side = trainer.preprocess.decode_size
    images = rng.integers(0, 256, (config.batch_size, side, side, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, config.batch_size)
    trainer.build(steps_per_epoch=1)
    targets = np.eye(num_classes, dtype=np.float32)[labels] if config.policy().mixes else labels.astype(np.int64)
    batch = trainer.feed.put([trainer.preprocess.batch(images), targets])
    trainer.time_steps([batch])  # untimed: the first step allocates
    images_seen, seconds = trainer.time_steps([batch] * steps)
    return seconds / images_seen
