"""What the pages read of jobs beyond the row: places in line, and the images of a confusion-matrix cell."""
from __future__ import annotations

from sqlalchemy import select

from engine.errors import StudioError
from webapp.extensions import db
from webapp.models import DatasetImage, Job
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
    if job.dataset_id is not None and chosen:
        keys = [a["key"] for a in chosen[:CELL_LIMIT]]
        images = {row.sha256: row for row in db.session.scalars(select(DatasetImage).where(
            DatasetImage.dataset_id == job.dataset_id, DatasetImage.sha256.in_(keys)))}
    items = []
    for answer in chosen[:CELL_LIMIT]:
        image = images.get(answer["key"])
        items.append({"image_id": image.id if image else None,
                      "name": image.original_path if image else None,
                      "thumbnail_url": f"/datasets/{job.dataset_id}/thumbs/{image.id}.jpg" if image else None,
                      "top": [{"class": names[index], "confidence": confidence} for index, confidence in answer["top"]]})
    return {"split": split, "true": names[true], "predicted": names[predicted], "count": len(chosen),
            "shown": len(items), "items": items}

