"""Pick the device Paddle trains on: the GPU when this build has CUDA and one is visible."""
from __future__ import annotations

import paddle


def pick_device() -> str:
    """Return 'gpu:0' on a CUDA build with a visible GPU, else 'cpu'."""
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu:0"
    return "cpu"


def describe_device() -> dict:
    return {"paddle": paddle.__version__, "device": pick_device()}
