"""Pick the device Paddle runs on (the GPU when this build has CUDA and one is visible), and read a device's
name: `cpu`, or `gpu:<index>`. Every reader of a device name asks here."""
from __future__ import annotations

DEVICE_KINDS = ("cpu", "gpu")


def device_kind(device: str | None) -> str | None:
    """'gpu' for 'gpu:0', 'cpu' for 'cpu'; None for a device not found yet or unknown."""
    kind = (device or "").partition(":")[0]
    return kind if kind in DEVICE_KINDS else None


def is_gpu(device: str | None) -> bool:
    return device_kind(device) == "gpu"


def gpu_index(device: str) -> int:
    """The index of a GPU device ('gpu:1' -> 1; a bare 'gpu' is the first)."""
    return int(device.partition(":")[2] or 0)


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
