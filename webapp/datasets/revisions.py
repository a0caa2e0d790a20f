"""Dataset revisions: a dataset's content as a series of immutable manifests.

A revision is its rows of dataset_images: per image its content hash, class and split (the bytes are stored
once per content in the dataset's folder, so no later revision, nor a purge of feedback images, breaks an
older one). A fix never edits a revision: it makes a new one from an older one (`change`), with a note of
what changed. Revisions are numbered within their dataset from 1, and a number is never given twice.
"""
from __future__ import annotations

import posixpath
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from flask import current_app
from sqlalchemy import delete, func, select, update

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp import audit
from webapp.datasets.ingest import AcceptedImage, content_hash
from webapp.errors import id_in_range
from webapp.extensions import db
from webapp.messages import rendered, stored
from webapp.models import (Dataset, DatasetImage, DatasetRevision, Evaluation, Job, LabelSearch, ModelVersion,
                           iso)
from webapp.statuses import ACTIVE, EvaluationStatus, LabelSearchStatus
from webapp.storage import data_dir

SPLITS = ("train", "val", "test")
# What a revision copies of each image row of the one it is made from.
CONTENT_FIELDS = ("class_name", "split", "original_path", "stored_name", "sha256", "format", "width", "height",
                  "num_bytes", "signature")


def newest(dataset_id: int) -> DatasetRevision | None:
    return db.session.scalar(select(DatasetRevision).where(DatasetRevision.dataset_id == dataset_id)
                             .order_by(DatasetRevision.number.desc()).limit(1))


def get_revision(dataset: Dataset, number: int | None, field: str | None = None) -> DatasetRevision:
    """The dataset's revision `number` (None: its newest), or a revision_not_found error naming `field`."""
    details = {"field": field} if field else {}
    if number is None:
        revision = newest(dataset.id)
    else:
        revision = db.session.scalar(select(DatasetRevision).where(
            DatasetRevision.dataset_id == dataset.id, DatasetRevision.number == number)) if id_in_range(number) \
            else None
    if revision is None:
        raise StudioError("revision_not_found", "Dataset '%(name)s' has no revision %(number)s.",
                          {"name": dataset.name, "number": number if number is not None else 1}, **details)
    return revision


def manifest(revision_id: int) -> list[DatasetImage]:
    """The image rows of a revision, in the order they were added."""
    return list(db.session.scalars(select(DatasetImage).where(DatasetImage.revision_id == revision_id)
                                   .order_by(DatasetImage.id)))


def class_table(revision_id: int) -> list[dict]:
    """Image counts per class and split of a revision, sorted by class name."""
    rows = db.session.execute(
        select(DatasetImage.class_name, DatasetImage.split, func.count())
        .where(DatasetImage.revision_id == revision_id)
        .group_by(DatasetImage.class_name, DatasetImage.split)).all()
    table: dict[str, dict] = {}
    for name, split, count in rows:
        table.setdefault(name, {"name": name, "train": 0, "val": 0, "test": 0})[split] = count
    return [table[name] for name in sorted(table)]


def check_usable(rows: Iterable) -> None:
    """Refuse a manifest that could not train a model: at least 2 classes with training images, each with
    at least 2 images outside the test split, and no class with validation images but no training image
    (the rules an upload is checked by)."""
    rows = list(rows)
    if not rows:
        raise StudioError("no_usable_images", "No usable images were found in the upload.")
    counts = Counter(row.class_name for row in rows if row.split != "test")
    if len(counts) < 2:
        raise StudioError("too_few_classes", "A dataset needs at least 2 classes; found %(count)s (%(names)s).",
                          {"count": len(counts), "names": ", ".join(f"'{name}'" for name in counts) or "-"})
    for name, count in sorted(counts.items()):
        if count < 2:
            raise StudioError("class_too_small", "Class '%(name)s' has %(count)s usable image; every class needs at "
                                                 "least 2.", {"name": name, "count": count},
                              field="class", class_name=name)
    trained = {row.class_name for row in rows if row.split == "train"}
    no_train = sorted({row.class_name for row in rows if row.split == "val"} - trained)
    if no_train:
        raise StudioError("class_without_training_images", "Class '%(name)s' has validation images but no training "
                                                           "images.", {"name": no_train[0]},
                          field="class", class_name=no_train[0])


