"""Numpy batches onto the training device: every training path, validation included, turns its arrays into
tensors here.

On the CPU a batch is a plain `paddle.to_tensor`. On a GPU each array is copied into pinned (page-locked) host
memory and from there to the device without waiting (`Tensor.cuda(blocking=False)`), one batch ahead: the
copy of the next batch is queued while the model still runs on this one, and the host never waits for the
GPU to drain before a step, as a copy from pageable memory does. A pinned buffer is let go only after an
event recorded behind its copy has passed, so Paddle's pinned-memory cache never hands it out again while
the device still reads it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import paddle

from engine.device import gpu_index, is_gpu

Tensors = tuple[paddle.Tensor, ...]


@dataclass
class Staged:
    """A batch whose copy to the device is under way: its device tensors, the pinned arrays they are copied
    from, and an event that passes when the copy is done (None on the CPU)."""

    tensors: Tensors
    pinned: Tensors = ()
    copied: object | None = None

    def release(self) -> None:
        """Let the pinned memory go, once its copy is done (long since, when the step on it has run)."""
        if self.copied is not None:
            self.copied.synchronize()
        self.pinned, self.copied = (), None


class DeviceFeed:
    """numpy batch -> tensors on the training device, each array keeping its dtype and values."""

    def __init__(self, device: str) -> None:
        self.gpu = is_gpu(device)
        self.index = gpu_index(device) if self.gpu else None

    def stage(self, arrays: Sequence[np.ndarray]) -> Staged:
        """Start moving one batch's arrays to the device; on the CPU they are there at once."""
        if not self.gpu:
            return Staged(tuple(paddle.to_tensor(array) for array in arrays))
        pinned = tuple(paddle.to_tensor(array, place=paddle.CUDAPinnedPlace()) for array in arrays)
        tensors = tuple(array.cuda(self.index, blocking=False) for array in pinned)
        with paddle.device.device_guard(f"gpu:{self.index}"):  # an event belongs to the current device
            copied = paddle.device.Event()
            copied.record()
        return Staged(tensors, pinned, copied)

    def put(self, arrays: Sequence[np.ndarray]) -> Tensors:
        """One batch on the device now (for a single batch, where there is nothing to overlap)."""
        staged = self.stage(arrays)
        staged.release()
        return staged.tensors

    def batches(self, batches: Iterable[Sequence[np.ndarray]]) -> Iterator[Tensors]:
        """The batches as tensors on the device, the next one's copy started before this one is handed out.
        A consumer that stops early (an error, a cancelled run) leaves no pinned buffer behind in flight."""
        in_flight: deque[Staged] = deque()
        try:
            for arrays in batches:
                in_flight.append(self.stage(arrays))
                if len(in_flight) == 2:
                    yield in_flight[0].tensors
                    in_flight.popleft().release()
            while in_flight:
                yield in_flight[0].tensors
                in_flight.popleft().release()
        finally:
            for staged in in_flight:
                staged.release()
