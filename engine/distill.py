"""Knowledge distillation from a trained model version (Hinton et al. 2015).

The teacher is a bundle as serving runs it. Bundles end in a softmax, and softmax(log p / T) equals
softmax(logits / T) (the log-sum-exp constant cancels), so the teacher's softened targets come from its
probabilities without its weights. It sees the student's augmented batch, resized to its own input size, on
the student's device.
"""
from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

from engine.bundle import Bundle, runtime_key
from engine.device import is_gpu
from engine.runtimes import ModelFiles, Session, open_session

FLOOR = 1e-12  # probabilities that float32 rounded to 0 still get a finite log


class Teacher:
    """A bundle answering training batches on the training device.

    On the CPU it runs as serving runs it: the runtime measured fastest for the bundle, on the calling thread.
    On a GPU it runs where the student is: the bundle's Paddle program loaded by `paddle.jit.load` (Paddle 3's
    own way to run a saved program in dygraph) in eval mode on the student's device, so it answers the batch
    the feed already put there, with no trip to the host and back each step, in the student's CUDA context
    and memory pool (ONNX Runtime's CUDA provider or a Paddle Inference GPU predictor take host arrays and
    bring a memory pool of their own)."""

    def __init__(self, bundle: Bundle, device: str = "cpu", cpu_threads: int = 1) -> None:
        self.input_size = bundle.preprocess.input_size
        self.classes = bundle.classes
        self.layer = program_on(bundle.files, device) if is_gpu(device) else None
        self.session = None if self.layer is not None else _session(bundle, device, cpu_threads)

    def answer(self, x: paddle.Tensor) -> paddle.Tensor:
        """log p of the teacher for a normalised NCHW batch of any size (resized to the teacher's), on the
        training device, as a tensor there."""
        x = self._resized(x)
        if self.layer is None:
            probabilities = paddle.to_tensor(self.session(x.numpy()))
        else:
            with paddle.no_grad():
                outputs = self.layer(x)
            probabilities = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
        return paddle.log(paddle.clip(probabilities.astype("float32"), FLOOR, 1.0))

    def log_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """`answer` for a batch of host arrays, as one."""
        return self.answer(paddle.to_tensor(batch)).numpy()

    def _resized(self, x: paddle.Tensor) -> paddle.Tensor:
        if x.shape[-1] == self.input_size and x.shape[-2] == self.input_size:
            return x
        return nn.functional.interpolate(x, size=[self.input_size, self.input_size], mode="bilinear",
                                         align_corners=False)


def _session(bundle: Bundle, device: str, cpu_threads: int) -> Session:
    """The bundle on the runtime measured fastest for `device` (ONNX Runtime unless it has no ONNX model)."""
    measured = bundle.measurement(runtime_key(device, cpu_threads)) or {}
    runtime = measured.get("runtime") or ("onnx" if bundle.files.onnx is not None else "paddle")
    if bundle.files.onnx is None:
        runtime = "paddle"
    return open_session(bundle.files, runtime, device, cpu_threads)


def program_on(files: ModelFiles, device: str) -> nn.Layer:
    """The bundle's Paddle program as a layer in eval mode, its weights on `device` (Paddle's current device
    is left as it was)."""
    before = paddle.get_device()
    try:
        paddle.set_device(device)
        layer = paddle.jit.load(str(files.model.with_suffix("")))
    finally:
        paddle.set_device(before)
    layer.eval()
    return layer


def distillation_loss(logits: paddle.Tensor, teacher_log_p: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """T^2 * KL(teacher || student) at temperature T, averaged over the batch."""
    student = nn.functional.log_softmax(logits.astype("float32") / temperature, axis=-1)
    target = nn.functional.softmax(teacher_log_p / temperature, axis=-1)
    target_log = nn.functional.log_softmax(teacher_log_p / temperature, axis=-1)
    return (target * (target_log - student)).sum(axis=-1).mean() * temperature ** 2
