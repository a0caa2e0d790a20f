"""`Studio`: the studio's JSON API as typed methods. Errors come back as one exception, `StudioAPIError`."""
from __future__ import annotations

import itertools
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

import requests

from studio_client.models import (AuditEntry, BatchRun, Dataset, Job, JobEvent, ModelVersion, Prediction, Release,
                                  ReviewItem, Revision)
from studio_client.multipart import FilePart, MultipartBody, Progress

DEFAULT_URL = "http://127.0.0.1:5000"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
POLL_SECONDS = 1.0
PAGE_LIMIT = 500  # the most rows the studio answers per page of a list
# Answers that mean "the live stream is not for now": the job is polled, and the stream tried again later.
STREAM_REFUSALS = frozenset({429, 503})
STREAM_RETRY_SECONDS = 30.0
# Refusals of one image (not an image, too large, corrupt): the next image may still be classified.
IMAGE_REFUSALS = frozenset({400, 413, 415})



class StudioAPIError(Exception):
    """A refusal of the studio (`code` is stable, `message` is for people), or a failure to reach it
    (status 0, code `connection_error`)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 body: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.body = status, code, message, field, body or {}

    @classmethod
    def of(cls, response: requests.Response) -> "StudioAPIError":
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "code" not in body:
            text = response.text.strip()[:300] or response.reason or "no answer"
            return cls(response.status_code, "http_error", f"HTTP {response.status_code}: {text}")
        return cls(response.status_code, body["code"], body.get("error") or body["code"], body.get("field"), body)

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.message}{where} [{self.code}]"


def folder_parts(folder: Path) -> list[FilePart]:
    """Every file under `folder` as a `files` part named by its path from the folder's parent (the folder's
    own name wraps it, as a browser sends a dropped folder: `flowers/rose/a.jpg`)."""
    return [FilePart("files", path.relative_to(folder.parent).as_posix(), path)
            for path in sorted(folder.rglob("*")) if path.is_file()]


def upload_parts(path: Path) -> list[FilePart]:
    """The parts that send a folder (each file under its path) or a .zip (as `archive`), streamed from disk."""
    if path.is_dir():
        parts = folder_parts(path)
        if not parts:
            raise StudioAPIError(0, "empty_folder", f"{path} holds no files.")
        return parts
    if path.is_file():
        return [FilePart("archive", path.name, path)]
    raise StudioAPIError(0, "not_found", f"{path} is neither a folder nor a file.")


def images_in(folder: Path) -> list[Path]:
    """The images under `folder` (by extension), in a stable order."""
    return [path for path in sorted(folder.rglob("*")) if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES]


def _finished(job: dict) -> JobEvent:
    """The closing `status` event, made from a finished job's JSON."""
    return JobEvent("status", {"status": job["status"], "finished": True, "error": job.get("error")})


