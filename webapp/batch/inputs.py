"""What a batch run classifies: the items of its input, in one fixed order (a resumed attempt skips the ones
committed), each read when its turn comes, so memory does not grow with the input.

An upload is listed as a dataset upload is (webapp.datasets.receive and archive: the same limits and checks of
hostile archives); a file refused by its path is an item that carries its refusal. A revision's items are its
stored images, by id."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from sqlalchemy import select

from engine.messages import N_, Message
from webapp.datasets.receive import ReceivedUpload
from webapp.extensions import db
from webapp.models import DatasetImage
from webapp.storage import data_dir

INPUT = "input"  # the received upload, inside the run's folder


@dataclass(frozen=True)
class Item:
    """One file of the input: its path as the person knows it, and either a way to read it or why it was
    refused before any reading (a Message)."""

    path: str
    open: Callable[[], IO[bytes]] | None = None
    size: int | None = None
    refusal: Message | None = None


def input_folder(batch_id: int) -> Path:
    return data_dir().batch(batch_id) / INPUT


@contextmanager
def upload_items(folder: Path, limits: dict) -> Iterator[list[Item]]:
    """The items of a received upload: the files refused by their path first, then the others in the order
    sent (an archive's order); readable while the context lasts. Raises the upload's refusal (a zip bomb,
    too many entries, not a zip) as a StudioError."""
    upload = ReceivedUpload.load(folder)
    with upload.entries(folder, limits) as (entries, refused):
        yield [Item(refusal.path, refusal=refusal.reason) for refusal in refused] + \
              [Item(entry.path, entry.open, entry.size) for entry in entries]


def revision_items(dataset_id: int, revision_id: int) -> list[Item]:
    """The images of a dataset revision, by id, each under the path it was uploaded with."""
    files = data_dir().dataset_files(dataset_id)
    rows = db.session.execute(select(DatasetImage.original_path, DatasetImage.stored_name).where(
        DatasetImage.revision_id == revision_id).order_by(DatasetImage.id))
    return [Item(path, _opener(files.image(stored))) for path, stored in rows]


def _opener(path: Path) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


@dataclass(frozen=True)
class Refused:
    """Why an item got no answer: a stable code (the API's error codes where one fits) and the words."""

    code: str
    reason: Message


def read_item(item: Item, max_bytes: int) -> bytes | Refused:
    """The item's bytes, at most `max_bytes` of them, or why it is refused."""
    if item.refusal is not None:
        return Refused("path_refused", item.refusal)
    if item.size is not None and item.size > max_bytes:
        return _too_large(max_bytes)
    try:
        with item.open() as stream:
            data = stream.read(min(max_bytes, _size_of(item, stream)) + 1)
    except Exception as exc:  # a damaged archive entry (zipfile raises several kinds), a file gone
        return Refused("unreadable", Message(N_("The file could not be read (%(kind)s)."),
                                             {"kind": type(exc).__name__}))
    if not data:
        return Refused("empty_file", Message(N_("The file is empty.")))
    return _too_large(max_bytes) if len(data) > max_bytes else data


def _size_of(item: Item, stream) -> int:
    """The item's size as listed, or as its file says (a read asks for no more than that, plus one byte)."""
    if item.size is not None:
        return item.size
    return os.fstat(stream.fileno()).st_size


def _too_large(max_bytes: int) -> Refused:
    return Refused("file_too_large", Message(N_("The file is larger than %(mb)s MB."),
                                             {"mb": format(max_bytes / 2**20, "g")}))
