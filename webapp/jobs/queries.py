"""What the pages read of jobs beyond the row: places in line, and the images of a confusion-matrix cell."""
from __future__ import annotations

from sqlalchemy import select

from engine.errors import StudioError
from webapp.extensions import db
from webapp.models import DatasetImage, DatasetRevision, Job
from webapp.statuses import JobStatus


def queue_positions() -> dict[int, int]:
    """Each queued job's place in line among the jobs of its own queue (a GPU job waits only for GPU jobs)."""
    positions, lengths = {}, {}
    for job_id, queue in db.session.execute(select(Job.id, Job.queue).where(Job.status == JobStatus.QUEUED)
                                            .order_by(Job.id)):
        lengths[queue] = positions[job_id] = lengths.get(queue, 0) + 1
    return positions


CELL_LIMIT = 120


def confusion_cell(job: Job, split: str, true: int, predicted: int) -> dict:
    """The images of one confusion-matrix cell with what the best epoch answered, surest first."""
    if split not in ("val", "test"):
        raise StudioError("invalid_field", "'split' must be 'val' or 'test'.", field="split")
    answers = (job.predictions or {}).get(split)
    if answers is None:
        raise StudioError("results_not_ready", "Job %(id)s has no per-image results for the %(split)s split "
                                               "(they are kept when a job finishes training).",
                          {"id": job.id, "split": split})
    names = job.class_names
    for name, value in (("true", true), ("predicted", predicted)):
        if not 0 <= value < len(names):
            raise StudioError("invalid_field", "'%(name)s' must be a class index from 0 to %(last)s.",
                              {"name": name, "last": len(names) - 1}, field=name)
    chosen = sorted((a for a in answers if a["label"] == true and a["predicted"] == predicted),
                    key=lambda a: -a["top"][0][1])
    images = {}
    if job.revision_id is not None and chosen:
        keys = [a["key"] for a in chosen[:CELL_LIMIT]]
        images = {row.sha256: row for row in db.session.scalars(select(DatasetImage).where(
            DatasetImage.revision_id == job.revision_id, DatasetImage.sha256.in_(keys)))}
    items = []
    for answer in chosen[:CELL_LIMIT]:
        image = images.get(answer["key"])
        items.append({"image_id": image.id if image else None,
                      "name": image.original_path if image else None,
                      "thumbnail_url": f"/datasets/{job.dataset_id}/thumbs/{image.id}.jpg" if image else None,
                      "top": [{"class": names[index], "confidence": confidence} for index, confidence in answer["top"]]})
    return {"split": split, "true": names[true], "predicted": names[predicted], "count": len(chosen),
            "shown": len(items), "items": items}



def leakage(job: Job) -> dict | None:
    """How much the job's validation (and test) figures owe to images that near-copy a training image of the
    revision it trained on (its quality report's leakage), and its accuracy on each split without them;
    None before the job has per-image results or while the revision's report is not there."""
    revision = db.session.get(DatasetRevision, job.revision_id) if job.revision_id else None
    if revision is None or revision.quality is None or not job.predictions:
        return None
    pairs = revision.quality.get("leakage", [])
    keys = {key for pair in pairs for key in (pair["a"], pair["b"])}
    rows = {row.id: row for row in db.session.scalars(select(DatasetImage).where(
        DatasetImage.id.in_(sorted(keys))))} if keys else {}
    near_train: dict[str, set[str]] = {"val": set(), "test": set()}
    for pair in pairs:
        sides = [rows.get(pair["a"]), rows.get(pair["b"])]
        if None in sides:
            continue
        for this, other in (sides, sides[::-1]):
            if this.split in near_train and other.split == "train":
                near_train[this.split].add(this.sha256)
    answer = {"partial": revision.quality["counts"].get("leakage", 0) > len(pairs)}
    for split, leaked in near_train.items():
        answers = job.predictions.get(split)
        if answers is None:
            continue
        clean = [item for item in answers if item["key"] not in leaked]
        answer[split] = {"images": len(answers), "near_train": len(answers) - len(clean),
                         "accuracy": _accuracy(answers), "accuracy_without": _accuracy(clean)}
    return answer


def _accuracy(answers: list[dict]) -> float | None:
    return round(sum(item["label"] == item["predicted"] for item in answers) / len(answers), 4) if answers else None