class Studio:
    """A studio at `base_url` (else $STUDIO_URL, else http://127.0.0.1:5000), acting with the API token
    `token` (else $STUDIO_TOKEN; none is needed while the studio runs without sign-in)."""

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = (base_url or os.environ.get("STUDIO_URL") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        token = token or os.environ.get("STUDIO_TOKEN")
        if token:
            # A bearer token needs no CSRF header: the studio checks CSRF only for browser sessions.
            self.session.headers["Authorization"] = f"Bearer {token}"

    def _send(self, method: str, path: str, *, stream: bool = False, timeout: float | None = None,
              **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.base_url + path, stream=stream,
                                            timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise StudioAPIError(0, "connection_error", f"Cannot reach the studio at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise StudioAPIError.of(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise StudioAPIError(response.status_code, "not_json",
                                 f"{method} {path} did not answer JSON; is {self.base_url} the studio?") from None

    def _all(self, path: str, key: str, params: dict | None = None) -> list[dict]:
        """Every row of the paged list at `path` (`key` in each answer), following `next_before`."""
        return list(self._rows(path, key, params))

    def _rows(self, path: str, key: str, params: dict | None = None, page_size: int = PAGE_LIMIT) -> Iterator[dict]:
        """The rows of the paged list at `path`, newest first, a page fetched only when the previous one is read."""
        before = None
        while True:
            page = {**(params or {}), "limit": page_size, **({"before": before} if before is not None else {})}
            answer = self._json("GET", path, params=page)
            yield from answer[key]
            before = answer.get("next_before")
            if before is None:
                return

    # Datasets
    def upload_dataset(self, path: str | os.PathLike, name: str | None = None,
                       progress: Progress | None = None) -> Dataset:
        """Upload a folder (one folder per class, optionally under train/ val/ test/) or a .zip, streamed
        from disk; answers as soon as the studio has stored it (status `processing`, see `wait_for_dataset`)."""
        path = Path(path).resolve()
        body = MultipartBody({"name": name or path.stem}, upload_parts(path), progress)
        # An upload may take long to send; the timeout bounds each wait for the server, not the whole upload.
        return Dataset.of(self._json("POST", "/api/datasets", data=body,
                                     headers={"Content-Type": body.content_type}))

    def dataset(self, dataset_id: int) -> Dataset:
        return Dataset.of(self._json("GET", f"/api/datasets/{dataset_id}"))

    def datasets(self) -> list[Dataset]:
        """Every dataset, newest first, without its classes (see `dataset`)."""
        return [Dataset.of(row) for row in self._all("/api/datasets", "datasets")]

    def wait_for_dataset(self, dataset_id: int, timeout: float | None = None) -> Dataset:
        """The dataset once its check is over (`ready` or `failed`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (dataset := self.dataset(dataset_id)).status == "processing":
            if deadline is not None and time.monotonic() > deadline:
                raise StudioAPIError(0, "timeout", f"Dataset {dataset_id} is still being checked.")
            time.sleep(POLL_SECONDS / 2)
        return dataset

    def revisions(self, dataset_id: int) -> list[Revision]:
        """The dataset's revisions, newest first."""
        return [Revision.of(row) for row in self._json("GET", f"/api/datasets/{dataset_id}/revisions")["revisions"]]

    def revision(self, dataset_id: int, number: int) -> Revision:
        return Revision.of(self._json("GET", f"/api/datasets/{dataset_id}/revisions/{number}"))

    def revise(self, dataset_id: int, **changes: Any) -> Revision:
        """A new revision from an older one; `changes` as POST /api/datasets/<id>/revisions takes them
        (fix, kinds, drop, relabel, move, base, comment)."""
        return Revision.of(self._json("POST", f"/api/datasets/{dataset_id}/revisions", json=changes))

    # Jobs
    def create_job(self, dataset_id: int, revision: int | None = None, **options: Any) -> Job:
        """Queue a training job on a revision of the dataset (None: its newest); `options` are the job
        options of POST /api/jobs (backbone, epochs, ...)."""
        chosen = {"revision": revision} if revision is not None else {}
        created = self._json("POST", "/api/jobs", json={"dataset_id": dataset_id, **chosen, **options})
        return self.job(created["id"])

    def job(self, job_id: int) -> Job:
        return Job.of(self._json("GET", f"/api/jobs/{job_id}"))

    def jobs(self, status: str | None = None) -> list[Job]:
        """Every job (only those in `status` if given), newest first."""
        params = {"status": status} if status else None
        return [Job.of(job) for job in self._all("/api/jobs", "jobs", params)]

    def cancel_job(self, job_id: int) -> dict:
        return self._json("POST", f"/api/jobs/{job_id}/cancel")

    def resume_job(self, job_id: int) -> Job:
        return Job.of(self._json("POST", f"/api/jobs/{job_id}/resume"))

    def follow_job(self, job_id: int) -> Iterator[JobEvent]:
        """The job's live events until it finishes, from its server-sent event stream: a `snapshot` (the whole
        job), then `progress`, `epoch` and `status` events; the last is a `status` event with `finished` true.
        While the studio has no stream to give (429 `too_many_streams`, 503 without Redis) each poll of
        GET /api/jobs/<id> is a snapshot; a stream that ends or breaks off is opened again (with a new
        snapshot), so a snapshot may repeat epochs already seen."""
        stream_again_at = 0.0
        while True:
            if time.monotonic() >= stream_again_at:
                try:
                    for event in self._event_stream(job_id):
                        yield event
                        if event.finished:
                            if event.type == "snapshot":  # a finished job's stream is its snapshot alone
                                yield _finished(event.data)
                            return
                    continue
                except StudioAPIError as exc:
                    if exc.status not in STREAM_REFUSALS:
                        raise
                    stream_again_at = time.monotonic() + STREAM_RETRY_SECONDS
                except requests.RequestException:
                    pass  # the stream broke off: poll once, then open it again
            job = self.job(job_id)
            yield JobEvent("snapshot", job.raw)
            if job.finished:
                yield _finished(job.raw)
                return
            time.sleep(POLL_SECONDS)

    def _event_stream(self, job_id: int) -> Iterator[JobEvent]:
        response = self._send("GET", f"/api/jobs/{job_id}/events", stream=True,
                              headers={"Accept": "text/event-stream"}, timeout=(self.timeout, 60))
        with response:
            event, data = "message", []
            for line in response.iter_lines(decode_unicode=True):
                if line == "":
                    if data:
                        yield JobEvent(event, json.loads("\n".join(data)))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())

    # Versions and the release
    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        return [ModelVersion.of(row) for row in self._all("/api/models", "models")]

    def version(self, version: int) -> ModelVersion:
        return ModelVersion.of(self._json("GET", f"/api/models/{version}"))

    def release(self) -> Release:
        return Release.of(self._json("GET", "/api/release"))

    def promote(self, version: int) -> Release:
        """Put `version` into production (any experiment stops), unless the release changed meanwhile."""
        current = self.release()
        return Release.of(self._json("PUT", "/api/release", json={"production": version,
                                                                   "revision": current.revision}))

    def rollback(self) -> Release:
        """Production goes back to the version that served before it."""
        return Release.of(self._json("POST", "/api/release/rollback"))

    # Prediction
    def predict(self, path: str | os.PathLike, version: int | None = None, top_k: int | None = None,
                client_id: str | None = None, explain: bool = False) -> Prediction:
        """Classify one image file with the released model, or with `version` when given; with `explain`, the
        answer's `explanation` says where the model looked (see POST /api/predict)."""
        params = {key: value for key, value in (("version", version), ("top_k", top_k)) if value is not None}
        if explain:
            params["explain"] = "1"
        headers = {"Content-Type": "application/octet-stream"}
        if client_id:
            headers["X-Client-Id"] = client_id
        with open(path, "rb") as image:
            return Prediction.of(self._json("POST", "/api/predict", data=image, params=params, headers=headers))

    def predict_files(self, paths: Iterable[str | os.PathLike], version: int | None = None,
                      top_k: int | None = None) -> Iterator[tuple[Path, Prediction | StudioAPIError]]:
        """Each file with its prediction, or the refusal of that one image (not an image, too large,
        corrupt); a refusal that concerns every image (a bad token, an unknown version) is raised."""
        for path in map(Path, paths):
            try:
                yield path, self.predict(path, version, top_k)
            except StudioAPIError as exc:
                if exc.status not in IMAGE_REFUSALS:
                    raise
                yield path, exc

    def predict_folder(self, folder: str | os.PathLike, version: int | None = None, top_k: int | None = None,
                       ) -> Iterator[tuple[Path, Prediction | StudioAPIError]]:
        """`predict_files` of every image under `folder`."""
        return self.predict_files(images_in(Path(folder)), version, top_k)

    # The review queue
    def review_settings(self) -> dict:
        """The review queue's settings (enabled, margin, sample_rate, hourly_cap, keep_anonymous)."""
        return self._json("GET", "/api/review/settings")

    def change_review_settings(self, **changes: Any) -> dict:
        """Change some of the review queue's settings (an admin's call); the others keep their values."""
        return self._json("PUT", "/api/review/settings", json=changes)

    def review_items(self, status: str = "waiting", version: int | None = None) -> list[ReviewItem]:
        """Every review item of `status` (waiting, labelled, dismissed or added), newest first."""
        params = {"status": status, **({"version": version} if version is not None else {})}
        return [ReviewItem.of(item) for item in self._all("/api/review/items", "items", params)]

    def label_review_item(self, item_id: int, label: str) -> ReviewItem:
        """Give a review item one of its version's classes."""
        return ReviewItem.of(self._json("POST", f"/api/review/items/{item_id}", json={"label": label}))

    def dismiss_review_item(self, item_id: int) -> ReviewItem:
        return ReviewItem.of(self._json("POST", f"/api/review/items/{item_id}", json={"dismiss": True}))

    def add_reviewed_to_revision(self, version: int) -> dict:
        """Add the version's labelled review items to a new revision of the dataset it was trained on:
        {"dataset", "revision", "review_images"}."""
        return self._json("POST", "/api/review/revision", json={"version": version})

    # Scheduled backups
    def backups(self) -> dict:
        """The scheduled backups, newest first, and the schedule (an admin's call): {"backups": [{"id",
        "status", "file", "size_bytes", "files", "missing", "schema_revision", "created_at", "finished_at",
        "removed_at", "error"}], "every_hours", "keep"}."""
        return self._json("GET", "/api/backups")

    # Batch predictions
    def start_batch(self, path: str | os.PathLike | None = None, dataset_id: int | None = None,
                    revision: int | None = None, version: int | None = None, top_k: int | None = None,
                    progress: Progress | None = None) -> BatchRun:
        """Classify every image of a folder or a .zip (streamed from disk), or of a dataset revision
        (`dataset_id`, `revision`: its newest by default), in the background with `version` (default: the
        production version); answers with the queued run (see `wait_for_batch`)."""
        options = {key: str(value) for key, value in (("version", version), ("top_k", top_k), ("dataset_id", dataset_id),
                                                       ("revision", revision)) if value is not None}
        parts = [] if path is None else upload_parts(Path(path).resolve())
        body = MultipartBody(options, parts, progress)
        return BatchRun.of(self._json("POST", "/api/batch-predictions", data=body,
                                      headers={"Content-Type": body.content_type}))

    def batch(self, batch_id: int) -> BatchRun:
        return BatchRun.of(self._json("GET", f"/api/batch-predictions/{batch_id}"))

    def batches(self) -> list[BatchRun]:
        """Every batch run, newest first."""
        return [BatchRun.of(row) for row in self._all("/api/batch-predictions", "batches")]

    def cancel_batch(self, batch_id: int) -> BatchRun:
        return BatchRun.of(self._json("POST", f"/api/batch-predictions/{batch_id}/cancel"))

    def delete_batch(self, batch_id: int) -> dict:
        return self._json("DELETE", f"/api/batch-predictions/{batch_id}")

    def wait_for_batch(self, batch_id: int, on_progress=None, timeout: float | None = None) -> BatchRun:
        """The run once it ended; `on_progress(run)` is called after each poll while it goes on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (run := self.batch(batch_id)).finished:
            if on_progress is not None:
                on_progress(run)
            if deadline is not None and time.monotonic() > deadline:
                raise StudioAPIError(0, "timeout", f"Batch run {batch_id} is still running.")
            time.sleep(POLL_SECONDS)
        return run

    def download_batch_results(self, batch_id: int, destination: str | os.PathLike, kind: str = "csv") -> Path:
        """Write an ended run's results (`kind` csv or jsonl) to `destination` (a file, or a folder to put
        `batch-<id>-results.<kind>` in), streamed; the file's path."""
        destination = Path(destination)
        if destination.is_dir():
            destination = destination / f"batch-{batch_id}-results.{kind}"
        response = self._send("GET", f"/api/batch-predictions/{batch_id}/results.{kind}", stream=True)
        with response, open(destination, "wb") as out:
            for chunk in response.iter_content(256 * 1024):
                out.write(chunk)
        return destination

    # Audit log

    def audit(self, actor: str | None = None, action: str | None = None, subject_type: str | None = None,
              subject_id: int | str | None = None, address: str | None = None, since: datetime | str | None = None,
              until: datetime | str | None = None, limit: int | None = None) -> list[AuditEntry]:
        """The audit log's entries (an admin's call), newest first, narrowed by the filters given: `action`
        exact or a prefix ending with a dot (`user.`), `since`/`until` moments (a datetime without a zone is
        UTC); at most `limit` entries (default: all)."""
        chosen = {"actor": actor, "action": action, "subject_type": subject_type, "subject_id": subject_id,
                  "address": address, "since": since, "until": until}
        params = {name: value.isoformat() if isinstance(value, datetime) else str(value)
                  for name, value in chosen.items() if value is not None}
        rows = self._rows("/api/audit", "entries", params, min(PAGE_LIMIT, limit or PAGE_LIMIT))
        return [AuditEntry.of(row) for row in itertools.islice(rows, limit)]

    # --- webhooks (an admin's calls) ------------------------------------------------------------------------

    def webhooks(self) -> list[dict]:
        """Every webhook endpoint (url, description, events, enabled)."""
        return self._json("GET", "/api/webhooks")["endpoints"]

    def create_webhook(self, url: str, events: list[str], description: str = "", enabled: bool = True) -> dict:
        """Register an endpoint; the answer's `secret` (`whsec_...`) is shown this once."""
        return self._json("POST", "/api/webhooks", json={"url": url, "events": events, "description": description,
                                                         "enabled": enabled})

    def webhook(self, endpoint_id: int) -> dict:
        return self._json("GET", f"/api/webhooks/{endpoint_id}")

    def change_webhook(self, endpoint_id: int, **changes: Any) -> dict:
        """Change some of an endpoint's url, description, events and enabled; the others keep their values."""
        return self._json("PUT", f"/api/webhooks/{endpoint_id}", json=changes)

    def delete_webhook(self, endpoint_id: int) -> dict:
        return self._json("DELETE", f"/api/webhooks/{endpoint_id}")

    def rotate_webhook_secret(self, endpoint_id: int) -> str:
        """A new signing secret (the old one still signs for a grace period)."""
        return self._json("POST", f"/api/webhooks/{endpoint_id}/rotate")["secret"]

    def test_webhook(self, endpoint_id: int) -> dict:
        """Send a `test` event to the endpoint; its delivery."""
        return self._json("POST", f"/api/webhooks/{endpoint_id}/test")

    def webhook_deliveries(self, endpoint_id: int) -> list[dict]:
        """An endpoint's deliveries, newest first, each with its tries."""
        return self._all(f"/api/webhooks/{endpoint_id}/deliveries", "deliveries")

    def resend_webhook_delivery(self, endpoint_id: int, delivery_id: int) -> dict:
        """Send an ended delivery again, with the same message id."""
        return self._json("POST", f"/api/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend")
