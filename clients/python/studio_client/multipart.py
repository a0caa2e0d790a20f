"""A multipart/form-data body streamed from files on disk: its length is known before it is sent (so the
request carries a Content-Length, as the studio's upload reader and any proxy expect) and files are read one
chunk at a time (so memory stays flat whatever the upload's size)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 256 * 1024
Progress = Callable[[int, int], None]  # (bytes sent so far, bytes in all)


@dataclass(frozen=True)
class FilePart:
    """A file field: `filename` is what the server reads as the file's path (`rose/a.jpg` for a folder)."""

    field: str
    filename: str
    path: Path


def _quoted(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"a field or file name cannot hold a line break: {value!r}")
    return value.replace("\\", "\\\\").replace('"', '\\"')


class MultipartBody:
    """The body of `fields` (text) and `files`: an iterable of chunks with a length, which requests sends
    with that Content-Length, chunk by chunk."""

    def __init__(self, fields: dict[str, str], files: list[FilePart], progress: Progress | None = None,
                 boundary: str | None = None) -> None:
        self.boundary = boundary or f"studio-{secrets.token_hex(16)}"
        self.fields, self.files, self.progress = fields, files, progress
        self.sizes = [os.stat(part.path).st_size for part in files]
        self.length = sum(len(self._field(name, value)) for name, value in fields.items()) + sum(
            len(self._file_head(part)) + size + 2 for part, size in zip(files, self.sizes)) + len(self._tail())
        self.sent = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _field(self, name: str, value: str) -> bytes:
        return (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
                f"{value}\r\n").encode()

    def _file_head(self, part: FilePart) -> bytes:
        return (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(part.field)}"; '
                f'filename="{_quoted(part.filename)}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n").encode()

    def _tail(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    def _generate(self) -> Iterator[bytes]:
        for name, value in self.fields.items():
            yield self._field(name, value)
        for part, size in zip(self.files, self.sizes):
            yield self._file_head(part)
            with open(part.path, "rb") as source:
                while size > 0:  # the size announced, even if the file grew since
                    chunk = source.read(min(CHUNK, size))
                    if not chunk:
                        raise OSError(f"{part.path} shrank while it was being sent")
                    size -= len(chunk)
                    yield chunk
            yield b"\r\n"
        yield self._tail()

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._generate():
            self.sent += len(chunk)
            if self.progress is not None:
                self.progress(self.sent, self.length)
            yield chunk
