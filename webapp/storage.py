"""The layout of DATA_DIR, computed here only: every other module asks this one where things live."""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from flask import current_app


KEY_BYTES = 32
MODEL_STAGING_PREFIX = ".staging-"  # bundles being exported, under models/


def _read_key(path: Path) -> bytes:
    """A key file's bytes; a file of the wrong length (cut short, or replaced by hand) stops the caller with
    what to do, rather than being used (an empty Redis password is no password) or made again."""
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise RuntimeError(
            f"{path} holds {len(key)} bytes, not a key of {KEY_BYTES}: it was cut short or replaced. Restore it "
            f"from a backup of DATA_DIR, or delete it to have a new key made at the next start (what the old key "
            f"protected, such as sign-in sessions or signed checkpoints, is then no longer accepted).")
    return key


def _link_unless_present(staged: str, path: Path) -> None:
    """Give a fully written file its name unless another process gave that name a file first (a hard link
    never replaces); on a filesystem without hard links, rename it into place."""
    try:
        os.link(staged, path)
    except FileExistsError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        os.replace(staged, path)


def write_whole(path: Path, content: bytes, replace: bool = True) -> None:
    """Give `path` all of `content` at once, readable by its owner only (0600): a reader never sees half of
    it. The content is written to a temporary file beside it first; `replace=False` keeps a file another
    process put there first (keys, which every process must share)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        if replace:
            os.replace(staged, path)
        else:
            _link_unless_present(staged, path)
    finally:
        Path(staged).unlink(missing_ok=True)


@dataclass(frozen=True)
class DatasetFiles:
    """The layout inside one dataset's folder, or inside the staging folder that becomes it: the stored
    images under `images/`, a JPEG thumbnail per image content under `thumbs/`."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def thumbs(self) -> Path:
        return self.root / "thumbs"

    def image(self, stored_name: str) -> Path:
        return self.images / stored_name

    def thumbnail(self, sha256: str) -> Path:
        """The thumbnail of the image whose content hash is `sha256` (one per content in a dataset)."""
        return self.thumbs / f"{sha256}.jpg"


