"""TensorRT for serving on a GPU: whether this Paddle build can offer it, and Paddle 3's own conversion of a
bundle's PIR program (`paddle.tensorrt`), cached on disk.

Bundles hold PIR programs (`model.json`), on which Paddle Inference's `enable_tensorrt_engine` builds no
engine; Paddle 3 converts such a program with `paddle.tensorrt.convert`, given the input's min/opt/max
shapes. The converted program is kept under a folder named by the bundle's digest and the settings, written
once and published in one rename, so every thread and process that serves the version reuses it.
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from engine.messages import N_, Message
from engine.runtimes import ModelFiles

TENSORRT_MODES = ("off", "fp16")
CONVERTED_PREFIX = "model"  # the converted program's files: model.json and model.pdiparams
# What Paddle's loader opens, and the flag naming the folder it opens it from (deploy/paddle_build.py links the
# same name in the TensorRT wheel's folder).
TENSORRT_LIBRARY = "libnvinfer.so"
TENSORRT_DIR_FLAG = "FLAGS_tensorrt_dir"


def tensorrt_missing() -> Message | None:
    """Why this Paddle build cannot offer TensorRT, or None when it can: Paddle compiled with TensorRT,
    its `paddle.tensorrt` converter importable, and the TensorRT libraries loadable."""
    from engine.device import load_paddle

    paddle = load_paddle()
    if not paddle.device.is_compiled_with_cuda():
        return Message(N_("this Paddle build has no CUDA"))
    if tuple(paddle.inference.get_trt_compile_version()) == (0, 0, 0):
        return Message(N_("this Paddle build was compiled without TensorRT"))
    unlinked = unlinked_library(tensorrt_wheel_folder())
    if unlinked is not None:
        return unlinked
    try:
        import paddle.tensorrt  # noqa: F401 (the converter; it imports the tensorrt package)
    except ImportError as exc:
        return Message(N_("Paddle's TensorRT converter cannot be imported: %(error)s"), {"error": str(exc)})
    return None


def tensorrt_wheel_folder() -> Path | None:
    """The folder of the tensorrt-cu12 wheel's libraries (site-packages/tensorrt_libs), or None without that
    wheel (a system TensorRT is then found on the library path, as Paddle always looked for it)."""
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def unlinked_library(folder: Path | None) -> Message | None:
    """Why Paddle cannot load TensorRT from the wheel's `folder`, or None (also without the wheel): Paddle's
    loader opens `libnvinfer.so` by that name, which the wheel ships only as `libnvinfer.so.<major>`; the
    install route (deploy/paddle_build.py --link-tensorrt) adds the name."""
    if folder is None or (folder / TENSORRT_LIBRARY).exists():
        return None
    return Message(N_("TensorRT's wheel has no %(library)s for Paddle to load (run `python deploy/paddle_build.py "
                      "gpu --link-tensorrt` to link it)"), {"library": TENSORRT_LIBRARY})


def point_paddle_at(paddle, folder: Path | None) -> None:
    """Have Paddle load TensorRT from the wheel's `folder` (its FLAGS_tensorrt_dir), unless there is no wheel or
    a folder was set already (a system TensorRT is found on the library path)."""
    if folder is not None and not paddle.get_flags([TENSORRT_DIR_FLAG])[TENSORRT_DIR_FLAG]:
        paddle.set_flags({TENSORRT_DIR_FLAG: str(folder)})


def engine_key(digest: str, input_size: int, max_batch: int, mode: str, device_model: str) -> str:
    """The cache key of a converted program: the bundle's digest and every setting the engine depends on."""
    parts = f"{digest}|{input_size}|{max_batch}|{mode}|{device_model}"
    return hashlib.sha256(parts.encode("utf-8")).hexdigest()[:24]


def converted(files: ModelFiles, cache: Path, key: str, input_size: int, max_batch: int) -> ModelFiles:
    """The bundle's program converted for TensorRT (fp16, batch 1..`max_batch`), from `cache`/`key` when
    another thread or process has converted it already; only Paddle Inference reads the result. Both the
    conversion and the predictor that runs it load TensorRT, from its wheel's folder when there is one."""
    from engine.device import load_paddle

    point_paddle_at(load_paddle(), tensorrt_wheel_folder())
    folder = cache / key
    if not (folder / f"{CONVERTED_PREFIX}.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / f"{key}.lock", "w") as lock:  # one conversion at a time; the others wait and reuse it
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (folder / f"{CONVERTED_PREFIX}.json").is_file():
                _convert(files, folder, input_size, max_batch)
    return ModelFiles(folder / f"{CONVERTED_PREFIX}.json", folder / f"{CONVERTED_PREFIX}.pdiparams", None)


def _convert(files: ModelFiles, folder: Path, input_size: int, max_batch: int) -> None:
    """Convert into a private folder and publish it in one rename (the first one to finish wins)."""
    from paddle.tensorrt.export import Input, PrecisionMode, TensorRTConfig, convert

    staging = folder.with_name(f"{folder.name}.{os.getpid()}.part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shape = (3, input_size, input_size)
    config = TensorRTConfig(inputs=[Input(min_input_shape=(1, *shape), optim_input_shape=(1, *shape),
                                          max_input_shape=(max_batch, *shape), input_data_type="float32")])
    config.precision_mode = PrecisionMode.FP16
    config.save_model_dir = str(staging / CONVERTED_PREFIX)
    convert(str(files.model.with_suffix("")), config)
    try:
        os.replace(staging, folder)
    except OSError:  # another process published first: theirs serves
        shutil.rmtree(staging, ignore_errors=True)
