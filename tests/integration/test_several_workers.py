"""Two training workers sharing one PostgreSQL database, one Redis and one data folder, as two hosts of a
team would: jobs spread over both, and a worker killed mid-job hands its job to the other."""
from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from engine.config import TrainConfig
from tests.factories import newest_revision
from tests.integration.test_training import EPOCHS_TO_KILL, FAST, finished, start, upload_colours, wait_for
from launcher import worker_process
from tests.postgres import new_database
from tests.stack import running_stack
from webapp import create_app
from webapp.extensions import db
from webapp import redis_keys
from webapp.models import Job, utcnow
from webapp.storage import DataDir
from webapp.taskqueue import TRAIN_TASK

pytestmark = pytest.mark.integration
# Heartbeats every second and a worker given up on after 10 s of silence, so the hand-over is quick.
SETTINGS = {"JOB_HEARTBEAT_SECONDS": 1, "JOB_STALE_SECONDS": 10, "REAPER_INTERVAL_SECONDS": 1}


@pytest.fixture(scope="module")
def team_stack(tmp_path_factory, postgres_server):
    database = new_database(postgres_server)
    with running_stack(tmp_path_factory.mktemp("team"), training_workers=2,
                       SQLALCHEMY_DATABASE_URI=database, **SETTINGS) as stack:
        assert stack["config"]["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
        yield stack


def overlapping(first: dict, second: dict) -> bool:
    """Whether two finished jobs were training at the same time (by their recorded start and end, to the
    second: jobs that only touch within one second do not count)."""
    return first["started_at"] < second["finished_at"] and second["started_at"] < first["finished_at"]


def test_four_jobs_at_once_keep_both_workers_busy_and_all_succeed(team_stack):
    client = create_app(team_stack["config"]).test_client()
    dataset_id = upload_colours(client, per_class=10)
    jobs = [start(client, dataset_id, epochs=4, seed=seed) for seed in range(4)]
    names = set(team_stack["workers"])
    health = client.get("/api/health").get_json()
    assert names <= {worker["name"].partition("@")[0] for worker in health["workers"]}
    results = [wait_for(client, job_id, finished, timeout=400) for job_id in jobs]
    assert [job["status"] for job in results] == ["succeeded"] * 4, [job["error"] for job in results]
    assert {job["worker"].partition("@")[0] for job in results} == names
    # the two workers trained at the same time (read from the jobs' records, not caught by sampling)
    assert any(overlapping(one, other) for one in results for other in results
               if one["worker"] != other["worker"]), [(j["worker"], j["started_at"], j["finished_at"]) for j in results]
    for job in results:  # each job's own epochs, once each, and its own version
        assert [epoch["epoch"] for epoch in job["epochs"]] == [1, 2, 3, 4]
        assert all(0 <= epoch["val_acc"] <= 1 and epoch["train_loss"] > 0 for epoch in job["epochs"])
        assert job["attempt"] == 1 and job["retries"] == 0
    assert len({job["model_version"] for job in results}) == 4
    versions = client.get("/api/models").get_json()["models"]
    assert {version["job_id"] for version in versions} >= set(jobs)


def test_a_worker_killed_mid_job_hands_it_to_the_other(team_stack):
    client = create_app(team_stack["config"]).test_client()
    dataset_id = upload_colours(client, per_class=6, seed=500)
    job_id = start(client, dataset_id, epochs=EPOCHS_TO_KILL)
    job = wait_for(client, job_id, lambda job: len(job["epochs"]) >= 2 and job["checkpoint_bytes"] > 0,
                   timeout=300)
    victim = job["worker"].partition("@")[0]
    survivor = next(name for name in team_stack["workers"] if name != victim)
    os.killpg(team_stack["workers"][victim].process.pid, signal.SIGKILL)  # the host went down
    job = wait_for(client, job_id, finished, timeout=400)  # the survivor's own reaper hands it over
    assert job["status"] == "succeeded", job["error"]
    assert job["worker"].partition("@")[0] == survivor
    assert (job["attempt"], job["retries"]) == (2, 1) and job["resumed_from_epoch"] >= 1
    assert [epoch["epoch"] for epoch in job["epochs"]] == list(range(1, EPOCHS_TO_KILL + 1))  # never repeated
    assert job["model_version"] is not None
    team_stack["workers"][victim].start()  # the host comes back: its worker joins again



def test_each_worker_takes_its_device_kind_queue_and_routed_jobs_run_there(team_stack):
    client = create_app(team_stack["config"]).test_client()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # the device is probed in a child process after start
        workers = [worker for worker in client.get("/api/workers").get_json()["workers"]
                   if worker["kind"] == "training"]
        if len(workers) == 2 and all("training.cpu" in worker["queues"] for worker in workers):
            break
        time.sleep(0.5)
    assert [(worker["device"], worker["queues"]) for worker in workers] == [("cpu", ["training", "training.cpu"])] * 2
    dataset_id = upload_colours(client, per_class=6, seed=700)
    refused = client.post("/api/jobs", json={"dataset_id": dataset_id, "device": "gpu"})
    assert refused.status_code == 409 and refused.get_json()["code"] == "no_worker_for_device"
    job = wait_for(client, start(client, dataset_id, device="cpu"), finished, timeout=300)
    assert job["status"] == "succeeded" and (job["device"], job["queue"]) == ("cpu", "training.cpu")


def test_a_job_committed_but_never_sent_is_sent_by_the_sweep(team_stack):
    """As when a web process dies between saving a job and sending its task, or Redis loses its queue."""
    app = create_app(team_stack["config"])
    client = app.test_client()
    dataset_id = upload_colours(client, per_class=6, seed=900)
    with app.app_context():
        job = Job(dataset_id=dataset_id, dataset_name="colours", status="queued", phase="queued",
                  **newest_revision(dataset_id),
                  config=TrainConfig(**FAST).to_dict())
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    job = wait_for(client, job_id, finished, timeout=300)  # two sweeps a second apart find it without a task
    assert job["status"] == "succeeded" and job["attempt"] == 1
    assert [epoch["epoch"] for epoch in job["epochs"]] == [1, 2, 3]


def test_a_task_the_broker_lost_is_sent_again_once_a_worker_of_its_queue_is_idle(team_stack):
    """As when Redis restarts without its data after a job was sent: the row says it was sent, no message
    waits, and both workers have nothing to do for longer than the deadline, so the watcher sends it again."""
    app = create_app(team_stack["config"])
    client = app.test_client()
    dataset_id = upload_colours(client, per_class=6, seed=901)
    with app.app_context():
        job = Job(dataset_id=dataset_id, dataset_name="colours", status="queued", phase="queued",
                  **newest_revision(dataset_id),
                  config=TrainConfig(**FAST).to_dict(), sent_at=utcnow())
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    running = wait_for(client, job_id, lambda job: job["status"] != "queued", timeout=300)
    entry = redis.Redis.from_url(team_stack["config"]["REDIS_URL"]).hgetall(redis_keys.worker(running["worker"]))
    job = wait_for(client, job_id, finished, timeout=300)
    assert job["status"] == "succeeded" and job["attempt"] == 1
    assert entry[b"task"] in (f"{TRAIN_TASK}:{job_id}".encode(), b"")  # what the worker ran, or just ended
    assert entry[b"idle_since"]


def test_a_worker_leaves_a_device_queue_its_machine_cannot_serve(team_stack):
    """`-Q training,training.gpu` on this CPU machine: it keeps `training`, takes `training.cpu`, drops the GPU's."""
    client = create_app(team_stack["config"]).test_client()
    data_dir = DataDir(team_stack["data_dir"])
    mislabelled = worker_process(data_dir, team_stack["env"], name="mislabelled", service="worker-mislabelled",
                                 queues="training,training.gpu").start()
    try:
        deadline, entry = time.monotonic() + 300, None
        while time.monotonic() < deadline:
            entry = next((worker for worker in client.get("/api/workers").get_json()["workers"]
                          if worker["name"].startswith("mislabelled@")), None)
            if entry and entry["device"] and "training.gpu" not in entry["queues"]:
                break
            time.sleep(0.5)
        assert entry and (entry["device"], entry["queues"]) == ("cpu", ["training", "training.cpu"])
    finally:
        mislabelled.stop()


def test_a_job_that_reaches_a_worker_of_the_wrong_device_fails_with_the_reason(team_stack):
    app = create_app(team_stack["config"])
    client = app.test_client()
    dataset_id = upload_colours(client, per_class=6, seed=1000)
    with app.app_context():  # as if a GPU job's task had reached a CPU worker's queue
        job = Job(dataset_id=dataset_id, dataset_name="colours", status="queued", phase="queued",
                  **newest_revision(dataset_id),
                  config=TrainConfig(**FAST).to_dict(), queue="training.gpu")
        db.session.add(job)
        db.session.commit()
        job_id = job.id
        app.extensions["celery"].send_task(TRAIN_TASK, args=[job_id], queue="training")
    job = wait_for(client, job_id, finished, timeout=300)
    assert job["status"] == "failed" and job["device"] == "gpu"
    assert "asked for a GPU, but the worker that took it trains on cpu" in job["error"]
    assert job["epochs"] == [] and job["model_version"] is None
