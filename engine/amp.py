"""Mixed precision on the GPU: which half-precision type a run computes in, its loss scaler, the scaler's state
as a checkpoint keeps it, and the decoupled weight decay that must follow the scaler's skipped steps.

bf16 keeps float32's exponent range, so its gradients do not underflow and it needs no loss scaler; fp16 (O1:
white-listed ops in half precision, weights in float32) needs one. The CPU trains in float32, as it always did.
"""
from __future__ import annotations

import logging

import numpy as np
import paddle

from engine.device import is_gpu

log = logging.getLogger(__name__)

BFLOAT16, FLOAT16 = "bfloat16", "float16"


def amp_dtype(device: str, bfloat16_supported: bool) -> str | None:
    """The half-precision type a run on `device` computes in: bf16 where the GPU supports it, fp16 on other
    GPUs, None (float32, no AMP) on the CPU."""
    if not is_gpu(device):
        return None
    return BFLOAT16 if bfloat16_supported else FLOAT16


def device_amp_dtype(device: str) -> str | None:
    """`amp_dtype` of this machine's `device`, asking Paddle whether the GPU computes in bf16."""
    return amp_dtype(device, is_gpu(device) and paddle.amp.is_bfloat16_supported(device))


class LossScaler(paddle.amp.GradScaler):
    """Paddle's dynamic loss scaler, with its scale update redone: Paddle 3.3's prints the scale through
    `float()` of a one-element tensor, which numpy 2 refuses, so the first inf/nan step would crash the run."""

    def _update(self) -> None:
        """Halve the scale after inf/nan gradients (every `decr_every_n_nan_or_inf` of them), double it after
        `incr_every_n_steps` finite steps in a row: Paddle's rule, logged instead of printed."""
        if not self._enable:
            return
        if self._cache_found_inf:
            self._incr_count, self._decr_count = 0, self._decr_count + 1
            if self._decr_count == self._decr_every_n_nan_or_inf:
                self._scale, self._decr_count = self._scale * self._decr_ratio, 0
                log.debug("inf/nan gradients: step skipped, loss scale lowered")
        else:
            self._decr_count, self._incr_count = 0, self._incr_count + 1
            if self._incr_count == self._incr_every_n_steps:
                self._scale, self._incr_count = self._scale * self._incr_ratio, 0


def loss_scaler(dtype: str | None) -> LossScaler | None:
    """A dynamic loss scaler for fp16; None for bf16 and float32, whose gradients do not underflow."""
    return LossScaler() if dtype == FLOAT16 else None


def scaler_state(scaler) -> dict | None:
    """The scaler's state (scale, step counters, ratios) as JSON values for a checkpoint; None without one."""
    if scaler is None:
        return None
    state = dict(scaler.state_dict())
    if "scale" in state:
        state["scale"] = float(np.asarray(state["scale"]).reshape(-1)[0])
    return state


def restore_scaler(scaler, state: dict) -> None:
    """Load a state `scaler_state` wrote into `scaler` (Paddle keeps the scale as a one-element array)."""
    scaler.load_state_dict({**state, "scale": np.array([state["scale"]], dtype=np.float32)})


def decay_factor(learning_rate: float, decay: float, found_inf: paddle.Tensor | None):
    """What decoupled weight decay multiplies the weights by this step: 1 - lr * decay, or, when the loss
    scaler found inf/nan gradients (`found_inf`, a one-element bool tensor) and will skip the update, 1.

    With `found_inf` the factor is computed on the device, so choosing it costs no wait for the GPU: the
    optimizer's own read of `found_inf` stays the step's only one."""
    if found_inf is None:
        return 1.0 - learning_rate * decay
    stepped = 1.0 - found_inf.astype("float32")
    return 1.0 - (learning_rate * decay) * stepped
