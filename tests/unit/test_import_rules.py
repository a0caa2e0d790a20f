"""Dependencies run one way, worker -> webapp -> engine, checked at run time: what importing each package
really loads (the source's import statements are checked by tests/unit/test_import_graph.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB_AND_QUEUE = {"flask", "flask_sqlalchemy", "flask_migrate", "celery", "kombu", "sqlalchemy", "alembic",
                 "werkzeug", "webapp", "worker", "launcher"}


WALK = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, sys.argv[1] + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""
APP = """
import json, sys
from webapp import create_app
create_app({"DATA_DIR": sys.argv[1]}).test_client().get("/datasets")
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def loaded_by(script: str, argument: str) -> set[str]:
    output = subprocess.run([sys.executable, "-c", script, argument], capture_output=True, text=True,
                            check=True, cwd=ROOT)
    return set(json.loads(output.stdout.strip().splitlines()[-1]))


def test_every_engine_module_loads_no_web_or_queue_framework():
    loaded = loaded_by(WALK, "engine")
    assert "paddle" in loaded  # the trainer's modules were really imported
    assert loaded.isdisjoint(WEB_AND_QUEUE)


def test_every_webapp_module_loads_no_worker_module():
    loaded = loaded_by(WALK, "webapp")
    assert {"flask", "engine"} <= loaded and "worker" not in loaded
    assert "paddle" not in loaded  # what trains lives under worker/; serving loads Paddle when it first serves


def test_the_worker_loads_paddle_only_in_the_process_that_runs_its_tasks(tmp_path):
    """The worker's main process forks its pool: Paddle is loaded by the runners, in the pool's processes."""
    main = loaded_by("import json, os, sys; os.environ['DATA_DIR'] = sys.argv[1]; import worker.celery_app; "
                     "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))", str(tmp_path))
    assert {"celery", "webapp", "worker"} <= main and "paddle" not in main
    assert "paddle" in loaded_by(WALK, "worker")


def test_the_web_app_loads_paddle_only_when_it_serves(tmp_path):
    """Creating the app and rendering a page never loads Paddle; serving loads it on first use."""
    loaded = loaded_by(APP, str(tmp_path))
    assert "flask" in loaded and "paddle" not in loaded
