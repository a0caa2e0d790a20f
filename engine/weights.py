"""Pretrained weights: Paddle's cache, offline import, and a fast, clear failure when missing.

    python -m engine.weights list
    python -m engine.weights import resnet18 /media/usb/resnet18.pdparams
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from engine.backbones import BACKBONES
from engine.digest import file_digest
from engine.errors import StudioError

ZOO = "https://paddle-hapi.bj.bcebos.com/models/"


class PretrainedWeightsMissing(StudioError):
    """Weights are not in the cache and cannot be downloaded."""

    def __init__(self, message: str, params: dict | None = None) -> None:
        super().__init__("pretrained_weights_missing", message, params)


def weights_dir() -> Path:
    return Path(os.environ.get("PADDLE_WEIGHTS_DIR") or Path.home() / ".cache/paddle/hapi/weights")


def weights_path(backbone: str) -> Path:
    return weights_dir() / BACKBONES[backbone].weights_file


def weights_status() -> dict[str, bool]:
    """Which backbones have pretrained weights on this machine."""
    return {backbone: weights_path(backbone).is_file() for backbone in BACKBONES}


def _reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlparse(url).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_weights(backbone: str) -> Path:
    """Return the local weights file, downloading it from Paddle's zoo when online."""
    path = weights_path(backbone)
    if path.is_file():
        return path
    file_name, md5 = BACKBONES[backbone].weights_file, BACKBONES[backbone].weights_md5
    where = {"backbone": backbone, "file": file_name, "folder": str(weights_dir())}
    if md5 is None:
        raise PretrainedWeightsMissing(
            "No pretrained weights for %(backbone)s on this machine. Place '%(file)s' in %(folder)s (or run "
            "`python -m engine.weights import %(backbone)s FILE`), or train without pretrained weights.", where)
    url = ZOO + file_name
    if not _reachable(url):
        raise PretrainedWeightsMissing(
            "Pretrained weights for %(backbone)s are not on this machine and Paddle's model zoo cannot be "
            "reached. Place '%(file)s' in %(folder)s (or run `python -m engine.weights import %(backbone)s "
            "FILE`), or train without pretrained weights.", where)
    from paddle.utils.download import get_weights_path_from_url

    return Path(get_weights_path_from_url(url, md5))


def import_weights(backbone: str, source: Path) -> Path:
    """Copy a weights file into the cache after checking it against Paddle's published md5."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    spec = BACKBONES[backbone]
    if spec.weights_md5 and file_digest(source, "md5") != spec.weights_md5:
        raise ValueError(f"{source} is not Paddle's {spec.weights_file} (md5 mismatch)")
    target = weights_path(backbone)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show which pretrained weights are present")
    add = commands.add_parser("import", help="copy a weights file into the cache")
    add.add_argument("backbone", choices=sorted(BACKBONES))
    add.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "list":
        for backbone, present in weights_status().items():
            print(f"{backbone:22} {'present' if present else 'missing'}  {weights_path(backbone)}")
        return 0
    try:
        print(f"imported into {import_weights(args.backbone, args.file)}")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
