"""Turn an uploaded zip archive or a folder upload into entries, defusing hostile archives.

Refusals of the whole upload are StudioErrors; refusals of single files are listed as Refusals."""
from __future__ import annotations

import stat
import struct
import unicodedata
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Callable, Iterable

from engine.errors import StudioError
from engine.messages import N_, Message

SKIPPED_NAMES = {".ds_store", "thumbs.db", "desktop.ini", ".directory"}
SKIPPED_FOLDERS = {"__macosx", ".ipynb_checkpoints", ".git", ".svn", "@eadir"}
ZIP_UTF8_FLAG = 0x800
# The central directory may take this many bytes per allowed entry on average: its 46-byte header and a long
# path with the usual extra fields. zipfile reads the whole directory into memory and parses it by its size.
DIRECTORY_BYTES_PER_ENTRY = 1024
DIRECTORY_HEADER = struct.Struct("<4s24xHHH12x")  # signature, then the lengths of name, extra field, comment
END_RECORD = struct.Struct("<4s6xHLLH")  # signature, entries, directory size, its offset, comment length
END_LOCATOR64 = struct.Struct("<4sLQL")
END_RECORD64 = struct.Struct("<4s28xQQQ")  # signature, entries, directory size, its offset
MAX_COMMENT = 65535
WALK_CHUNK = 1 << 20


@dataclass
class Entry:
    """One file of an upload: its path as written and a way to read its bytes."""

    path: str
    size: int | None
    open: Callable[[], IO[bytes]]


@dataclass
class Refusal:
    path: str
    reason: Message  # English, with its template for the reader's language


def clean_parts(raw: str) -> list[str] | Message:
    """Split an upload path into its parts, or return why it is refused (a Message, which is a str).

    Returns an empty list for hidden and system files, which are skipped silently.
    """
    path = unicodedata.normalize("NFC", raw.replace("\\", "/"))
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return Message(N_("absolute path"))
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return Message(N_("path leaves the dataset folder (..)"))
    if any(part.startswith(".") or part.lower() in SKIPPED_FOLDERS for part in parts[:-1]):
        return []
    if not parts or parts[-1].startswith(".") or parts[-1].lower() in SKIPPED_NAMES:
        return []
    return parts


def _zip_name(info: zipfile.ZipInfo) -> str:
    """Decode an entry name; zips made on Chinese Windows store GBK without the UTF-8 flag."""
    if info.flag_bits & ZIP_UTF8_FLAG:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return info.filename


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_bomb(infos: list[zipfile.ZipInfo], limits: dict) -> None:
    if len(infos) > limits["max_entries"]:
        raise StudioError("archive_too_large", "The archive holds %(count)s entries; the limit is %(max)s.",
                          {"count": len(infos), "max": limits["max_entries"]})
    total = sum(info.file_size for info in infos)
    if total > limits["max_total_bytes"]:
        raise StudioError("archive_too_large", "The archive unpacks to %(mb)s MB; the limit is %(max_mb)s MB.",
                          {"mb": format(total / 2**20, ".0f"),
                           "max_mb": format(limits["max_total_bytes"] / 2**20, ".0f")})
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > 1_000_000 and ratio > limits["max_ratio"]:
            raise StudioError("zip_bomb", "'%(name)s' is compressed %(ratio)s:1, which only a zip bomb does; "
                                          "the archive was refused.",
                              {"name": _zip_name(info), "ratio": format(ratio, ".0f")})


@dataclass
class Directory:
    """Where a zip's central directory lies, as its end record says and as zipfile locates it."""

    start: int
    size: int
    entries: int


def find_directory(stream: IO[bytes]) -> Directory | None:
    """Read the end record the way zipfile does (the last 22 bytes, else the last signature within the
    largest comment's reach, then the zip64 record it points to); None when there is none."""
    length = stream.seek(0, 2)
    if length < END_RECORD.size:
        return None
    tail_start = max(length - MAX_COMMENT - END_RECORD.size, 0)
    stream.seek(tail_start)
    tail = stream.read()
    at = len(tail) - END_RECORD.size
    if not (tail[at:at + 4] == b"PK\x05\x06" and tail[-2:] == b"\0\0"):
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < END_RECORD.size:
        return None
    _, entries, size, _, _ = END_RECORD.unpack_from(tail, at)
    location = tail_start + at
    return _zip64_directory(stream, location) or Directory(location - size, size, entries)


