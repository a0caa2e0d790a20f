"""The team install's compose files, checked by a Compose implementation (Debian's docker-compose), and the
image built only from this repository's files and PyPI."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {"REDIS_PASSWORD": "redis-secret-1", "POSTGRES_PASSWORD": "pg-secret-1"}


def compose(*args: str, files=("compose.yaml",), env: dict | None = None) -> subprocess.CompletedProcess:
    command = [shutil.which("docker-compose") or "docker-compose"]
    for name in files:
        command += ["-f", name]
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*command, *args], cwd=ROOT, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


def test_compose_runs_web_the_three_workers_redis_and_postgres():
    services = compose("config", "--services", env=SECRETS)
    assert services.returncode == 0, services.stderr
    assert set(services.stdout.split()) == {"web", "training-worker", "ingest-worker", "batch-worker", "redis",
                                                "postgres"}
    volumes = compose("config", "--volumes", env=SECRETS)
    assert set(volumes.stdout.split()) == {"studio-data", "redis-data", "postgres-data"}
    config = compose("config", env=SECRETS).stdout
    assert 'AUTH: "on"' in config and "HOST: 0.0.0.0" in config
    assert "DATABASE_URL: postgresql+psycopg://studio:pg-secret-1@postgres:5432/studio" in config
    assert "REDIS_URL: redis://:redis-secret-1@redis:6379/0" in config
    assert "--appendonly yes" in config
    assert re.search(r"-Q training -c 1", config) and re.search(r"-Q ingest,webhooks -c 1 -n ingest-", config)
    assert re.search(r"-Q batch,maintenance -c 1", config)  # the batch worker also takes scheduled backups
    assert "flask db upgrade" in config and "exec gunicorn --config gunicorn.conf.py" in config
    assert config.count("studio-data:/data:rw") == 4  # web and the three workers share the data folder
    assert "postgres-data:/var/lib/postgresql/data:rw" in config and "redis-data:/data:rw" in config


def test_the_redis_password_stays_off_command_lines():
    """Every user of the Docker host sees the command lines of container processes (`ps`, /proc/<pid>/cmdline):
    Redis reads its password from standard input and the health check hands it to redis-cli by environment."""
    config = compose("config", env=SECRETS).stdout
    redis = config.split("\n  redis:\n")[1].split("\n  training-worker:\n")[0]
    assert [line.strip() for line in redis.splitlines() if "redis-secret-1" in line] == [
        "REDIS_PASSWORD: redis-secret-1"]
    assert "redis-server -" in redis and "requirepass $$REDIS_PASSWORD" in redis
    assert 'REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli' in redis and " -a " not in redis


def gpu_config() -> dict:
    config = compose("config", files=("compose.yaml", "compose.gpu.yaml"), env=SECRETS)
    assert config.returncode == 0, config.stderr
    return yaml.safe_load(config.stdout)["services"]


def test_the_gpu_override_runs_one_cuda_trainer_per_gpu_each_owning_its_device():
    services = gpu_config()
    trainers = {name: service for name, service in services.items() if name.startswith("training-worker-gpu")}
    assert sorted(trainers) == ["training-worker-gpu0", "training-worker-gpu1"]
    # GPU 0's worker starts on any GPU host; GPU 1's only where asked, as a one-GPU host would refuse it
    assert "profiles" not in trainers["training-worker-gpu0"]
    assert trainers["training-worker-gpu1"]["profiles"] == ["gpu1"]
    assert services["training-worker"]["profiles"] == ["cpu-training"]  # the CPU trainer stays off
    devices = {}
    for name, service in trainers.items():
        assert service["image"] == "image-studio:gpu" and service["build"]["args"]["PADDLE"] == "gpu"
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and "count" not in device
        [devices[name]] = device["device_ids"]
        assert f"-n trainer-gpu{devices[name]}@%h " in service["command"]
    assert sorted(devices.values()) == ["0", "1"]  # a distinct device, and worker name, for each


def test_the_gpu_trainers_run_the_cpu_trainers_worker_with_its_settings():
    """compose.gpu.yaml repeats the CPU trainer's settings (Compose cannot extend a service with depends_on)."""
    services = gpu_config()
    cpu = services["training-worker"]
    for name in ("training-worker-gpu0", "training-worker-gpu1"):
        gpu = services[name]
        for key in ("environment", "volumes", "depends_on", "restart"):
            assert gpu[key] == cpu[key], (name, key)
        gpu_name = name.removeprefix("training-worker-")
        assert gpu["command"].replace(f"-n trainer-{gpu_name}@", "-n training@") == cpu["command"]


def test_compose_refuses_to_start_without_passwords():
    missing = compose("config")
    assert missing.returncode != 0
    assert "put REDIS_PASSWORD in .env" in missing.stderr or "put POSTGRES_PASSWORD in .env" in missing.stderr


def test_the_image_is_built_from_the_repository_and_pypi_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert any(path == source or path.startswith(source + "/") for path in tracked), source
    assert not re.search(r"^\s*ADD\s|curl |wget ", dockerfile, re.M)
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'RUN python deploy/paddle_build.py "$PADDLE" --project .' in dockerfile  # the route `make install` runs
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in dockerfile  # libcuda in GPU containers of a slim base
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in dockerfile  # the settings launcher.py uses too


pytestmark = pytest.mark.integration
