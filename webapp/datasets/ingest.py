"""Ingest an upload: place, decode, deduplicate and split its images into a staging folder.

No request or database access here: the web layer passes entries in and stores the result as rows.
The images are decoded by a checker process of the upload (webapp.datasets.sandbox), never in this one.
Warnings and the reasons of rejected files are English Messages (engine.messages), kept with their
templates so each reader sees them in their language.
"""
from __future__ import annotations

import hashlib
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from engine.errors import StudioError
from engine.imagecheck import CheckedImage
from engine.messages import N_, Message
from webapp.datasets.archive import Entry, Refusal
from webapp.datasets.layout import Placement, has_split_folders, place, strip_wrapper
from webapp.datasets.sandbox import ImageChecker
from webapp.storage import DatasetFiles

VAL_FRACTION = 0.2
IMBALANCE_RATIO = 10
# Files read ahead and sent to the checker together (a larger file goes alone): the checker decodes one
# while the next ones are on their way.
CHECK_BATCH_FILES = 32
CHECK_BATCH_BYTES = 16 * 2**20
# Why ingest refuses a whole upload (the refusals about its images carry the `rejected` files).
REFUSALS = ("no_usable_images", "too_few_classes", "class_too_small", "class_without_training_images",
            "ingest_sandbox_unavailable")


@dataclass
class AcceptedImage:
    class_name: str
    split: str | None
    original_path: str
    stored_name: str
    sha256: str
    format: str
    width: int
    height: int
    num_bytes: int
    signature: dict | None = None  # engine.quality.Signature as JSON, measured by the checker


@dataclass
class _Read:
    """An entry read for the checker, or refused before any decoding (`refusal`)."""

    path: str
    placement: Placement | None = None
    data: bytes = b""
    sha: str = ""
    refusal: "Message | str | None" = None


@dataclass
class IngestResult:
    layout: str
    images: list[AcceptedImage]
    rejected: list[dict] = field(default_factory=list)  # {"path", "reason"}, its reason in its stored form
    warnings: list[Message] = field(default_factory=list)
    # Files with the same bytes as an earlier one: kept under their own path, class and split (their
    # content stored once), and listed with the first's path; the quality report lists them too.
    duplicates: list[dict] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        return content_hash(self.images)


def content_hash(images: Iterable[AcceptedImage]) -> str:
    """A hash of the images, classes and splits kept (of an upload, or of a revision's manifest): equal
    contents have equal hashes."""
    lines = sorted(f"{image.split}\t{image.class_name}\t{image.sha256}" for image in images)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def ingest(entries: list[Entry], refused: list[Refusal], staging: Path, limits: dict,
           progress: Callable[[int, int], None] | None = None, whole: bool = True) -> IngestResult:
    """Check every entry and write the accepted ones under `staging`; raise StudioError if unusable.
    `progress(done, total)` is told after each entry. `whole=False` checks images to add to a dataset:
    the classes and splits are the dataset's business, so only an upload without any usable image is
    refused."""
    files = DatasetFiles(staging)
    files.images.mkdir(parents=True, exist_ok=True)
    files.thumbs.mkdir(exist_ok=True)
    entries = sorted(entries, key=lambda entry: entry.path)
    parts = strip_wrapper([entry.path.split("/") for entry in entries])
    split_layout = has_split_folders(parts)
    result = IngestResult("splits" if split_layout else "classes", [])
    result.rejected = [rejection(r.path, r.reason) for r in refused]
    seen: dict[str, AcceptedImage] = {}
    batch: list[_Read] = []
    try:
        with ImageChecker(staging / "check", limits) as checker:
            for done, (entry, entry_parts) in enumerate(zip(entries, parts), 1):
                if progress:
                    progress(done, len(entries))
                batch.append(_read(entry, place(entry_parts, split_layout), limits))
                if len(batch) == CHECK_BATCH_FILES or sum(len(item.data) for item in batch) >= CHECK_BATCH_BYTES:
                    _check_batch(batch, staging, seen, result, checker)
                    batch = []
            _check_batch(batch, staging, seen, result, checker)
    finally:
        shutil.rmtree(staging / "check", ignore_errors=True)
    if not whole:
        if not result.images:
            raise StudioError("no_usable_images", "No usable images were found in the upload.",
                              rejected=result.rejected)
        return result
    _check_classes(result)
    _split_missing_val(result)
    _warn_imbalance(result)
    return result


def rejection(path: str, reason: "Message | str") -> dict:
    """A rejected file as stored: its path and its reason's template and parameters (a plain reason is a
    template without parameters: the words of a refusal are catalog texts)."""
    return {"path": path, "reason": (reason if isinstance(reason, Message) else Message(str(reason))).stored()}


def _read_bounded(entry: Entry, max_bytes: int) -> bytes | None:
    if entry.size is not None and entry.size > max_bytes:
        return None
    with entry.open() as stream:
        data = stream.read(max_bytes + 1)
    return None if len(data) > max_bytes else data


def _read(entry: Entry, placement: "Placement | str", limits: dict) -> _Read:
    if isinstance(placement, str):
        return _Read(entry.path, refusal=placement)
    try:
        data = _read_bounded(entry, limits["max_file_bytes"])
    except Exception as exc:  # a damaged zip member: bad CRC, bad compression data
        return _Read(entry.path, refusal=Message(N_("unreadable in the archive (%(error)s)"),
                                                 {"error": exc.__class__.__name__}))
    if data is None:
        limit_mb = format(limits["max_file_bytes"] / 2**20, ".0f")
        return _Read(entry.path, refusal=Message(N_("file too large (over %(mb)s MB)"), {"mb": limit_mb}))
    return _Read(entry.path, placement, data, hashlib.sha256(data).hexdigest())


