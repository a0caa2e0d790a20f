"""Explanations: class activation maps, the backbone's head applied at each location of its last feature map.

The bundle's model outputs the feature map beside the probabilities (computed anyway, so free when nobody
fetches it), and the bundle keeps the explain head, a small program from that map to the class maps, as
Paddle (`explain.json` + `explain.pdiparams`) and, when its conversion passes the same check as the model's,
ONNX (`explain.onnx`). meta.json's `explain` entry says what the maps are:

    {"feature_size": [h, w], "channels": C, "exact": bool, "onnx_max_abs_diff": float | null,
     "onnx_error": str | null}

or, when the bundle cannot explain, `{"error": ...}` (with `error_template`/`error_params` when worded here).
`exact` is true for a linear head (resnet: the maps' mean over locations is the logits) and false for the
non-linear heads of mobilenet_v3 and PP-LCNet, where the same construction is an approximation.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from engine.backbones import BACKBONES, Split
from engine.messages import N_, Message
from engine.runtimes import ExplainFiles, ModelFiles, OnnxExportFailed, compare_onnx

if TYPE_CHECKING:
    from paddle import nn

EXPLAIN_FILES = ("explain.json", "explain.pdiparams")
EXPLAIN_ONNX_FILE = "explain.onnx"


def split_of(backbone: str | None) -> Split | None:
    """The backbone's split, or None for a model the registry does not know (it cannot explain)."""
    spec = BACKBONES.get(backbone or "")
    return spec.split if spec else None


def exported_model(model: "nn.Layer", split: Split | None) -> "nn.Layer":
    """What `paddle.jit.save` writes: `model` with a softmax after it (the bundle outputs probabilities) and,
    when `split` is known, the last feature map as a second output."""
    from paddle import nn

    class WithSoftmax(nn.Layer):
        def __init__(self, inner: nn.Layer) -> None:
            super().__init__()
            self.model = inner

        def forward(self, image):
            return nn.functional.softmax(self.model(image), axis=-1)

    class WithFeatures(WithSoftmax):
        def forward(self, image):
            features = split.features(self.model, image)
            return nn.functional.softmax(split.classify(self.model, features), axis=-1), features

    return WithFeatures(model) if split is not None else WithSoftmax(model)


def feature_shape(model: "nn.Layer", split: Split, input_size: int) -> tuple[int, int, int]:
    """(C, h, w) of the last feature map for an `input_size` square input."""
    import paddle

    with paddle.no_grad():
        shape = split.features(model, paddle.zeros([1, 3, input_size, input_size])).shape
    return int(shape[1]), int(shape[2]), int(shape[3])


@dataclass(frozen=True)
class SavedHead:
    """The explain head as saved, before its ONNX version is checked: its Paddle files, where its ONNX version
    goes, its feature map's shape and the meta entry so far."""

    files: ModelFiles
    onnx: Path
    shape: tuple[int, int, int]
    entry: dict


def save_explain_head(model: "nn.Layer", split: Split, folder: Path, input_size: int) -> SavedHead:
    """Save the explain head (Paddle) into `folder`; its ONNX version is converted along with the model's."""
    import paddle
    from paddle import nn
    from paddle.static import InputSpec

    class ExplainHead(nn.Layer):
        def __init__(self, inner: nn.Layer) -> None:
            super().__init__()
            self.model = inner

        def forward(self, features):
            return split.at_each_location(self.model, features)

    channels, height, width = feature_shape(model, split, input_size)
    spec = [InputSpec([None, channels, height, width], "float32", "features")]
    paddle.jit.save(ExplainHead(model), str(folder / "explain"), input_spec=spec)
    entry = {"feature_size": [height, width], "channels": channels, "exact": split.exact,
             "onnx_max_abs_diff": None, "onnx_error": None}
    files = ModelFiles(folder / EXPLAIN_FILES[0], folder / EXPLAIN_FILES[1], None)
    return SavedHead(files, folder / EXPLAIN_ONNX_FILE, (channels, height, width), entry)


def check_explain_head(head: SavedHead, model_has_onnx: bool) -> dict:
    """Keep the head's ONNX version only when the model has one and it matches the Paddle head (the same check
    as the model's); return meta.json's `explain` entry."""
    entry = dict(head.entry)
    if not model_has_onnx:
        head.onnx.unlink(missing_ok=True)
        entry["onnx_error"] = str(Message(N_("the model has no ONNX version")))
        return entry
    if not head.onnx.is_file():
        entry["onnx_error"] = str(Message(N_("paddle2onnx could not convert the explain head")))
        return entry
    check = np.random.default_rng(1234).standard_normal((4, *head.shape)).astype(np.float32)
    try:
        entry["onnx_max_abs_diff"] = compare_onnx(head.files, head.onnx, check)
    except OnnxExportFailed as exc:
        entry["onnx_error"] = str(exc.args[0]) if exc.args else str(exc)
    return entry


def explain_files(folder: Path, meta: dict) -> ExplainFiles | None:
    """The bundle's explain head files as meta.json lists them (None when it has none)."""
    files = meta.get("files") or {}
    if not all(name in files for name in EXPLAIN_FILES):
        return None
    onnx = folder / EXPLAIN_ONNX_FILE if EXPLAIN_ONNX_FILE in files else None
    return ExplainFiles(folder / EXPLAIN_FILES[0], folder / EXPLAIN_FILES[1], onnx)


def unavailable(meta: dict, runtime: str) -> Message | None:
    """Why the bundle cannot explain on `runtime` (a translatable Message), or None when it can."""
    entry = meta.get("explain")
    if isinstance(entry, dict) and entry.get("error"):
        return Message(N_("this model cannot be explained: %(problem)s"), {"problem": entry["error"]})
    if not isinstance(entry, dict) or explain_files(Path("."), meta) is None:
        return Message(N_("this model version was exported before explanations existed; train it again to "
                          "explain its answers"))
    if runtime != "paddle" and EXPLAIN_ONNX_FILE not in (meta.get("files") or {}):
        return Message(N_("the explain head has no ONNX version (%(problem)s)"),
                       {"problem": entry.get("onnx_error") or "-"})
    return None


def normalised(class_map: np.ndarray) -> np.ndarray:
    """One class's map scaled to 0..1 (its lowest cell 0, its highest 1; a flat map is 1 everywhere)."""
    low, high = float(class_map.min()), float(class_map.max())
    if not high > low:
        return np.ones_like(class_map, dtype=np.float32)
    return ((class_map - low) / (high - low)).astype(np.float32)


# The heat map's colours, low to high (position, RGBA): cool and clear where the class had little say, warm and
# more opaque where it had most, so the image stays visible under the overlay.
HEAT_STOPS = ((0.0, (49, 54, 149, 0)), (0.35, (116, 173, 209, 70)), (0.65, (254, 224, 144, 130)),
              (1.0, (215, 48, 39, 190)))


def heat_map_png(scaled: np.ndarray) -> bytes:
    """A 0..1 map as an RGBA PNG of the same grid (one pixel per cell), for a client to upscale smoothly."""
    positions = [stop[0] for stop in HEAT_STOPS]
    channels = [np.interp(scaled, positions, [stop[1][c] for stop in HEAT_STOPS]) for c in range(4)]
    pixels = np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="PNG")
    return out.getvalue()
