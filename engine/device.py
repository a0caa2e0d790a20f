"""Pick the device Paddle runs on: the GPU when this build has CUDA and one is visible."""
from __future__ import annotations


def load_paddle():
    """Import Paddle without its C++ signal handlers: they turn the polite SIGTERM with which servers and
    workers are stopped into a crash report and an abort."""
    import paddle

    paddle.disable_signal_handler()
    return paddle


def pick_device() -> str:
    """Return 'gpu:0' on a CUDA build with a visible GPU, else 'cpu'."""
    paddle = load_paddle()
    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu:0"
    return "cpu"


def describe_device() -> dict:
    return {"paddle": load_paddle().__version__, "device": pick_device()}
