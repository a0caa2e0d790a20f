"""Batch prediction speed and memory: the batch run's own loop (worker.batch.run_batch, run in this process as a
batch worker runs it: zip reading, decoding, preprocessing, the chosen runtime, the results files and a commit
per batch) against the in-process pipeline run in batches of the same size (Pillow decode + preprocessing + the
same runtime, on images already in memory), over the same 640x480 JPEGs with an untrained 224 px
mobilenet_v3_small, in alternating rounds; `ratio` is the best round of the batch run over the best round of the
pipeline (the target is >= 0.9). With `--memory`, one run over
`--images` files (50,000 for the target) reports the peak resident memory growth of this process while it runs
(target < 300 MB); the zip is written once from a few distinct JPEGs, stored uncompressed.

    .venv/bin/python benchmarks/batch_predict.py [--images 1000] [--rounds 2] [--batch-size 32]
        [--image-size 224] [--memory --images 50000] [--tiny]
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tiny_mode import parse_args  # noqa: E402

TINY = {"images": 24, "rounds": 1, "image_size": 32, "batch_size": 8, "distinct": 3}
BACKBONE = "mobilenet_v3_small"


def photos(distinct: int) -> list[bytes]:
    """A few distinct 640x480 JPEGs, like photos in their size and in the work of decoding them."""
    out = []
    for seed in range(distinct):
        rng = np.random.default_rng(seed)
        base = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).resize((640, 480), Image.BICUBIC)
        buffer = io.BytesIO()
        base.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def write_zip(path: Path, images: int, distinct: list[bytes]) -> None:
    """`images` files from the distinct JPEGs, written once, one at a time (never all in memory)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n in range(images):
            archive.writestr(f"folder{n // 1000}/photo{n}.jpg", distinct[n % len(distinct)])


def make_app(data_dir: Path, image_size: int, batch_size: int):
    """A studio on `data_dir` with an untrained bundle as version 1 (speed does not need accuracy)."""
    from engine.backbones import build_backbone
    from engine.bundle import Preprocess, write_bundle
    from webapp import create_app
    from webapp.config import serving_options
    from webapp.database import upgrade_schema
    from webapp.extensions import db
    from webapp.models import ModelVersion
    from webapp.release.services import on_new_version
    from webapp.storage import DataDir

    app = create_app({"DATA_DIR": str(data_dir), "BATCH_PREDICT_SIZE": batch_size,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'studio.sqlite3'}"})
    upgrade_schema(app)
    classes = [f"class {i}" for i in range(5)]
    write_bundle(build_backbone(BACKBONE, len(classes), pretrained=False), DataDir(data_dir).model(1),
                 Preprocess.for_input_size(image_size), {"classes": classes, "backbone": BACKBONE},
                 cpu_threads=serving_options(app.config).cpu_threads)
    with app.app_context():
        db.session.add(ModelVersion(version=1, backbone=BACKBONE, image_size=image_size, class_names=classes,
                                    val_acc=0.0, bundle_bytes=0))
        db.session.commit()
        on_new_version(1, promote=False, by="benchmark")
    return app


def batch_run(app, archive: Path, images: int) -> dict:
    """One batch run of the zip as a worker runs it (its row made as POST /api/batch-predictions makes it)."""
    from webapp.batch.inputs import INPUT
    from webapp.datasets.receive import ARCHIVE, ReceivedUpload
    from webapp.extensions import db
    from webapp.models import BatchPrediction
    from webapp.storage import data_dir
    from worker.batch import run_batch

    with app.app_context():
        row = BatchPrediction(source="upload", input_name=archive.name, version=1, top_k=5, total=images, summary={})
        db.session.add(row)
        db.session.commit()
        folder = data_dir().batch(row.id) / INPUT
        folder.mkdir(parents=True)
        (folder / ARCHIVE).hardlink_to(archive)
        ReceivedUpload(archive_filename=archive.name).save(folder)
        started = time.perf_counter()
        status = run_batch(row.id, "benchmark")
        elapsed = time.perf_counter() - started
        db.session.refresh(row)
        assert status == "succeeded" and row.done == images, (status, row.error)
        return {"images_per_second": row.summary["images_per_second"], "wall_seconds": round(elapsed, 2)}


def pipeline(app, distinct: list[bytes], images: int, batch_size: int) -> dict:
    """The in-process pipeline in batches: decode + preprocess + the runtime the batch run chose, nothing else."""
    from engine.images import open_checked
    from engine.runtimes import open_session
    from webapp.config import serving_options
    from worker.batch import load_model

    with app.app_context():
        loaded = load_model(1)
        options = serving_options(app.config)
    loaded.threads.close()
    session = open_session(loaded.bundle.files, loaded.runtime, "cpu", options.cpu_threads)
    rule = loaded.bundle.preprocess
    started = time.perf_counter()
    for start in range(0, images, batch_size):
        squares = [rule.square(open_checked(distinct[n % len(distinct)], 40_000_000, rule.decode_size)[0])
                   for n in range(start, min(images, start + batch_size))]
        session(rule.batch(np.stack(squares)))
    return {"images_per_second": round(images / (time.perf_counter() - started), 2), "runtime": loaded.runtime}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--distinct", type=int, default=8)
    parser.add_argument("--memory", action="store_true", help="one run, reporting its peak memory growth")
    args = parse_args(parser, TINY)
    distinct = photos(args.distinct)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        archive = root / "photos.zip"
        write_zip(archive, args.images, distinct)
        app = make_app(root / "data", args.image_size, args.batch_size)
        report = {"images": args.images, "batch_size": args.batch_size, "image_size": args.image_size,
                  "backbone": BACKBONE}
        if args.memory:
            before = rss_mb()
            run = batch_run(app, archive, args.images)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            report.update({"batch": run, "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                           "peak_growth_mb": round(peak - before, 1), "target_growth_mb": 300})
        else:
            runs, pipes = [], []
            for _ in range(args.rounds):
                pipes.append(pipeline(app, distinct, args.images, args.batch_size))
                runs.append(batch_run(app, archive, args.images))
            best_run = max(run["images_per_second"] for run in runs)
            best_pipe = max(pipe["images_per_second"] for pipe in pipes)
            report.update({"runtime": pipes[0]["runtime"], "batch_run": runs, "pipeline": pipes,
                           "ratio": round(best_run / best_pipe, 3), "target_ratio": 0.9})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