def add_revision(dataset: Dataset, rows: list[dict], note: Message, changes: dict, parent: int | None = None,
                 comment: str | None = None, by: str | None = None, report_now: bool = True) -> DatasetRevision:
    """Add the dataset's next revision with these image rows (dicts of CONTENT_FIELDS) to the session,
    with its quality report when every image's signature is known (`report_now=False`: a scan makes it
    later, see `report_in_request`). The number is taken by one conditional update, so two revisions made at
    once never share one."""
    taken = db.session.execute(update(Dataset).where(Dataset.id == dataset.id)
                               .values(revision_count=Dataset.revision_count + 1)
                               .returning(Dataset.revision_count)).scalar_one()
    db.session.refresh(dataset, ["revision_count"])
    revision = DatasetRevision(dataset_id=dataset.id, number=taken, parent=parent, note=stored(note),
                               comment=comment or None, changes=changes, num_images=len(rows),
                               content_hash=content_hash(AcceptedImage(**row) for row in rows),
                               created_by=by)
    db.session.add(revision)
    db.session.flush()
    images = [DatasetImage(dataset_id=dataset.id, revision_id=revision.id, **row) for row in rows]
    db.session.add_all(images)
    db.session.flush()
    if report_now:
        from webapp.datasets.quality import refresh_report

        refresh_report(revision, images)
    return revision


def report_in_request(num_images: int) -> bool:
    """Whether a revision of this many images made in a request gets its report in that request."""
    return num_images <= current_app.config["QUALITY_REPORT_IN_REQUEST_MAX_IMAGES"]


def row_fields(row: DatasetImage) -> dict:
    return {name: getattr(row, name) for name in CONTENT_FIELDS}


# Changes: what a person (or a fix) asks of a new revision.

@dataclass
class Changes:
    """Image rows (ids in the base revision) to drop, to give another class, to move to another split."""

    drop: set[int] = field(default_factory=set)
    relabel: dict[int, str] = field(default_factory=dict)
    move: dict[int, str] = field(default_factory=dict)


def change(dataset: Dataset, base_number: int | None, changes: Changes, fix_note: Message | None = None,
           comment: str | None = None) -> DatasetRevision:
    """A new revision: the base revision (None: the newest) with `changes` applied; refused when it would
    change nothing or could not train a model."""
    from webapp.datasets.layout import broken_class_name_rule

    base = get_revision(dataset, base_number, field="base")
    rows = manifest(base.id)
    known = {row.id for row in rows}
    asked = changes.drop | set(changes.relabel) | set(changes.move)
    unknown = sorted(asked - known)
    if unknown:
        raise StudioError("image_not_in_revision", "Image %(image)s is not in revision %(number)s of this dataset.",
                          {"image": unknown[0], "number": base.number}, field="images")
    for image_id, name in changes.relabel.items():
        if broken_class_name_rule(name):
            raise StudioError("invalid_field", "'%(name)s' cannot be a class name.", {"name": name[:80]},
                              field="relabel")
    new_rows, counts = [], Counter()
    for row in rows:
        if row.id in changes.drop:
            counts["removed"] += 1
            continue
        fields = row_fields(row)
        if changes.relabel.get(row.id, row.class_name) != row.class_name:
            fields["class_name"] = changes.relabel[row.id]
            counts["relabelled"] += 1
        if changes.move.get(row.id, row.split) != row.split:
            fields["split"] = changes.move[row.id]
            counts["moved"] += 1
        new_rows.append(fields)
    if not counts:
        raise StudioError("nothing_to_change", "These changes leave revision %(number)s as it is; no revision was "
                                               "made.", {"number": base.number})
    check_usable(AcceptedImage(**row) for row in new_rows)
    note = fix_note or change_note(counts)
    now = report_in_request(len(new_rows))
    revision = add_revision(dataset, new_rows, note, dict(counts), parent=base.number, comment=comment,
                            by=audit.actor(), report_now=now)
    audit.record("dataset.revise", "dataset", dataset.id, {"revision": revision.number, "from": base.number,
                                                           **counts})
    db.session.commit()
    if not now:
        from webapp.datasets.quality import queue_report

        queue_report(dataset)
    return revision


def change_note(counts: Counter | dict) -> Message:
    """The line that says what a revision changed, from its counts."""
    return Message(N_("Removed %(removed)s, relabelled %(relabelled)s, moved %(moved)s images."),
                   {"removed": counts.get("removed", 0), "relabelled": counts.get("relabelled", 0),
                    "moved": counts.get("moved", 0)})


# Comparing, downloading and deleting revisions.

def _entries(revision_id: int) -> dict[tuple[str, str], DatasetImage]:
    """A manifest by entry: the path in the upload and the content (a revision keeps both of an entry)."""
    return {(row.original_path, row.sha256): row for row in manifest(revision_id)}


