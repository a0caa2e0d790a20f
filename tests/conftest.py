"""Shared fixtures: an app with its own data folder and migrated SQLite database per test."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from webapp import create_app
from webapp.database import upgrade_schema
from webapp.processes import free_port, redis_process, wait_for_redis, worker_process


def app_config(data_dir, **overrides) -> dict:
    config = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{data_dir / 'studio.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    config.update(overrides)
    return config


@pytest.fixture
def app(tmp_path):
    app = create_app(app_config(tmp_path))
    upgrade_schema(app)
    yield app


@pytest.fixture
def client(app):
    return app.test_client()


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
    redis = redis_process(data_dir, port).start()
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
        worker = worker_process(data_dir, env, name=f"test{port}").start()
        _wait_for_worker(app.extensions["celery"])
        yield {"config": config, "worker": worker, "redis": redis, "data_dir": data_dir, "env": env}
    finally:
        if worker:
            worker.stop()
        redis.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One Redis and one worker shared by the integration and browser tests."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def stack_app(stack):
    return create_app(stack["config"])


@pytest.fixture
def stack_client(stack_app):
    return stack_app.test_client()


@contextmanager
def serving(app):
    """`app` served over HTTP on a free port; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def live_server(stack_app):
    """The stack's web app served over HTTP, for the browser."""
    with serving(stack_app) as url:
        yield url
