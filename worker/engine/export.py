"""The model bundle: the contract between training and serving.

A folder with `model.json` + `model.pdiparams` (paddle.jit.save, softmax included) and `meta.json`.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import paddle
from paddle import nn
from paddle.static import InputSpec

from worker.engine.digest import file_digest

BUNDLE_FORMAT = 1
MODEL_PREFIX = "model"


class WithSoftmax(nn.Layer):
    def __init__(self, model: nn.Layer) -> None:
        super().__init__()
        self.model = model

    def forward(self, image):
        return nn.functional.softmax(self.model(image), axis=-1)


def write_bundle(model: nn.Layer, folder: Path, image_size: int, meta: dict) -> dict:
    """Save `model` (in eval mode) and its meta into `folder`; return the meta as written."""
    folder.mkdir(parents=True, exist_ok=False)
    model.eval()
    spec = [InputSpec([None, 3, image_size, image_size], "float32", "image")]
    paddle.jit.save(WithSoftmax(model), str(folder / MODEL_PREFIX), input_spec=spec)
    files = {path.name: file_digest(path) for path in sorted(folder.iterdir()) if path.is_file()}
    meta = {**meta, "format": BUNDLE_FORMAT, "paddle_version": paddle.__version__,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "files": files}
    (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return meta


def publish_bundle(staging: Path, target: Path) -> None:
    """Move a complete bundle into place in one rename, so a half-written one is never visible."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


def verify_bundle(folder: Path) -> dict:
    """Read meta.json and check every file's sha256; raise ValueError naming the bad file."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    for name, expected in meta["files"].items():
        path = folder / name
        if not path.is_file() or file_digest(path) != expected:
            raise ValueError(f"bundle file {name} is missing or does not match its sha256")
    return meta
