"""Turn an uploaded zip archive or a folder upload into entries, defusing hostile archives.

Refusals of the whole upload are StudioErrors; refusals of single files are listed as Refusals."""
from __future__ import annotations

import stat
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


def zip_entries(stream: IO[bytes], limits: dict) -> tuple[list[Entry], list[Refusal]]:
    """List the usable file entries of a zip archive and the refused ones."""
    try:
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
