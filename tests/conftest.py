"""Shared fixtures: an app with its own data folder and migrated SQLite database per test, one tiny
trained bundle per session, and a running stack (Redis + a real worker) for integration tests."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from engine.config import TrainConfig
from engine.trainer import Trainer, TrainData
from launcher import free_port, redis_process, redis_url, wait_for_redis
from tests.factories import CLASSES, register_bundle
from tests.images import make_samples
from tests.postgres import new_database, running_postgres
from tests.stack import DATABASE_FILE, app_config, running_stack, serving
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.storage import DataDir


# What makes a test slow: a trained model, a running worker, a browser or a PostgreSQL server.
SLOW_FIXTURES = frozenset({"trained", "served", "stack", "stack_app", "stack_client", "live_server",
                           "postgres_server"})
SLOW_FOLDERS = frozenset({"integration", "e2e"})


def pytest_collection_modifyitems(items) -> None:
    """Mark `slow` every test that needs what SLOW_FIXTURES name, runs on PostgreSQL or lives under
    tests/integration or tests/e2e; `make test-fast` leaves them out (modules that train models mark
    themselves)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if (SLOW_FIXTURES & set(item.fixturenames) or "postgresql" in params.values()
                or SLOW_FOLDERS & set(item.path.parts)):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database with every migration applied, made once: each unit test's app starts from a copy
    (tests/unit/webapp/test_schema.py proves the models and the migrations give the same schema, and the
    migration tests replay them)."""
    folder = tmp_path_factory.mktemp("migrated")
    app = create_app(app_config(folder))
    upgrade_schema(app)
    with app.app_context():
        db.engine.dispose()  # the last connection closes: the write-ahead log is folded into the file
    return folder / DATABASE_FILE


@pytest.fixture
def app(tmp_path, migrated_sqlite):
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    yield create_app(app_config(tmp_path))


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session; each test that uses it gets a database of its own."""
    with running_postgres() as url:
        yield url


@pytest.fixture
def app_settings() -> dict:
    """Settings for `app_on_each_database` beyond the defaults; a module overrides this fixture to add some."""
    return {}


@pytest.fixture(params=["sqlite", "postgresql"])
def app_on_each_database(request, tmp_path, app_settings):
    """The app on SQLite and again on PostgreSQL: modules whose tests must hold on both use it as `app`."""
    database = {}
    if request.param == "postgresql":
        database["SQLALCHEMY_DATABASE_URI"] = new_database(request.getfixturevalue("postgres_server"))
    app = create_app(app_config(tmp_path, **app_settings, **database))
    upgrade_schema(app)
    yield app
    with app.app_context():
        from webapp.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(trainer, bundle folder): a colour classifier trained for five epochs at 32 px, once per session."""
    root = tmp_path_factory.mktemp("trained")
    data = TrainData(CLASSES, make_samples(root / "train", 40), make_samples(root / "val", 4, seed_offset=500))
    config = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, epochs=5, batch_size=8, image_size=32,
                         learning_rate=3e-3, warmup_epochs=0, optimizer="adam")
    trainer = Trainer(config, data, root / "cache", device="cpu")
    result = trainer.fit()
    assert result.best_val_acc >= 0.9
    trainer.export(root / "bundle", {"dataset": {"id": None}}, result)
    return trainer, root / "bundle"


@pytest.fixture
def served(app, trained):
    """The test app with the trained bundle registered as model version 1."""
    register_bundle(app, trained[1], 1)
    return app


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


@pytest.fixture
def live_server(stack_app):
    """The stack's web app served over HTTP, for the browser."""
    with serving(stack_app) as url:
        yield url


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A Redis of the unit tests' own (the embedded binary, no password), for tests that need a real one
    without workers."""
    data_dir = DataDir(tmp_path_factory.mktemp("unit-redis"))
    port = free_port()
    server = redis_process(data_dir, port).start()
    try:
        wait_for_redis(redis_url(port))
        yield redis_url(port)
    finally:
        server.stop()


@pytest.fixture
def redis_url_empty(redis_server):
    """That Redis, emptied."""
    redis.Redis.from_url(redis_server).flushdb()
    return redis_server