def _zip64_directory(stream: IO[bytes], location: int) -> Directory | None:
    """The directory as the zip64 end record before the end record at `location` gives it, if there is one."""
    if location < END_LOCATOR64.size + END_RECORD64.size:
        return None
    stream.seek(location - END_LOCATOR64.size)
    signature, disk, _, disks = END_LOCATOR64.unpack(stream.read(END_LOCATOR64.size))
    if signature != b"PK\x06\x07" or disk != 0 or disks > 1:
        return None
    record = location - END_LOCATOR64.size - END_RECORD64.size
    stream.seek(record)
    signature, entries, size, _ = END_RECORD64.unpack(stream.read(END_RECORD64.size))
    return Directory(record - size, size, entries) if signature == b"PK\x06\x06" else None


def count_headers(stream: IO[bytes], directory: Directory, most: int) -> int:
    """The headers in the directory as a parser walks it (by byte size, whatever the end record's count),
    counted up to `most` and without keeping any, reading a chunk at a time."""
    count, offset, window, window_start = 0, 0, b"", 0
    while offset < directory.size and count < most:
        if offset + DIRECTORY_HEADER.size > window_start + len(window):
            stream.seek(directory.start + offset)
            window, window_start = stream.read(min(WALK_CHUNK, directory.size - offset)), offset
            if len(window) < DIRECTORY_HEADER.size:
                break
        signature, name, extra, comment = DIRECTORY_HEADER.unpack_from(window, offset - window_start)
        if signature != b"PK\x01\x02":
            break
        offset += DIRECTORY_HEADER.size + name + extra + comment
        count += 1
    return count


def check_directory(stream: IO[bytes], limits: dict) -> None:
    """Refuse an archive whose central directory lists more entries than allowed, or is larger than that
    many entries need, from its end record and a walk over its headers, before zipfile parses it into
    memory. An archive without an end record is left for zipfile to refuse."""
    directory = find_directory(stream)
    if directory is None:
        return
    most = limits["max_entries"]
    if directory.entries > most:
        raise StudioError("archive_too_large", "The archive holds %(count)s entries; the limit is %(max)s.",
                          {"count": directory.entries, "max": most})
    if directory.size > most * DIRECTORY_BYTES_PER_ENTRY:
        raise StudioError("archive_too_large", "The archive's list of contents takes %(mb)s MB; the limit is "
                                               "%(max_mb)s MB.",
                          {"mb": format(directory.size / 2**20, ".0f"),
                           "max_mb": format(most * DIRECTORY_BYTES_PER_ENTRY / 2**20, ".0f")})
    if directory.start >= 0 and count_headers(stream, directory, most + 1) > most:
        raise StudioError("archive_too_large", "The archive holds more than %(max)s entries; the limit is %(max)s.",
                          {"max": most})


def zip_entries(stream: IO[bytes], limits: dict) -> tuple[list[Entry], list[Refusal]]:
    """List the usable file entries of a zip archive and the refused ones."""
    try:
        check_directory(stream, limits)
        archive = zipfile.ZipFile(stream)
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise StudioError("not_a_zip", "The file is not a readable .zip archive.", field="archive") from exc
    _check_bomb(infos, limits)
    entries: list[Entry] = []
    refused: list[Refusal] = []
    for info in infos:
        name = _zip_name(info)
        if _is_symlink(info):
            continue
        parts = clean_parts(name)
        if isinstance(parts, str):
            refused.append(Refusal(name, parts))
        elif info.flag_bits & 0x1:
            refused.append(Refusal(name, Message(N_("encrypted entry"))))
        elif parts:
            entries.append(Entry("/".join(parts), info.file_size, _opener(archive, info)))
    return entries, refused


def _opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


def file_entries(files: Iterable[tuple[str, Path]], limits: dict) -> tuple[list[Entry], list[Refusal]]:
    """Entries of a folder upload, given as (relative path as sent, where the received file is stored)."""
    files = list(files)
    if len(files) > limits["max_entries"]:
        raise StudioError("archive_too_large", "%(count)s files were sent; the limit is %(max)s.",
                          {"count": len(files), "max": limits["max_entries"]})
    entries: list[Entry] = []
    refused: list[Refusal] = []
    for name, stored in files:
        parts = clean_parts(name)
        if isinstance(parts, str):
            refused.append(Refusal(name, parts))
        elif parts:
            entries.append(Entry("/".join(parts), None, partial(open, stored, "rb")))
    return entries, refused