@dataclass(frozen=True)
class DataDir:
    """Folders under the data directory that the web app, the workers and the launcher share."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    def dataset(self, dataset_id: int) -> Path:
        """A dataset's folder (laid out as `dataset_files` says), moved and removed whole."""
        return self.datasets / str(dataset_id)

    def dataset_files(self, dataset_id: int) -> DatasetFiles:
        """The images and thumbnails of a dataset."""
        return DatasetFiles(self.dataset(dataset_id))

    @property
    def image_cache(self) -> Path:
        """Decoded training images, shared by every job and dataset (content-addressed)."""
        return self.root / "cache" / "images"

    @property
    def feature_cache(self) -> Path:
        """Backbone features of training images for head-only training (engine.headonly.FeatureCache)."""
        return self.root / "cache" / "features"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def tensorrt_cache(self) -> Path:
        """Programs converted for TensorRT, by bundle digest and settings (engine.tensorrt.engine_key)."""
        return self.root / "cache" / "tensorrt"

    def model(self, version: int) -> Path:
        return self.models / str(version)

    def model_staging(self, tag: str) -> Path:
        """A bundle being exported (`tag` unique to the export), renamed to `model(version)` when whole."""
        return self.models / f"{MODEL_STAGING_PREFIX}{tag}"

    @property
    def feedback(self) -> Path:
        """Images of predictions that received feedback (`<prediction id>.<ext>`, thumbnails `.thumb.jpg`)."""
        return self.root / "feedback"

    def feedback_image(self, name: str) -> Path:
        return self.feedback / name

    def feedback_thumbnail(self, name: str) -> Path:
        """The thumbnail of the feedback image called `name`."""
        return self.feedback / f"{name.rsplit('.', 1)[0]}.thumb.jpg"

    @property
    def tmp(self) -> Path:
        """Uploads being received and ingested."""
        return self.root / "tmp"

    @property
    def metrics(self) -> Path:
        """The figures of running processes (prometheus_client's multi-process files), a folder per process
        tree (webapp.process_metrics): never a leftover, since a live process on another host may own one."""
        return self.tmp / "metrics"

    def upload(self, dataset_id: int) -> Path:
        """A received upload waiting for (or in) its ingest."""
        return self.tmp / f"upload-{dataset_id}"

    def incoming(self, token: str) -> Path:
        """An upload being received, before its dataset's row exists."""
        return self.tmp / f"incoming-{token}"

    def ingest_staging(self, dataset_id: int, attempt: int) -> Path:
        """Where one attempt at checking an upload writes its accepted images before they move into place."""
        return self.tmp / f"ingest-{dataset_id}-{attempt}"

    def scan_folder(self, scan_id: int, attempt: int) -> Path:
        """The checker's working folder for one attempt at a quality scan."""
        return self.tmp / f"scan-{scan_id}-{attempt}"

    def entries_staging(self, token: str) -> Path:
        """Where images given in one call (not uploaded) are checked before they move into place."""
        return self.tmp / f"upload-{token}"

    def batch(self, batch_id: int) -> Path:
        """A batch prediction's folder: its received input (`input/`, until the run ends) and its results."""
        return self.root / "batch" / str(batch_id)

    def webhook_secret(self, endpoint_id: int) -> Path:
        """A webhook endpoint's signing secrets (the current one, and the one it replaced while a rotation's
        grace lasts), 0600: never in the database, so a copy of the database alone cannot sign."""
        return self.root / "webhooks" / f"{endpoint_id}.secret"

    @property
    def backups(self) -> Path:
        """Where scheduled backups are written (BACKUP_DIR overrides it)."""
        return self.root / "backups"

    @property
    def visualdl(self) -> Path:
        return self.root / "visualdl"

    def job_log(self, job_id: int) -> Path:
        return self.visualdl / f"job-{job_id}"

    def checkpoints(self, job_id: int) -> Path:
        """A job's newest checkpoint (`epoch-<k>/`), or after success only `best.pdparams`."""
        return self.root / "checkpoints" / f"job-{job_id}"

    def checkpoint_key(self) -> bytes:
        """The install's key that signs checkpoints."""
        return self.secret("checkpoint.key")

    @property
    def install_id(self) -> Path:
        """The data folder's id, which the database records (webapp.installation)."""
        return self.root / "install.id"

    def key_file(self, name: str) -> Path:
        """A file under `keys/`: the install's keys and the first run's setup token, 0600."""
        return self.root / "keys" / name

    def secret(self, name: str) -> bytes:
        """A random key of this install kept in `keys/<name>`, made once by whichever process asks
        first and readable by its owner only (0600); every process of the install reads the same key. The
        key is written to a temporary file first, so nobody ever reads half a key."""
        path = self.key_file(name)
        try:
            return _read_key(path)
        except FileNotFoundError:
            pass
        write_whole(path, secrets.token_bytes(KEY_BYTES), replace=False)
        return _read_key(path)

    @property
    def run(self) -> Path:
        """Pid files and service logs of the launcher."""
        return self.root / "run"

    @property
    def service_status(self) -> Path:
        """The launcher's note of the services that ended and wait to start again, and why (JSON)."""
        return self.run / "services.json"

    def service_log(self, name: str) -> Path:
        """The output of a service the launcher starts that writes no log of its own."""
        return self.run / f"{name}.log"

    @property
    def redis(self) -> Path:
        """The embedded Redis's append-only file."""
        return self.root / "redis"

    @property
    def redis_log(self) -> Path:
        return self.redis / "redis.log"

    @property
    def database(self) -> Path:
        """The default SQLite database."""
        return self.root / "studio.sqlite3"

    def leftovers(self, waiting: Collection[int] = ()) -> list[Path]:
        """What interrupted runs leave behind: uploads being received or checked (everything under `tmp/`
        but the received uploads of the datasets in `waiting`, whose checks are still to come), bundles
        being exported (`models/.staging-*`, see worker.training.export_version), half-written
        files (`*.part`) beside bundles and in the caches under `cache/`, and the image cache's pack files
        of a training load interrupted before it unlinked its file (engine.data.ImageCache.load_all)."""
        from engine.data import PACKS

        kept = {self.upload(dataset_id) for dataset_id in waiting} | {self.metrics}
        found = sorted(set(self.tmp.iterdir()) - kept) if self.tmp.is_dir() else []
        found += sorted(self.models.glob(f"{MODEL_STAGING_PREFIX}*")) + sorted(self.models.glob("*/*.part"))
        found += sorted((self.image_cache / PACKS).glob("*.pack"))
        return found + sorted(self.image_cache.parent.rglob("*.part"))

    def sweep_leftovers(self, unchanged_for: float = 0.0, waiting: Collection[int] = ()) -> list[Path]:
        """Remove the leftovers nothing has written to for `unchanged_for` seconds and return them; the
        uploads of the datasets in `waiting` (still to be checked, as the database says) are kept. Run it
        while no process of the install writes (0), or with an age that no live writer's pause reaches."""
        cutoff = time.time() - unchanged_for
        removed = []
        for path in self.leftovers(waiting):
            try:
                if unchanged_for and _last_change(path) > cutoff:
                    continue
            except FileNotFoundError:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        return removed


def _last_change(path: Path) -> float:
    """The newest modification time of `path` and, for a folder, of everything in it."""
    newest = path.lstat().st_mtime
    for folder, _, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, file) for file in files)]:
            try:
                newest = max(newest, os.lstat(name).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def data_dir() -> DataDir:
    """The current app's data directory."""
    return DataDir(Path(current_app.config["DATA_DIR"]))
