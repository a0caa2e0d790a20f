"""Digests of files, read in blocks."""
from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path | str, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
