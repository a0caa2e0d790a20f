"""Receive a dataset upload: the multipart body is streamed into files under a staging folder, so
memory stays bounded whatever the upload's size (an archive, or a folder of many files)."""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Iterator

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from engine.errors import StudioError
from webapp.datasets.archive import Entry, Refusal, file_entries, zip_entries
from webapp.multipart import form_boundary

MANIFEST = "upload.json"
ARCHIVE = "archive.zip"
FILES = "files"
CHUNK = 256 * 1024
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 32  # text fields kept; more are ignored (each may take MAX_FIELD_BYTES)
# The decoder's buffer: a chunk plus what is left of the one before (a part's headers must fit too).
MAX_BUFFER_BYTES = 4 * CHUNK


@dataclass
class ReceivedUpload:
    """What an upload brought, as kept on disk until it is ingested."""

    name: str | None = None
    archive_filename: str | None = None  # the archive's own file name, when one was sent
    files: list[str] = field(default_factory=list)  # paths as sent; file i is stored as files/<i>
    fields: dict[str, str] = field(default_factory=dict)  # every small text field sent beside the files

    def save(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(json.dumps(asdict(self), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "ReceivedUpload":
        return cls(**json.loads((folder / MANIFEST).read_text(encoding="utf-8")))

    @contextmanager
    def entries(self, folder: Path, limits: dict) -> Iterator[tuple[list[Entry], list[Refusal]]]:
        """The upload's entries and refusals, readable while the context lasts (the archive stays open)."""
        if self.archive_filename is None:
            yield file_entries([(path, folder / FILES / str(i)) for i, path in enumerate(self.files)], limits)
            return
        with open(folder / ARCHIVE, "rb") as archive:
            yield zip_entries(archive, limits)


def _boundary(content_type: str | None) -> bytes:
    mimetype, boundary = form_boundary(content_type)
    if mimetype != "multipart/form-data":
        raise StudioError("missing_field", "Send a .zip archive in 'archive' or image files in 'files' "
                                           "(multipart/form-data).", field="archive")
    if boundary is None:
        raise StudioError("invalid_body", "The multipart body has no usable boundary.")
    return boundary


class _Receiver:
    """Writes each file part straight to its own file and keeps only the small text fields."""

    def __init__(self, folder: Path, max_files: int) -> None:
        self.folder, self.max_files = folder, max_files
        self.upload = ReceivedUpload()
        self.sink: IO[bytes] | None = None
        self.text: list[bytes] | None = None
        self.part: Field | File | None = None

    def start(self, part: Field | File) -> None:
        self.part, self.sink, self.text = part, None, None
        if isinstance(part, Field):
            self.text = []
        elif part.name == "archive":
            if self.upload.archive_filename is not None:
                raise StudioError("conflicting_fields", "Send one archive per dataset.", field="archive")
            self.upload.archive_filename = part.filename or ARCHIVE
            self.sink = open(self.folder / ARCHIVE, "wb")
        elif part.name == "files":
            if len(self.upload.files) >= self.max_files:
                raise StudioError("archive_too_large", "More than %(max)s files were sent.", {"max": self.max_files},
                                  field="files")
            self.sink = open(self.folder / FILES / str(len(self.upload.files)), "wb")
            self.upload.files.append(part.filename or "")

    def data(self, chunk: bytes, more: bool) -> None:
        if self.sink is not None:
            self.sink.write(chunk)
            if not more:
                self.sink.close()
                self.sink = None
        elif self.text is not None:
            name = (self.part.name or "")[:40]  # a part whose name the parser could not read has none
            self.text.append(chunk)
            if sum(map(len, self.text)) > MAX_FIELD_BYTES:
                raise StudioError("invalid_field", "'%(name)s' is longer than %(max)s bytes.",
                                  {"name": name, "max": MAX_FIELD_BYTES}, field=name)
            if not more:
                value = b"".join(self.text).decode("utf-8", "replace")
                if name and len(self.upload.fields) < MAX_FIELDS:
                    self.upload.fields[name] = value
                if name == "name":
                    self.upload.name = value

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()


def receive_upload(stream: IO[bytes], content_type: str | None, folder: Path, max_files: int) -> ReceivedUpload:
    """Stream the body into `folder` (made here, removed again when the body is refused)."""
    decoder = MultipartDecoder(_boundary(content_type), max_form_memory_size=MAX_BUFFER_BYTES,
                               max_parts=max_files + 16)
    (folder / FILES).mkdir(parents=True)
    receiver = _Receiver(folder, max_files)
    try:
        while True:
            chunk = stream.read(CHUNK)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, (Epilogue, NeedData)):
                if isinstance(event, (Field, File)):
                    receiver.start(event)
                elif isinstance(event, Data):
                    receiver.data(event.data, event.more_data)
                event = decoder.next_event()
            if not chunk or isinstance(event, Epilogue):
                break
        if not isinstance(event, Epilogue):
            raise StudioError("invalid_body", "The upload ended before its last part; send it again.")
    except ValueError:
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise StudioError("invalid_body", "The multipart body is malformed.") from None
    except (StudioError, RequestEntityTooLarge, OSError, Exception):
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    receiver.close()
    receiver.upload.save(folder)
    return receiver.upload
