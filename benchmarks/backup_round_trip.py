"""Backup and restore of a studio with large files: the time to write, verify and restore the archive, and
this process's peak memory growth over its size before the backup (the archive is streamed, never held in
memory: the growth should stay flat whatever the data's size). Prints JSON.

    .venv/bin/python benchmarks/backup_round_trip.py [--total-mb 512] [--file-mb 16] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from tests.stack import app_config  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.backup import services  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import ModelVersion  # noqa: E402
from webapp.storage import DataDir  # noqa: E402

TINY = {"total_mb": 2, "file_mb": 1}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def populated(folder: Path, total_mb: float, file_mb: float):
    """A migrated studio whose model versions hold `total_mb` of random bytes in files of `file_mb`."""
    app = create_app(app_config(folder))
    upgrade_schema(app)
    count = max(1, int(total_mb // file_mb))
    with app.app_context():
        for version in range(1, count + 1):
            bundle = DataDir(folder).model(version)
            bundle.mkdir(parents=True)
            with open(bundle / "model.pdiparams", "wb") as stream:
                for _ in range(int(file_mb)):
                    stream.write(os.urandom(1024 * 1024))
            db.session.add(ModelVersion(version=version, backbone="resnet18", image_size=32, class_names=["a"],
                                        val_acc=1.0, bundle_bytes=int(file_mb * 2**20)))
        db.session.commit()
    return app


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-mb", type=float, default=512)
    parser.add_argument("--file-mb", type=float, default=16)
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory(prefix="backup-bench-") as work:
        source = populated(Path(work) / "source", args.total_mb, args.file_mb)
        archive = Path(work) / "studio.tar"
        before = peak_mb()
        with source.app_context():
            manifest, create_seconds = timed(services.create_backup, archive)
            checked, verify_seconds = timed(services.verify_backup, archive)
        target = create_app(app_config(Path(work) / "target"))
        with target.app_context():
            _, restore_seconds = timed(services.restore_backup, archive)
        size_mb = archive.stat().st_size / 2**20
        print(json.dumps({
            "archive_mb": round(size_mb, 1), "files": len(manifest.entries), "whole": not checked.problems,
            "create_seconds": create_seconds, "verify_seconds": verify_seconds, "restore_seconds": restore_seconds,
            "create_mb_per_s": round(size_mb / max(create_seconds, 1e-3), 1),
            "peak_growth_mb": round(peak_mb() - before, 1)}, indent=1))


if __name__ == "__main__":
    main()
