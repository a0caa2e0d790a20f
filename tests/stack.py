"""Running pieces for tests: an app config per data folder, the Redis + worker stack, an HTTP server."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

from werkzeug.serving import make_server

from launcher import (batch_worker_process, free_port, ingest_worker_process, redis_password, redis_process, redis_url, wait_for_port,
                      wait_for_redis, web_process, worker_process)
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.storage import DataDir
from webapp.taskqueue import BATCH_WORKER_PREFIX, INGEST_WORKER_PREFIX


DATABASE_FILE = "studio.sqlite3"  # each test's SQLite database, in its data folder


def app_config(data_dir, **overrides) -> dict:
    config = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / DATABASE_FILE}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        # Unit tests have no worker: uploads are checked in the request; the stack's tests use the ingest worker.
        "INGEST_IN_REQUEST": True,
        # Their Redis address refuses at once: sending a task is not tried again.
        "QUEUE_PUBLISH_RETRIES": 0,
    }
    config.update(overrides)
    return config


def upload_dataset(client, data: dict, timeout: float = 60) -> dict:
    """POST /api/datasets as a multipart form and wait for its ingest; the dataset's JSON once it is
    no longer processing (in the request, 201, or on the ingest worker, 202 then polled)."""
    response = client.post("/api/datasets", content_type="multipart/form-data", data=data)
    assert response.status_code in (201, 202), response.get_json()
    dataset = response.get_json()
    deadline = time.monotonic() + timeout
    while dataset["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.1)
        dataset = client.get(f"/api/datasets/{dataset['id']}").get_json()
    assert dataset["status"] != "processing", "the ingest worker never finished the upload"
    return dataset


def _wait_for_workers(celery, nodes: set[str], timeout: float = 90) -> None:
    """Wait until a worker of each node name (the part before `@`) answers a ping."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answered = {name.partition("@")[0] for reply in celery.control.ping(timeout=1.0) for name in reply}
        if nodes <= answered:
            return
    raise RuntimeError(f"the Celery workers {sorted(nodes)} did not all answer in time")


@contextmanager
def running_stack(data_dir, training_workers: int = 1, **settings):
    """Redis (with a password, as `python app.py` runs it), a migrated database, real training workers
    (one unless asked for more, each named apart), one ingest worker and one batch worker; yields what the tests need to
    reach them ("worker" is the first training worker, "workers" all of them)."""
    port = free_port()
    password = redis_password(DataDir(data_dir))
    redis = redis_process(DataDir(data_dir), port, password).start()
    url = redis_url(port, password)
    workers = []
    try:
        wait_for_redis(url)
        config = app_config(data_dir, REDIS_URL=url, **{"INGEST_IN_REQUEST": False, "QUEUE_PUBLISH_RETRIES": 2,
                                                        **settings})
        app = create_app(config)
        upgrade_schema(app)
        weights = data_dir / "weights"
        weights.mkdir(exist_ok=True)
        env = {**os.environ, "DATA_DIR": str(data_dir), "REDIS_URL": url,
               "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "PADDLE_WEIGHTS_DIR": str(weights),
               **{key: str(value) for key, value in settings.items()}}
        name = f"test{port}"
        names = [name] + [f"{name}-{n}" for n in range(2, training_workers + 1)]
        trainers = [worker_process(DataDir(data_dir), env, name=node, service=f"worker-{node}").start()
                    for node in names]
        workers.extend(trainers)
        ingest_worker = ingest_worker_process(DataDir(data_dir), env, name=name).start()
        workers.append(ingest_worker)
        batch_worker = batch_worker_process(DataDir(data_dir), env, name=name).start()
        workers.append(batch_worker)
        _wait_for_workers(app.extensions["celery"], {*names, f"{INGEST_WORKER_PREFIX}{name}",
                                                     f"{BATCH_WORKER_PREFIX}{name}"})
        yield {"config": config, "worker": trainers[0], "workers": dict(zip(names, trainers)),
               "ingest_worker": ingest_worker, "batch_worker": batch_worker, "redis": redis, "data_dir": data_dir,
               "env": env}
    finally:
        for service in workers:
            service.stop()
        redis.stop()


@contextmanager
def serving(app):
    """`app` served over HTTP on a free port; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def fresh_app(stack, data_dir):
    """A migrated app on its own data folder that shares the stack's Redis."""
    app = create_app(app_config(data_dir, REDIS_URL=stack["config"]["REDIS_URL"]))
    upgrade_schema(app)
    return app


@contextmanager
def production_server(stack, app, threads: int = 32, **env):
    """gunicorn (the server `make run` uses) over `app`'s data folder and database; yields its port."""
    data_dir = app.config["DATA_DIR"]
    port = free_port()
    web = web_process(DataDir(data_dir), "127.0.0.1", port, {
        **stack["env"], "DATA_DIR": data_dir, "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"], **env},
        threads=threads).start()
    try:
        wait_for_port("127.0.0.1", port, web)
        yield port
    finally:
        web.stop()
