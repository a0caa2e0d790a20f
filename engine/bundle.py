"""The model bundle, the contract between training and serving: written, verified and read only here.

A bundle is a folder with `model.json` + `model.pdiparams` (`paddle.jit.save`, softmax included) and
`meta.json`. Keys of `meta.json`:

read by serving   `format`, `classes` (in output order), `preprocess` (the rule below), `files` (sha256 of
                  every other file, checked before loading; `model.onnx` when the ONNX export succeeded),
                  `runtimes` (per device and CPU thread count: milliseconds of each runtime and the faster)
shown             `onnx` (`opset` and `max_abs_diff` against Paddle Inference, or `error` when there is none)
explanations      `explain` (see engine.explain: the feature map's size, exact or approximate, the ONNX head's
                  check); its files `explain.json`, `explain.pdiparams`, `explain.onnx` are in `files` too
provenance        `backbone`, `config` (the job's resolved options, seed included), `dataset` (id, name,
                  content_hash), `job_id`, `metrics` (best epoch, accuracy, per-class report, confusion,
                  history), `paddle_version`, `device`, `exported_at`

The preprocessing rule is code, not a description: training's evaluation and serving both call
`Preprocess.square` and `Preprocess.batch`, so the two cannot drift apart.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from engine.digest import file_digest
from engine.errors import StudioError
from engine.images import resize_shorter_and_crop
from engine.device import device_model, is_gpu
from engine.explain import check_explain_head, explain_files, exported_model, save_explain_head, split_of
from engine.messages import N_, Message
from engine.quantize import INT8_FILE, build_int8, refusal
from engine.runtimes import ONNX_FILE, ONNX_OPSET, ModelFiles, OnnxExportFailed, export_onnx, measure

if TYPE_CHECKING:
    from paddle import nn

    from engine.quantize import Int8Request

BUNDLE_FORMAT = 1
MODEL_FILES = ("model.json", "model.pdiparams")
PREPROCESS_RULE = "shorter-side-square-center-crop"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BundleRejected(StudioError):
    """A bundle that is missing, fails its sha256 check, or uses a rule this version does not know."""

    def __init__(self, message: str, params: dict | None = None) -> None:
        super().__init__("model_bundle_rejected", message, params)


@dataclass(frozen=True)
class Preprocess:
    """Upright RGB, shorter side resized to `decode_size` (bilinear) with a centre square crop, then a
    centre crop of `input_size`, scaled to 0..1 and normalised with `mean`/`std`, NCHW float32.
    Transparent pixels become white; JPEGs much larger than needed are decoded at a reduced scale."""

    input_size: int
    decode_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @classmethod
    def for_input_size(cls, input_size: int) -> "Preprocess":
        """The usual 256/224 margin around the crop."""
        return cls(input_size, int(round(input_size * 256 / 224)))

    def square(self, image: Image.Image) -> np.ndarray:
        """Decode step: uint8 decode_size x decode_size x 3 (what the training cache stores)."""
        return resize_shorter_and_crop(image, self.decode_size)

    def batch(self, squares: np.ndarray) -> np.ndarray:
        """uint8 N x decode_size x decode_size x 3 -> the model's float32 NCHW input."""
        return normalize(center_crop(squares, self.input_size), self.mean, self.std)

    def crop_region(self, width: int, height: int) -> dict:
        """The part of an upright `width` x `height` image the model sees, as fractions of its sides
        (`x`, `y`, `width`, `height`): the same rounding as `square` and `batch`."""
        scale = self.decode_size / min(width, height)
        resized = (max(self.decode_size, round(width * scale)), max(self.decode_size, round(height * scale)))
        inner = (self.decode_size - self.input_size) // 2
        left, top = (resized[0] - self.decode_size) // 2 + inner, (resized[1] - self.decode_size) // 2 + inner
        return {"x": left / resized[0], "y": top / resized[1], "width": self.input_size / resized[0],
                "height": self.input_size / resized[1]}

    def to_meta(self) -> dict:
        return {"rule": PREPROCESS_RULE, "input_size": self.input_size, "decode_size": self.decode_size,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_meta(cls, meta: dict) -> "Preprocess":
        if "rule" not in meta and "resize_shorter" in meta:  # bundles written before the rule had a name
            return cls(int(meta["center_crop"]), int(meta["resize_shorter"]), tuple(meta["mean"]), tuple(meta["std"]))
        if meta.get("rule") != PREPROCESS_RULE:
            raise ValueError(f"unknown preprocessing rule {meta.get('rule')!r}")
        return cls(int(meta["input_size"]), int(meta["decode_size"]), tuple(meta["mean"]), tuple(meta["std"]))


def center_crop(squares: np.ndarray, size: int) -> np.ndarray:
    """The centre `size` x `size` of one HWC square or of an NHWC batch of them (a view, no copy)."""
    offset = (squares.shape[-2] - size) // 2
    return squares[..., offset:offset + size, offset:offset + size, :]


def normalizing(mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the (scale, shift) that normalise a pixel in 0..255: pixel * scale + shift."""
    mean, std = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)
    return np.float32(1 / 255) / std, -mean / std


def normalize(batch: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 or float NHWC in 0..255 -> float32 NCHW, normalised with `mean`/`std` (into `out` when given).

    One multiply-add per channel straight into the NCHW output: no float copy of the whole batch and
    no transpose copy (about ten times faster than the textbook formula on a 224 px image)."""
    scale, shift = normalizing(mean, std)
    count, height, width, channels = batch.shape
    out = np.empty((count, channels, height, width), dtype=np.float32) if out is None else out
    for channel in range(channels):
        plane = out[:, channel]
        np.multiply(batch[..., channel], scale[channel], out=plane, dtype=np.float32, casting="unsafe")
        plane += shift[channel]
    return out


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk: what serving needs, and the whole meta for people."""

    folder: Path
    classes: list[str]
    preprocess: Preprocess
    meta: dict

    @property
    def files(self) -> ModelFiles:
        onnx = self.folder / ONNX_FILE if ONNX_FILE in self.meta["files"] else None
        int8 = self.folder / INT8_FILE if INT8_FILE in self.meta["files"] else None
        return ModelFiles(self.folder / MODEL_FILES[0], self.folder / MODEL_FILES[1], onnx, int8,
                          explain_files(self.folder, self.meta))

    @property
    def onnx_error(self) -> str | None:
        """Why the bundle has no ONNX model: a Message when the studio worded it, else the converter's words."""
        onnx = self.meta.get("onnx") or {}
        if self.files.onnx is not None or onnx.get("error") is None:
            return None
        if isinstance(onnx.get("error_template"), str):
            try:
                return Message(onnx["error_template"], onnx.get("error_params"))
            except (KeyError, ValueError, TypeError):
                pass
        return onnx["error"]

    def measurement(self, key: str) -> dict | None:
        """The runtime measurement for `key` (see `runtime_key`): from export, or recorded by a server."""
        if key in (self.meta.get("runtimes") or {}):
            return self.meta["runtimes"][key]
        try:
            return json.loads(self._measurement_file(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _measurement_file(self, key: str) -> Path:
        return self.folder / f"runtimes-{key}.json"

    def record_measurement(self, key: str, measured: dict) -> dict:
        """Keep a measurement made at load time beside the bundle; the first process to record wins, so
        every process of every server agrees on the choice. Returns the measurement that holds."""
        target = self._measurement_file(key)
        partial = target.with_name(f"{target.name}.{os.getpid()}.part")
        partial.write_text(json.dumps(measured), encoding="utf-8")
        try:
            os.link(partial, target)
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
        return self.measurement(key) or measured


def runtime_key(device: str, cpu_threads: int) -> str:
    """Measurements hold for one kind of device and one number of CPU threads per session, and on a GPU for
    one GPU model ("gpu-nvidia-h100-80gb-hbm3-1t"): a GPU worker's choice never applies to CPU serving, nor one
    GPU's to another. CPUs are not told apart by model (the key of bundles made before GPUs were told apart);
    the measurement itself names the model (`where`)."""
    if not is_gpu(device):
        return f"cpu-{cpu_threads}t"
    return f"gpu-{model_slug(device_model(device))}-{cpu_threads}t"


def model_slug(name: str) -> str:
    """A device model's name as a key part: lower case, words joined by '-'."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())[:48] or "unknown"


def onnx_failure(exc: Exception) -> dict:
    """Why the ONNX export failed, as the meta keeps it: the English `error`, and its template and parameters
    when the studio worded it (for the web app to show it in the reader's language)."""
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, Message):
        form = reason.stored()
        return {"error": str(reason), "error_template": form["template"], "error_params": form["params"]}
    return {"error": str(exc)}


def write_bundle(model: "nn.Layer", folder: Path, preprocess: Preprocess, meta: dict, device: str = "cpu",
                 cpu_threads: int = 1, int8: "Int8Request | None" = None, check: np.ndarray | None = None) -> dict:
    """Save `model` (in eval mode, softmax appended, its last feature map a second output) and its explain
    head into the new `folder`, convert both to ONNX (and, when asked, the model to a judged int8 variant),
    measure the runtimes on `device`, and write the meta; return it. The ONNX model is compared with Paddle's
    on `check`, preprocessed images of the model's own kind (the trainer's validation images); without them on a
    fixed noise batch, whose extreme pixels make the two differ more than any photo does."""
    import paddle
    from paddle.static import InputSpec

    folder.mkdir(parents=True, exist_ok=False)
    model.eval()
    size = preprocess.input_size
    spec = [InputSpec([None, 3, size, size], "float32", "image")]
    split = split_of(meta.get("backbone"))
    paddle.jit.save(exported_model(model, split), str(folder / "model"), input_spec=spec)
    head = save_explain_head(model, split, folder, size) if split is not None else None
    files = ModelFiles(folder / MODEL_FILES[0], folder / MODEL_FILES[1], folder / ONNX_FILE)
    sessions: dict = {}  # the comparison's CPU sessions, reused by the measurement when it runs the same way
    try:
        along = ((head.files, head.onnx),) if head is not None else ()
        onnx = {"opset": ONNX_OPSET, "max_abs_diff": export_onnx(files, files.onnx, size, sessions, check=check,
                                                                     along=along)}
    except OnnxExportFailed as exc:
        onnx, files = onnx_failure(exc), ModelFiles(files.model, files.params, None)
    int8_report = None
    if int8 is not None:
        int8_report = (build_int8(files.onnx, int8, cpu_threads) if files.onnx is not None
                       else {"used": False, **refusal(Message(N_("the model has no ONNX version to quantize")))})
        if int8_report["used"]:
            files = ModelFiles(files.model, files.params, files.onnx, folder / INT8_FILE)
    explain = (check_explain_head(head, files.onnx is not None) if head is not None
               else {"error": f"unknown backbone {meta.get('backbone')!r}"})
    same_way = device == "cpu" and cpu_threads == 1  # how export_onnx opened its sessions
    measured = measure(files, size, device, cpu_threads, sessions=sessions if same_way else None)
    digests = {path.name: file_digest(path) for path in sorted(folder.iterdir()) if path.is_file()}
    meta = {"format": BUNDLE_FORMAT, **meta, "preprocess": preprocess.to_meta(), "onnx": onnx, "int8": int8_report,
            "explain": explain,
            "runtimes": {runtime_key(device, cpu_threads): measured}, "paddle_version": paddle.__version__,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": digests}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return meta


def publish_bundle(staging: Path, target: Path) -> None:
    """Move a complete bundle into place in one rename, so a half-written one is never visible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def read_meta(folder: Path) -> dict:
    """The bundle's meta.json, unverified (for showing provenance); raises BundleRejected."""
    try:
        return json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise BundleRejected("The bundle in %(folder)s has no readable meta.json.", {"folder": folder.name}) from None


def read_bundle(folder: Path) -> Bundle:
    """Read meta.json and check every file's sha256 and the format; raise BundleRejected naming the fault."""
    meta = read_meta(folder)
    if meta.get("format") != BUNDLE_FORMAT:
        raise BundleRejected("The bundle format %(format)s is not known to this version.",
                             {"format": repr(meta.get("format"))})
    files = meta.get("files") or {}
    for name in (*MODEL_FILES, *files):
        path = folder / name
        if name not in files or not path.is_file() or file_digest(path) != files[name]:
            raise BundleRejected("The bundle failed its integrity check: %(file)s is missing or does not "
                                 "match its sha256.", {"file": name})
    try:
        return Bundle(folder, list(meta["classes"]), Preprocess.from_meta(meta["preprocess"]), meta)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleRejected("The bundle's meta.json is incomplete: %(problem)s.", {"problem": str(exc)}) from None
