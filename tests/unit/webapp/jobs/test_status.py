"""Job status moves only along the allowed transitions, whoever asks."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import event

from webapp.extensions import db
from webapp import lifecycle
from webapp.jobs.work import JOBS, transition
from webapp.messages import english
from webapp.statuses import ACTIVE, FINISHED, JOB_TRANSITIONS, JobStatus, sources_of
from webapp.models import Dataset, Job, utcnow


@pytest.fixture
def new_job(app):
    def make(status: JobStatus, **values) -> int:
        with app.app_context():
            dataset = Dataset(name="d", status="ready")
            db.session.add(dataset)
            db.session.flush()
            job = Job(dataset_id=dataset.id, dataset_name="d", status=status, config={"epochs": 1}, **values)
            db.session.add(job)
            db.session.commit()
            return job.id
    return make


def test_the_vocabulary_is_complete_and_consistent():
    assert ACTIVE | FINISHED == set(JobStatus) and not ACTIVE & FINISHED
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert JOB_TRANSITIONS[JobStatus.SUCCEEDED] == frozenset()
    assert sources_of(JobStatus.RUNNING) == {JobStatus.QUEUED}
    assert all(status.finished == (status in FINISHED) for status in JobStatus)


def test_a_reaped_job_is_not_turned_into_succeeded(app, new_job):
    job_id = new_job(JobStatus.RUNNING, started_at=utcnow(), heartbeat_at=utcnow().replace(year=2000))
    with app.app_context():
        app.config["JOB_MAX_ATTEMPTS"] = 1
        assert lifecycle.reap(JOBS) == [job_id]
        job = db.session.get(Job, job_id)
        assert transition(job, JobStatus.SUCCEEDED) is False
        assert job.status == "failed" and "stopped responding" in english(job.error)


@pytest.mark.parametrize("status", [JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED,
                                    JobStatus.CANCELLED])
def test_only_a_queued_job_can_be_claimed(app, new_job, status):
    job_id = new_job(status)
    with app.app_context():
        assert lifecycle.claim(JOBS, job_id, "w1") is None
        assert db.session.get(Job, job_id).status == status


def test_claim_then_finish_then_resume_follow_the_table(app, new_job):
    job_id = new_job(JobStatus.QUEUED)
    with app.app_context():
        job = lifecycle.claim(JOBS, job_id, "w1")
        assert job.status == "running" and job.worker == "w1" and job.phase == "preparing"
        assert lifecycle.claim(JOBS, job_id, "w2") is None
        assert transition(job, JobStatus.FAILED, error="boom") and job.finished_at is not None
        assert transition(job, JobStatus.CANCELLED) is False and job.error == {"text": "boom"}
        assert transition(job, JobStatus.QUEUED) and job.status == "queued"


def test_cancelling_a_finished_job_is_409_with_a_code(client, app, new_job):
    job_id = new_job(JobStatus.SUCCEEDED)
    response = client.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 409 and response.get_json()["code"] == "job_finished"


def test_every_claim_is_a_new_attempt_and_only_the_current_attempt_may_write(app, new_job):
    job_id = new_job(JobStatus.QUEUED)
    with app.app_context():
        job = lifecycle.claim(JOBS, job_id, "worker-a")
        assert job.attempt == 1 and job.status == "running"
        first_started = job.started_at
        job.status = JobStatus.QUEUED  # given up on: queued again, and claimed by another worker
        db.session.commit()
        job = lifecycle.claim(JOBS, job_id, "worker-b")
        assert (job.attempt, job.worker, job.started_at) == (2, "worker-b", first_started)

        job.epoch, job.progress = 9, 0.9  # what the first worker, still alive, tries to write
        with pytest.raises(lifecycle.Superseded):
            lifecycle.fenced_commit(JOBS, job_id, 1)
        db.session.refresh(job)
        assert (job.epoch, job.progress) == (0, 0.0)
        job.epoch = 3
        lifecycle.fenced_commit(JOBS, job_id, 2)
        assert db.session.get(Job, job_id).epoch == 3

        stale = utcnow().replace(year=2000)
        job.heartbeat_at = stale
        db.session.commit()
        old = lifecycle.Heartbeat(JOBS, job_id, attempt=1, interval=0.01)
        stamped = threading.Event()  # the old heartbeat has sent its update at least once

        def sent(connection, cursor, statement, *args) -> None:
            if threading.current_thread() is old and statement.lstrip().upper().startswith("UPDATE JOBS"):
                stamped.set()

        event.listen(db.engine, "after_cursor_execute", sent)
        try:
            old.start()
            assert stamped.wait(60)  # (a pause alone may end before the thread has run at all)
        finally:
            old.stopped.set()
            old.join()
            event.remove(db.engine, "after_cursor_execute", sent)
        db.session.refresh(job)
        assert job.heartbeat_at == stale  # the superseded worker's heartbeat does not keep the job alive
        assert transition(job, JobStatus.SUCCEEDED, Job.attempt == 1) is False
        assert transition(job, JobStatus.SUCCEEDED, Job.attempt == 2) is True
