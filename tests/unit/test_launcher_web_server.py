"""The web server's settings live in gunicorn.conf.py alone: the launcher runs gunicorn with that file, and the
file, read by gunicorn itself, gives the settings the studio has always served with."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from gunicorn.app.base import Application

from launcher import GUNICORN_CONFIG, host_port, web_process, web_processes
from webapp.storage import DataDir

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ("HOST", "PORT", "WEB_PROCESSES", "WEB_THREADS", "ACCESS_LOG")


class ConfigOnly(Application):
    """gunicorn's own reading of a configuration file, without its command line and without loading the app."""

    def init(self, parser, opts, args):
        return None

    def load_config(self) -> None:
        self.load_config_from_file(str(GUNICORN_CONFIG))

    def load(self):
        raise AssertionError("the configuration alone is read")


@pytest.fixture
def read_config(monkeypatch):
    """The settings gunicorn takes from gunicorn.conf.py under an environment of only `env` (of SETTINGS)."""
    monkeypatch.setitem(sys.modules, "__config__", None)  # gunicorn's name for the file's module; put back

    def read(env: dict):
        for name in SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return ConfigOnly().cfg

    return read


def test_the_launcher_runs_gunicorn_with_the_config_file_and_its_settings_in_the_environment(tmp_path):
    web = web_process(DataDir(tmp_path), "::1", 5123, {"PATH": "/usr/bin", "HOST": "elsewhere"},
                      processes=3, threads=4)
    assert GUNICORN_CONFIG == ROOT / "gunicorn.conf.py"
    assert web.argv == [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG)]
    assert web.env == {"PATH": "/usr/bin", "HOST": "::1", "PORT": "5123", "WEB_PROCESSES": "3", "WEB_THREADS": "4"}
    plain = web_process(DataDir(tmp_path), "127.0.0.1", 5000, {"WEB_THREADS": "8"})
    assert plain.env == {"HOST": "127.0.0.1", "PORT": "5000", "WEB_THREADS": "8"}


def test_the_config_file_gives_today_s_settings(read_config):
    config = read_config({})
    assert config.wsgi_app == "webapp.wsgi:app" and config.proc_name == "image-studio"
    assert config.worker_class_str == "gthread" and config.threads == 32
    assert config.workers == min(2, os.cpu_count() or 1) == web_processes({})
    assert config.bind == ["127.0.0.1:5000"]
    assert (config.keepalive, config.timeout, config.graceful_timeout) == (5, 120, 10)
    assert config.loglevel == "warning" and config.accesslog is None and config.preload_app is False


def test_the_config_file_takes_what_the_launcher_and_the_image_set(read_config, tmp_path):
    launched = web_process(DataDir(tmp_path), "::1", 5123, {"ACCESS_LOG": "1"}, processes=3, threads=4)
    config = read_config(launched.env)
    assert config.bind == ["[::1]:5123"] == [host_port("::1", 5123)]
    assert (config.workers, config.threads, config.accesslog) == (3, 4, "-")
    assert read_config({"HOST": "0.0.0.0"}).bind == ["0.0.0.0:5000"]  # the Docker image and compose