def _check_batch(batch: list[_Read], staging: Path, seen: dict[str, AcceptedImage], result: IngestResult,
                 checker: ImageChecker) -> None:
    """Decode the batch's new files in the checker, then reject, skip as a duplicate or keep each entry in order."""
    new = {item.sha: item.data for item in batch if item.refusal is None and item.sha not in seen}
    outcomes = dict(zip(new, checker.check_files(list(new.values()))))
    for item in batch:
        if item.refusal is not None:
            result.rejected.append(rejection(item.path, item.refusal))
        elif item.sha in seen:
            first = seen[item.sha]
            result.duplicates.append({"path": item.path, "duplicate_of": first.original_path,
                                      "same_class": first.class_name == item.placement.class_name})
            result.images.append(AcceptedImage(item.placement.class_name, item.placement.split, item.path,
                                               first.stored_name, item.sha, first.format, first.width, first.height,
                                               first.num_bytes, first.signature))
        elif isinstance(outcomes[item.sha], Message):
            result.rejected.append(rejection(item.path, outcomes[item.sha]))
        else:
            _keep(item, outcomes[item.sha], staging, seen, result)


def _keep(item: _Read, checked: CheckedImage, staging: Path, seen: dict[str, AcceptedImage],
          result: IngestResult) -> None:
    stored_name = f"{item.sha}.{checked.extension}"
    files = DatasetFiles(staging)
    files.image(stored_name).write_bytes(item.data)
    files.thumbnail(item.sha).write_bytes(checked.thumbnail)
    image = AcceptedImage(item.placement.class_name, item.placement.split, item.path, stored_name, item.sha,
                          checked.format, checked.width, checked.height, len(item.data), checked.signature.to_json())
    seen[item.sha] = image
    result.images.append(image)


def _check_classes(result: IngestResult) -> None:
    if not result.images:
        raise StudioError("no_usable_images", "No usable images were found in the upload.", rejected=result.rejected)
    counts = Counter(image.class_name for image in result.images if image.split != "test")
    if not counts:
        raise StudioError("too_few_classes", "A dataset needs at least 2 classes; found 0 (none).",
                          rejected=result.rejected)
    if len(counts) < 2:
        raise StudioError("too_few_classes", "A dataset needs at least 2 classes; found %(count)s (%(names)s).",
                          {"count": len(counts), "names": ", ".join(f"'{name}'" for name in counts)},
                          rejected=result.rejected)
    for name, count in sorted(counts.items()):
        if count < 2:
            raise StudioError("class_too_small", "Class '%(name)s' has %(count)s usable image; every class needs at "
                                                 "least 2.", {"name": name, "count": count},
                              field="class", class_name=name, rejected=result.rejected)
    if result.duplicates:
        across = sum(1 for dup in result.duplicates if not dup["same_class"])
        counts = {"count": len(result.duplicates), "across": across}
        result.warnings.append(Message(N_("%(count)s files are exact copies of another file, %(across)s of them "
                                          "under a different class; the quality report lists them."), counts)
                               if across else
                               Message(N_("%(count)s files are exact copies of another file; the quality report "
                                          "lists them."), counts))


def _split_missing_val(result: IngestResult) -> None:
    """Give every class a stratified validation share when the upload did not."""
    by_class: dict[str, list[AcceptedImage]] = defaultdict(list)
    for image in result.images:
        if image.split in (None, "train"):
            by_class[image.class_name].append(image)
    has_val = {image.class_name for image in result.images if image.split == "val"}
    moved = 0
    for name, images in by_class.items():
        for image in images:
            image.split = "train"
        if name in has_val:
            continue
        # Copies of one content go to one split together: a split never leaks an image into another.
        contents: dict[str, list[AcceptedImage]] = defaultdict(list)
        for image in images:
            contents[image.sha256].append(image)
        order = sorted(contents)
        take = min(len(order) - 1, max(1, round(len(order) * VAL_FRACTION)))
        for sha in order[:take]:
            for image in contents[sha]:
                image.split = "val"
            moved += len(contents[sha])
    if result.layout == "classes":
        result.warnings.append(Message(N_("No validation split was given: %(count)s images (20%% of each class, "
                                          "at least one) were set aside for validation."), {"count": moved}))
    elif moved:
        missing = sorted(set(by_class) - has_val)
        result.warnings.append(Message(N_("Classes without validation images (%(classes)s): 20%% of their training "
                                          "images were moved to validation."), {"classes": ", ".join(missing)}))
    no_train = sorted({i.class_name for i in result.images if i.split == "val"} - set(by_class))
    if no_train:
        raise StudioError("class_without_training_images", "Class '%(name)s' has validation images but no training "
                                                           "images.", {"name": no_train[0]},
                          field="class", class_name=no_train[0])


def _warn_imbalance(result: IngestResult) -> None:
    counts = Counter(image.class_name for image in result.images if image.split == "train")
    largest, smallest = max(counts.values()), min(counts.values())
    if largest > IMBALANCE_RATIO * smallest:
        big = max(counts, key=counts.get)
        small = min(counts, key=counts.get)
        result.warnings.append(Message(N_("Classes are strongly imbalanced: '%(big)s' has %(largest)s training "
                                          "images, '%(small)s' only %(smallest)s."),
                                       {"big": big, "largest": largest, "small": small, "smallest": smallest}))