def diff(old: DatasetRevision, new: DatasetRevision, limit: int = 500) -> dict:
    """What `new` changed from `old`: images added and removed, relabelled (class changed) and moved (split
    changed), each list capped at `limit` with its full count."""
    before, after = _entries(old.id), _entries(new.id)
    found: dict[str, list] = {"added": [], "removed": [], "relabelled": [], "moved": []}
    for key in sorted(after.keys() - before.keys()):
        found["added"].append(_image(after[key], new.dataset_id))
    for key in sorted(before.keys() - after.keys()):
        found["removed"].append(_image(before[key], old.dataset_id))
    for key in sorted(after.keys() & before.keys()):
        was, now = before[key], after[key]
        if was.class_name != now.class_name:
            found["relabelled"].append({**_image(now, new.dataset_id), "from": was.class_name, "to": now.class_name})
        if was.split != now.split:
            found["moved"].append({**_image(now, new.dataset_id), "from": was.split, "to": now.split})
    return {"from": old.number, "to": new.number, "counts": {kind: len(items) for kind, items in found.items()},
            **{kind: items[:limit] for kind, items in found.items()}}


def _image(row: DatasetImage, dataset_id: int) -> dict:
    return {"id": row.id, "path": row.original_path, "class_name": row.class_name, "split": row.split,
            "thumbnail_url": f"/datasets/{dataset_id}/thumbs/{row.id}.jpg"}


def archive_names(rows: list[DatasetImage]) -> Iterator[tuple[str, DatasetImage]]:
    """Each row's path in a zip laid out as an upload (`train/<class>/<file>`), its file name kept from the
    upload; a name taken twice in one folder gets the start of its content hash."""
    taken: set[str] = set()
    for row in rows:
        name = posixpath.basename(row.original_path.replace("\\", "/")) or row.stored_name
        path = f"{row.split}/{row.class_name}/{name}"
        if path in taken:
            stem, dot, extension = name.rpartition(".")
            path = f"{row.split}/{row.class_name}/{stem or extension}-{row.sha256[:12]}{dot}{extension if stem else ''}"
        while path in taken:
            path = f"{row.split}/{row.class_name}/{row.id}-{name}"
        taken.add(path)
        yield path, row


