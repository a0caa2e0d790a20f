"""The backup archive: an uncompressed tar written and read as a stream (never held in memory).

Its members, in order: `about.json` (what the archive holds, readable before anything else), the database
copy under `database/`, the data folder's files under `files/` (by their path inside DATA_DIR), and last
`manifest.json`: `about` again plus the sha256 and size of every member before it, which only a writer
that has read them all can know.
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

ABOUT = "about.json"
MANIFEST = "manifest.json"
DATABASE_PREFIX = "database/"
FILES_PREFIX = "files/"
FORMAT = 1
CHUNK = 1024 * 1024


@dataclass
class About:
    """What an archive holds: its format, the studio's version that wrote it, the database kind (`sqlite`
    or `postgresql`), the schema revision (Alembic) of the copy, when it was taken, and whether the keys
    are in it."""

    studio_version: str
    database: str
    schema_revision: str
    created_at: str
    with_keys: bool = False
    format: int = FORMAT


@dataclass
class Entry:
    """One member's path in the archive, its sha256 and its size in bytes."""

    path: str
    sha256: str
    size: int


@dataclass
class Manifest:
    """The archive's last member: `about`, every member before it, and the files the database copy named
    that were gone when they were to be copied (removed meanwhile, by a purge or a deletion)."""

    about: About
    entries: list[Entry] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Manifest":
        raw = json.loads(data)
        return cls(About(**raw["about"]), [Entry(**entry) for entry in raw["entries"]], list(raw["missing"]))


class _Hashing:
    """A reader that hashes what passes through it, and gives at most `limit` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.left, self.digest = stream, limit, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        self.digest.update(data)
        return data


class ArchiveWriter:
    """Writes an archive member by member to `path` + `.part` (readable by its owner only), renamed to `path`
    once whole: a half-written archive is never taken for a backup."""

    def __init__(self, path: Path, about: About) -> None:
        self.path, self.staged = Path(path), Path(f"{path}.part")
        self.manifest = Manifest(about)
        # 0600: the archive holds password hashes, webhook secrets and, on request, the keys
        self.stream = open(os.open(self.staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self.tar = tarfile.open(fileobj=self.stream, mode="w|", format=tarfile.PAX_FORMAT)
        self._add_bytes(ABOUT, json.dumps(asdict(about), indent=1).encode())

    def _add_bytes(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
        self.tar.addfile(info, _Bytes(data))

    def add_file(self, name: str, source: Path, limit: int | None = None) -> bool:
        """Copy `source` (its first `limit` bytes when given) as member `name`; False when the file is gone.
        The file is opened first: once open, a removal elsewhere no longer takes it away."""
        try:
            stream = open(source, "rb")
        except FileNotFoundError:
            self.manifest.missing.append(name)
            return False
        with stream:
            size = os.fstat(stream.fileno()).st_size
            size = size if limit is None else min(size, limit)
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, int(time.time()), 0o600
            reader = _Hashing(stream, size)
            self.tar.addfile(info, reader)
        self.manifest.entries.append(Entry(name, reader.digest.hexdigest(), size))
        return True

    def close(self) -> Manifest:
        """Write the manifest, make the archive durable and give it its name."""
        self._add_bytes(MANIFEST, self.manifest.to_json())
        self.tar.close()
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        os.replace(self.staged, self.path)
        return self.manifest

    def abandon(self) -> None:
        """Remove the half-written archive (the backup failed)."""
        self.tar.close()
        self.stream.close()
        self.staged.unlink(missing_ok=True)


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self.data) if size < 0 else self.offset + size
        chunk, self.offset = self.data[self.offset:end], min(end, len(self.data))
        return chunk


@dataclass
class Member:
    """A member as the reader found it: its path, digest and size, and where it was written (if it was)."""

    path: str
    sha256: str
    size: int
    written: Path | None = None


def read_archive(path: Path, into: Path | None = None,
                 keep: Callable[[str], bool] = lambda name: True) -> Iterator[Member | Manifest | About]:
    """Walk the archive once, as a stream: yields its About first, then each member hashed (and, with
    `into`, the members `keep` names written under it by their archive path, 0600), then its Manifest.
    Member paths that would leave `into` (absolute, `..`) or that are not plain files are refused."""
    with open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            data = tar.extractfile(info) if info.isfile() else None
            if data is None or not _safe(info.name):
                raise ValueError(info.name)
            if info.name == ABOUT:
                yield About(**json.loads(data.read()))
            elif info.name == MANIFEST:
                yield Manifest.from_json(data.read())
            else:
                yield _member(info.name, data, into if keep(info.name) else None)


def read_about(path: Path) -> About | None:
    """The archive's About, read from its first member alone; None when it does not start with one."""
    try:
        with open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            info = tar.next()
            if info is not None and info.name == ABOUT and info.isfile():
                return About(**json.loads(tar.extractfile(info).read()))
    except (tarfile.TarError, ValueError, TypeError):
        pass
    return None


def _safe(name: str) -> bool:
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def _member(name: str, data: IO[bytes], into: Path | None) -> Member:
    digest, size, target = hashlib.sha256(), 0, None
    output = None
    if into is not None:
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        output = open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
    try:
        while chunk := data.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if output is not None:
                output.write(chunk)
    finally:
        if output is not None:
            output.close()
    return Member(name, digest.hexdigest(), size, target)
