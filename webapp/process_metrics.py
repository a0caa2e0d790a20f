"""The figures each process counts itself (requests, predictions, training epochs, tasks), kept with
prometheus_client in its multi-process mode, so a scrape of any web process sums every web process and a
worker's port sums the worker's pool processes.

prometheus_client decides between one process and many when it is first imported, from
PROMETHEUS_MULTIPROC_DIR: `prepare_folder` sets it, in a process tree's first process (gunicorn's master,
a Celery worker's main process) before any figure exists, to a folder made fresh for this start; its
children inherit it. Without it (tests, a one-process run) the figures are this process's own. The figures
themselves are made on first use (`figures()`), never at import, so importing this module changes nothing.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from webapp.storage import DataDir

log = logging.getLogger(__name__)
MULTIPROCESS_FOLDER = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting
# Latency buckets in seconds: a prediction takes milliseconds, an upload request seconds.
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
EPOCH_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


def figures_root(environ=os.environ) -> Path:
    """METRICS_DIR, else DATA_DIR/tmp/metrics (DATA_DIR as webapp.config.data_dir_from_env reads it: that
    module loads numpy, which gunicorn's master must not hold when it forks)."""
    if environ.get("METRICS_DIR"):
        return Path(environ["METRICS_DIR"]).resolve()
    return DataDir(Path(environ.get("DATA_DIR") or "instance").resolve()).metrics


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_gone(root: Path, host: str) -> None:
    """Remove the folders this host's ended process trees left (killed ones do not clean up)."""
    for folder in root.glob(f"*-{host}-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def prepare_folder(role: str, environ=os.environ) -> Path:
    """Make this process tree's empty figures folder, `<root>/<role>-<host>-<pid>`, and point
    PROMETHEUS_MULTIPROC_DIR at it; folders of this host's ended trees go. Call it before prometheus_client
    is first imported in this process."""
    host = socket.gethostname().replace("-", "_")[:60]
    root = figures_root(environ)
    root.mkdir(parents=True, exist_ok=True)
    _remove_gone(root, host)
    folder = root / f"{role}-{host}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    os.environ[MULTIPROCESS_FOLDER] = str(folder)
    return folder


def remove_folder() -> None:
    """At a clean stop of the process tree: its figures folder goes."""
    folder = os.environ.get(MULTIPROCESS_FOLDER)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def mark_process_dead(pid: int) -> None:
    """A child of this tree ended: its live gauges stop counting (its counters stay in the sums)."""
    if os.environ.get(MULTIPROCESS_FOLDER):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


@dataclass(frozen=True)
class Figures:
    """Every figure a process counts; labels take values from small sets only (endpoint names, never
    paths)."""

    requests: object  # Counter: endpoint, method, status
    request_seconds: object  # Histogram: endpoint, method
    predictions: object  # Counter: version, arm, runtime
    prediction_seconds: object  # Histogram: version, arm, runtime
    abstentions: object  # Counter: version, arm, runtime
    epoch_seconds: object  # Histogram: backbone, device
    tasks: object  # Counter: task, state


_made: list[Figures] = []
_making = threading.Lock()


def figures() -> Figures:
    """This process's figures, made once, on first use (after PROMETHEUS_MULTIPROC_DIR is set), however many
    threads ask at once."""
    if not _made:
        with _making:
            if not _made:
                _made.append(_make_figures())
    return _made[0]


def _make_figures() -> Figures:
    from prometheus_client import Counter, Histogram, disable_created_metrics

    disable_created_metrics()  # `_created` series: as many again, and no alert or panel reads them
    served = ("version", "arm", "runtime")
    return Figures(
        requests=Counter("studio_http_requests", "HTTP requests answered, by endpoint and status.",
                         ("endpoint", "method", "status")),
        request_seconds=Histogram("studio_http_request_seconds", "Time to answer an HTTP request.",
                                  ("endpoint", "method"), buckets=SECONDS_BUCKETS),
        predictions=Counter("studio_predictions", "Images classified by POST /api/predict.", served),
        prediction_seconds=Histogram("studio_prediction_seconds", "Time to classify one image (decode, "
                                     "preprocessing and inference).", served, buckets=SECONDS_BUCKETS),
        abstentions=Counter("studio_prediction_abstentions", "Predictions that abstained (below the "
                            "version's threshold).", served),
        epoch_seconds=Histogram("studio_training_epoch_seconds", "Time of one training epoch.",
                                ("backbone", "device"), buckets=EPOCH_BUCKETS),
        tasks=Counter("studio_worker_tasks", "Worker tasks run, by task and how they ended.", ("task", "state")))


def count_prediction(version: int, arm: str, runtime: str, seconds: float, abstained: bool) -> None:
    """One answered prediction."""
    labels = {"version": str(version), "arm": arm, "runtime": runtime}
    counted = figures()
    counted.predictions.labels(**labels).inc()
    counted.prediction_seconds.labels(**labels).observe(seconds)
    if abstained:
        counted.abstentions.labels(**labels).inc()


def exposition() -> bytes:
    """The process figures in Prometheus's text format: the sum over every process of this tree in
    multi-process mode, else this process's own."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    figures()  # an idle process still declares its figures
    if not os.environ.get(MULTIPROCESS_FOLDER):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)


def serve(port: int, host: str):
    """Serve this process tree's figures at http://host:port/metrics (a worker's, for Prometheus) from a
    thread, with this process's own (CPU, memory, open files); returns the server (`shutdown()` stops it)."""
    from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = REGISTRY  # in one process it holds the process figures already
    if os.environ.get(MULTIPROCESS_FOLDER):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        ProcessCollector(registry=registry)
    server, _ = start_http_server(port, addr=host, registry=registry)
    log.info("worker figures at http://%s:%d/metrics", host, port)
    return server
