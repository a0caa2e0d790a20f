"""Running pieces for tests: an app config per data folder, the Redis + worker stack, an HTTP server."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

from werkzeug.serving import make_server

from launcher import free_port, redis_process, wait_for_port, wait_for_redis, web_process, worker_process
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.storage import DataDir


def app_config(data_dir, **overrides) -> dict:
    config = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'studio.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    config.update(overrides)
    return config


def _wait_for_worker(celery, timeout: float = 90) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = celery.control.ping(timeout=1.0)
        if replies:
            return replies
    raise RuntimeError("the Celery worker did not answer in time")


@contextmanager
def running_stack(data_dir, **settings):
    """Redis, a migrated database and one real worker; yields what the tests need to reach them."""
    port = free_port()
    redis = redis_process(DataDir(data_dir), port).start()
    redis_url = f"redis://127.0.0.1:{port}/0"
    worker = None
    try:
        wait_for_redis(redis_url)
        config = app_config(data_dir, REDIS_URL=redis_url, **settings)
        app = create_app(config)
        upgrade_schema(app)
        weights = data_dir / "weights"
        weights.mkdir(exist_ok=True)
        env = {**os.environ, "DATA_DIR": str(data_dir), "REDIS_URL": redis_url,
               "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"], "PADDLE_WEIGHTS_DIR": str(weights),
               **{key: str(value) for key, value in settings.items()}}
        worker = worker_process(DataDir(data_dir), env, name=f"test{port}").start()
        _wait_for_worker(app.extensions["celery"])
        yield {"config": config, "worker": worker, "redis": redis, "data_dir": data_dir, "env": env}
    finally:
        if worker:
            worker.stop()
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
