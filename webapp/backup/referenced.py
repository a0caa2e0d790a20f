"""Exactly the files a database snapshot references, as paths inside DATA_DIR (DataDir says where each
lives): model bundles, dataset revisions' images and thumbnails, kept feedback and review images, batch
results (up to the size their row says is committed), and webhook signing secrets. Each rule reads its own
table, and a table the snapshot does not have (an older schema, a feature not there yet) has no files."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Connection, column, inspect, select, table

from webapp.batch.results import CSV_NAME, JSONL_NAME
from webapp.storage import DataDir


@dataclass(frozen=True)
class Referenced:
    """A file the snapshot names; `limit`: only its first bytes belong to the snapshot (a results file
    still being appended to)."""

    path: Path
    limit: int | None = None


def _bundles(connection: Connection, folders: DataDir) -> Iterator[Referenced]:
    for version in connection.scalars(select(column("version")).select_from(table("model_versions"))
                                      .order_by(column("version"))):
        bundle = folders.model(version)
        for path in sorted(bundle.rglob("*")) if bundle.is_dir() else [bundle / "meta.json"]:
            if not path.is_dir() and path.suffix != ".part":  # a half-written file beside a bundle is no part of it
                yield Referenced(path)


def _dataset_images(connection: Connection, folders: DataDir) -> Iterator[Referenced]:
    rows = connection.execute(select(column("dataset_id"), column("stored_name"), column("sha256"))
                              .select_from(table("dataset_images")).distinct()
                              .order_by(column("dataset_id"), column("stored_name")))
    thumbnails = set()
    for dataset_id, stored_name, sha256 in rows:
        files = folders.dataset_files(dataset_id)
        yield Referenced(files.image(stored_name))
        if (dataset_id, sha256) not in thumbnails:
            thumbnails.add((dataset_id, sha256))
            yield Referenced(files.thumbnail(sha256))


def _kept_images(name: str) -> Callable[[Connection, DataDir], Iterator[Referenced]]:
    """The images (and thumbnails) of the feedback store that rows of table `name` keep."""

    def rule(connection: Connection, folders: DataDir) -> Iterator[Referenced]:
        for image in connection.scalars(select(column("image_name")).select_from(table(name))
                                        .where(column("image_name").is_not(None)).order_by(column("image_name"))):
            yield Referenced(folders.feedback_image(image))
            yield Referenced(folders.feedback_thumbnail(image))

    return rule


def _batch_results(connection: Connection, folders: DataDir) -> Iterator[Referenced]:
    rows = connection.execute(select(column("id"), column("csv_bytes"), column("jsonl_bytes"))
                              .select_from(table("batch_predictions")).where(column("expired_at").is_(None))
                              .order_by(column("id")))
    for batch_id, csv_bytes, jsonl_bytes in rows:
        for name, size in ((CSV_NAME, csv_bytes), (JSONL_NAME, jsonl_bytes)):
            if size:
                yield Referenced(folders.batch(batch_id) / name, size)


def _webhook_secrets(connection: Connection, folders: DataDir) -> Iterator[Referenced]:
    for endpoint_id in connection.scalars(select(column("id")).select_from(table("webhook_endpoints"))
                                          .order_by(column("id"))):
        yield Referenced(folders.webhook_secret(endpoint_id))


# table -> the files its rows reference
RULES: dict[str, Callable[[Connection, DataDir], Iterator[Referenced]]] = {
    "model_versions": _bundles,
    "dataset_images": _dataset_images,
    "feedback": _kept_images("feedback"),
    "review_items": _kept_images("review_items"),
    "batch_predictions": _batch_results,
    "webhook_endpoints": _webhook_secrets,
}


def referenced_files(connection: Connection, folders: DataDir, with_keys: bool = False) -> Iterator[Referenced]:
    """Every file the snapshot seen by `connection` references, then the install id (once a process made it)
    and (`with_keys`) the keys; a thumbnail is listed once however many images share its content."""
    present = set(inspect(connection).get_table_names())
    for name, rule in RULES.items():
        if name in present:
            yield from rule(connection, folders)
    if folders.install_id.is_file():  # made by the first worker's start (webapp.installation)
        yield Referenced(folders.install_id)
    keys = keys_folder(folders)
    if with_keys and keys.is_dir():
        yield from (Referenced(path) for path in sorted(keys.iterdir()) if path.is_file())


def keys_folder(folders: DataDir) -> Path:
    """The folder of the install's keys (DataDir.key_file names the files in it)."""
    return folders.key_file("any").parent
