"""Knowledge distillation from a trained model version (Hinton et al. 2015).

The teacher is a bundle as serving runs it. Bundles end in a softmax, and softmax(log p / T) equals
softmax(logits / T) (the log-sum-exp constant cancels), so the teacher's softened targets come from its
probabilities without its weights. It sees the student's augmented batch, resized to its own input size.
"""
from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

from engine.bundle import Bundle, runtime_key
from engine.runtimes import open_session

FLOOR = 1e-12  # probabilities that float32 rounded to 0 still get a finite log


class Teacher:
    """A bundle answering training batches on the calling thread."""

    def __init__(self, bundle: Bundle, device: str = "cpu", cpu_threads: int = 1) -> None:
        measured = bundle.measurement(runtime_key(device, cpu_threads)) or {}
        runtime = measured.get("runtime") or ("onnx" if bundle.files.onnx is not None else "paddle")
        if bundle.files.onnx is None:
            runtime = "paddle"
        self.session = open_session(bundle.files, runtime, device, cpu_threads)
        self.input_size = bundle.preprocess.input_size
        self.classes = bundle.classes

    def log_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """log p of the teacher for a normalised NCHW batch of any size (resized to the teacher's)."""
        if batch.shape[-1] != self.input_size or batch.shape[-2] != self.input_size:
            resized = nn.functional.interpolate(paddle.to_tensor(batch), size=[self.input_size, self.input_size],
                                                mode="bilinear", align_corners=False)
            batch = resized.numpy()
        return np.log(np.clip(self.session(batch), FLOOR, 1.0)).astype(np.float32)


def distillation_loss(logits: paddle.Tensor, teacher_log_p: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """T^2 * KL(teacher || student) at temperature T, averaged over the batch."""
    student = nn.functional.log_softmax(logits.astype("float32") / temperature, axis=-1)
    target = nn.functional.softmax(teacher_log_p / temperature, axis=-1)
    target_log = nn.functional.log_softmax(teacher_log_p / temperature, axis=-1)
    return (target * (target_log - student)).sum(axis=-1).mean() * temperature ** 2
