"""Pick the device Paddle runs on (the GPU when this build has CUDA and one is visible), and read a device's
name: `cpu`, or `gpu:<index>`. Every reader of a device name asks here. `print_probe` proves the device by
running kernels on it (a worker runs it in a child process, worker.beacon)."""
from __future__ import annotations

import functools
import json
import logging

from engine.messages import N_, Message

log = logging.getLogger(__name__)
DEVICE_KINDS = ("cpu", "gpu")
# The device of a worker whose Paddle could not run a kernel anywhere (or could not be asked).
NO_DEVICE = "unknown"
# The probe's kernels work on tensors of ones, so each result is known: a sum over KERNEL_SIZE terms.
KERNEL_SIZE = 8


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


@functools.cache
def pick_device() -> str:
    """Return 'gpu:0' on a CUDA build whose first visible GPU runs the probe's kernels, else 'cpu': a broken
    CUDA install (cuDNN missing, say) trains on the CPU rather than failing every job. Asked once per
    process."""
    report = probe_kernels()
    if is_gpu(report["device"]):
        return report["device"]
    if report["problem"]:
        log.warning("%s; this process runs on the CPU", report["problem"])
    return "cpu"


def describe_device() -> dict:
    return {"paddle": load_paddle().__version__, "device": pick_device()}


def _run_kernels(paddle, device: str) -> None:
    """Run a matmul and a 3x3 conv2d (through cuDNN on a GPU) on `device` and read both results back, which
    waits for the device; raise when either fails or computes a wrong value. Paddle's current device is
    left as it was."""
    before = paddle.get_device()
    try:
        paddle.set_device(device)
        ones = paddle.ones([KERNEL_SIZE, KERNEL_SIZE], dtype="float32")
        product = paddle.matmul(ones, ones).numpy()
        image, kernel = paddle.ones([1, 1, KERNEL_SIZE, KERNEL_SIZE]), paddle.ones([1, 1, 3, 3])
        convolved = paddle.nn.functional.conv2d(image, kernel).numpy()
    finally:
        paddle.set_device(before)
    if not ((product == KERNEL_SIZE).all() and (convolved == 9).all()):
        raise ArithmeticError(f"the kernels on {device} computed wrong values")


def in_words(exc: BaseException) -> str:
    """An exception in words: its class and the first line of its message (Paddle's run to many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _gpu_facts(paddle) -> dict:
    """The GPU and the CUDA and cuDNN versions, as this Paddle build reports them."""
    return {"gpu_name": device_model("gpu:0"), "cuda": str(paddle.version.cuda()),
            "cudnn": str(paddle.version.cudnn())}


def probe_kernels() -> dict:
    """The device this machine can train on, proved by kernels: `{"device", "problem", "paddle", ...}`.

    On a CUDA build with a visible GPU, kernels on gpu:0 (adding `gpu_name`, `cuda`, `cudnn`); when they
    fail, `cpu` with the failure as `problem`, so the worker still trains, on its CPU. Elsewhere kernels on
    the CPU; a Paddle that cannot run them (or be imported) gives NO_DEVICE and the reason."""
    try:
        paddle = load_paddle()
    except Exception as exc:  # a broken install: its reason is the answer
        return {"device": NO_DEVICE, "problem": in_words(exc), "paddle": None}
    report = {"device": "cpu", "problem": None, "paddle": paddle.__version__}
    try:
        if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
            report.update(_gpu_facts(paddle))
            _run_kernels(paddle, "gpu:0")
            return {**report, "device": "gpu:0"}
    except Exception as exc:
        report["problem"] = f"gpu:0 failed its check: {in_words(exc)}"
    try:
        _run_kernels(paddle, "cpu")
    except Exception as exc:
        return {**report, "device": NO_DEVICE, "problem": "; ".join(filter(None, (report["problem"],
                                                                               f"cpu: {in_words(exc)}")))}
    return report


def print_probe() -> None:
    """Print probe_kernels' report as one line of JSON, the last line of stdout (worker.beacon reads it)."""
    print(json.dumps(probe_kernels()), flush=True)


@functools.lru_cache(maxsize=8)
def device_model(device: str) -> str:
    """The model name of `device`: the GPU's as CUDA reports it, the CPU's from /proc/cpuinfo (or the
    platform), so a measurement says where it was taken."""
    if is_gpu(device):
        return str(load_paddle().device.cuda.get_device_name(gpu_index(device)))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "cpu"


def serving_device(asked: str, gpu: int = 0) -> tuple[str, Message | None]:
    """The device a web process serves on and, when it is not the one asked for, why.

    The CPU unless `asked` is "gpu" (the training GPU is the workers'); a GPU only on a CUDA build that
    sees one (`gpu` is its index), else the CPU with the reason."""
    if asked != "gpu":
        return "cpu", None
    paddle = load_paddle()
    if not paddle.device.is_compiled_with_cuda():
        return "cpu", Message(N_("SERVING_DEVICE=gpu, but this Paddle build has no CUDA; serving on the CPU."))
    count = paddle.device.cuda.device_count()
    if gpu >= count:
        return "cpu", Message(N_("SERVING_DEVICE=gpu, but GPU %(index)s is not visible (%(count)s GPUs are); "
                                 "serving on the CPU."), {"index": gpu, "count": count})
    return f"gpu:{gpu}", None