class _Pipe:
    """A write-only stream whose written bytes are taken out by the generator of a streamed answer."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def archive_stream(revision: DatasetRevision) -> Iterator[bytes]:
    """The revision as a zip in the upload layout, produced a file at a time (memory stays flat)."""
    rows = manifest(revision.id)
    files = data_dir().dataset_files(revision.dataset_id)
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for path, row in archive_names(rows):
            with files.image(row.stored_name).open("rb") as source, archive.open(path, "w", force_zip64=True) as out:
                while chunk := source.read(2**20):
                    out.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def users_of(revision: DatasetRevision) -> dict[str, int]:
    """What depends on a revision: model versions trained on it, jobs, evaluations and label-error searches
    that still read it."""
    def count(query) -> int:
        return db.session.scalar(select(func.count()).select_from(query.subquery()))

    return {"versions": count(select(ModelVersion.id).where(ModelVersion.revision_id == revision.id)),
            "jobs": count(select(Job.id).where(Job.revision_id == revision.id, Job.status.in_(sorted(ACTIVE)))),
            "evaluations": count(select(Evaluation.id).where(
                Evaluation.revision_id == revision.id,
                Evaluation.status.in_([EvaluationStatus.QUEUED, EvaluationStatus.RUNNING]))),
            "label_searches": count(select(LabelSearch.id).where(
                LabelSearch.revision_id == revision.id,
                LabelSearch.status.in_([LabelSearchStatus.QUEUED, LabelSearchStatus.RUNNING])))}


def delete_revision(dataset: Dataset, revision: DatasetRevision) -> None:
    """Delete a revision that nothing depends on (not the dataset's only one), then the files no other
    revision of the dataset holds."""
    if db.session.scalar(select(func.count()).where(DatasetRevision.dataset_id == dataset.id)) <= 1:
        raise StudioError("revision_in_use", "Revision %(number)s is the only revision of dataset '%(name)s'; "
                                             "delete the dataset instead.",
                          {"number": revision.number, "name": dataset.name})
    users = users_of(revision)
    if users["versions"]:
        raise StudioError("revision_in_use", "Revision %(number)s cannot be deleted: %(count)s model version(s) "
                                             "were trained on it.", {"number": revision.number,
                                                                     "count": users["versions"]})
    if users["jobs"] or users["evaluations"] or users["label_searches"]:
        raise StudioError("revision_in_use", "Revision %(number)s cannot be deleted while work that reads it is "
                                             "queued or running.", {"number": revision.number})
    audit.record("dataset.revision_delete", "dataset", dataset.id,
                 {"revision": revision.number, "num_images": revision.num_images})
    names = set(db.session.scalars(select(DatasetImage.stored_name).where(DatasetImage.revision_id == revision.id)))
    db.session.execute(delete(DatasetImage).where(DatasetImage.revision_id == revision.id))
    db.session.delete(revision)
    db.session.flush()
    kept = set(db.session.scalars(select(DatasetImage.stored_name).where(DatasetImage.dataset_id == dataset.id)))
    db.session.commit()
    files = data_dir().dataset_files(dataset.id)
    for name in names - kept:
        files.image(name).unlink(missing_ok=True)
        files.thumbnail(name.rsplit(".", 1)[0]).unlink(missing_ok=True)


def revision_json(revision: DatasetRevision, with_classes: bool = True) -> dict:
    """The API representation of a revision; its note in the request's language."""
    answer = {"number": revision.number, "parent": revision.parent, "note": rendered(revision.note),
              "comment": revision.comment, "changes": {kind: int((revision.changes or {}).get(kind, 0)) for kind in
                                                       ("added", "removed", "relabelled", "moved")},
              "num_images": revision.num_images, "content_hash": revision.content_hash,
              "created_by": revision.created_by, "created_at": iso(revision.created_at),
              "quality_ready": revision.quality is not None,
              "archive_url": f"/api/datasets/{revision.dataset_id}/revisions/{revision.number}/archive"}
    if with_classes:
        answer["classes"] = class_table(revision.id)
    return answer


def revisions_of(dataset: Dataset) -> list[DatasetRevision]:
    """The dataset's revisions, newest first."""
    return list(db.session.scalars(select(DatasetRevision).where(DatasetRevision.dataset_id == dataset.id)
                                   .order_by(DatasetRevision.number.desc())))


# Fixes the quality report proposes, as changes to the revision it was computed on.

def _groups(pairs: list[dict]) -> list[list[int]]:
    """The images linked by pairs, as groups (connected components), each sorted."""
    parent: dict[int, int] = {}

    def root(key: int) -> int:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for pair in pairs:
        parent[root(pair["a"])] = root(pair["b"])
    groups: dict[int, list[int]] = {}
    for key in list(parent):
        groups.setdefault(root(key), []).append(key)
    return [sorted(group) for group in groups.values()]


def fix_changes(revision: DatasetRevision, fix: str, kinds: list[str] | None = None) -> tuple[Changes, Message]:
    """The changes a fix makes to `revision`, from its quality report, and the note that says so.

    remove_duplicates keeps the first image of each group of near copies within a class and split;
    move_leaked_to_train and drop_leaked take each leaked pair's image outside train (of a pair between
    val and test, the val image); drop_flagged drops every image with an issue of `kinds` (all when empty)."""
    found = revision.quality
    if found is None:
        raise StudioError("report_not_ready", "The quality report of revision %(number)s is not there yet; fix it "
                                              "once its images are measured.", {"number": revision.number})
    if found["counts"].get("duplicates", 0) > len(found["duplicates"]) and fix == "remove_duplicates" or \
            found["counts"].get("leakage", 0) > len(found["leakage"]) and fix in ("move_leaked_to_train",
                                                                                  "drop_leaked"):
        raise StudioError("report_truncated", "The report lists only part of these findings; raise "
                                              "QUALITY_MAX_FINDINGS to fix them all at once.")
    changes = Changes()
    if fix == "remove_duplicates":
        for group in _groups(found["duplicates"]):
            changes.drop.update(group[1:])
        return changes, Message(N_("Removed %(count)s near-duplicate images (one of each group kept)."),
                                {"count": len(changes.drop)})
    if fix in ("move_leaked_to_train", "drop_leaked"):
        for pair in found["leakage"]:
            splits = dict(zip((pair["a"], pair["b"]), pair["splits"]))
            outside = [key for key, split in splits.items() if split != "train"]
            taken = outside if len(outside) == 1 else [key for key in outside if splits[key] == "val"]
            for key in taken:
                if fix == "drop_leaked":
                    changes.drop.add(key)
                else:
                    changes.move[key] = "train"
        if fix == "drop_leaked":
            return changes, Message(N_("Dropped %(count)s validation or test images that near-copy an image of "
                                       "another split."), {"count": len(changes.drop)})
        return changes, Message(N_("Moved %(count)s validation or test images that near-copy an image of another "
                                   "split to train."), {"count": len(changes.move)})
    wanted = set(kinds or [])
    flagged = [issue for issue in found["issues"] if not wanted or issue["kind"] in wanted]
    changes.drop.update(issue["key"] for issue in flagged)
    names = ", ".join(sorted({issue["kind"] for issue in flagged})) or "-"
    return changes, Message(N_("Dropped %(count)s flagged images (%(kinds)s)."),
                            {"count": len(changes.drop), "kinds": names})


def merge(first: Changes, second: Changes) -> Changes:
    """A fix's changes with a person's own (theirs win where both name an image)."""
    return Changes(first.drop | second.drop, {**first.relabel, **second.relabel}, {**first.move, **second.move})
