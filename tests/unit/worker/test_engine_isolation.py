"""The engine stays pure Paddle: importing all of it loads no Flask, Celery or SQLAlchemy."""
import json
import subprocess
import sys

PROBE = """
import importlib, json, pkgutil, sys
import worker.engine as engine
for module in pkgutil.walk_packages(engine.__path__, "worker.engine."):
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_engine_imports_no_web_or_queue_framework():
    output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    loaded = set(json.loads(output.stdout.strip().splitlines()[-1]))
    assert "paddle" in loaded
    assert loaded.isdisjoint({"flask", "celery", "sqlalchemy", "flask_sqlalchemy", "kombu", "webapp"})
