"""The web server's settings: the one copy that `python app.py` (launcher.web_process), the Docker image,
compose and a production install all run gunicorn with (`gunicorn -c gunicorn.conf.py`).

What differs between installs comes from the environment, as the web app itself reads it: HOST and PORT
(the address to bind, which sign-in follows), WEB_PROCESSES, WEB_THREADS and ACCESS_LOG. The file imports
nothing of the studio (its hooks only webapp.process_metrics), so gunicorn's master holds no app state when it forks: the app is created in each
web process after the fork (never set `preload_app`; Paddle state must not cross a fork)."""
import os
from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
DEFAULT_THREADS = 32


def web_processes(env: Mapping[str, str] = os.environ) -> int:
    """WEB_PROCESSES, by default one per core up to two: request handling (HTTP parsing, multipart, Flask,
    JSON) holds the interpreter lock, so a second process lets two cores take requests at once (measured by
    benchmarks/predict_latency.py); more processes each hold their own copy of the models."""
    return max(1, int(env.get("WEB_PROCESSES") or min(2, os.cpu_count() or 1)))


def web_threads(env: Mapping[str, str] = os.environ) -> int:
    """WEB_THREADS per process: each open event stream (a job page) holds one while other requests go on."""
    return max(1, int(env.get("WEB_THREADS") or DEFAULT_THREADS))


def bind_address(env: Mapping[str, str] = os.environ) -> str:
    """HOST:PORT as gunicorn binds it (an IPv6 address in brackets)."""
    host, port = env.get("HOST") or DEFAULT_HOST, int(env.get("PORT") or DEFAULT_PORT)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def heartbeat_directory() -> str | None:
    """Where each web process keeps the file gunicorn touches to show it is alive: gunicorn changes its times
    (a metadata write) on every pass of its loop, several times a request. On a disk's file system each is a
    journal write, about half a millisecond of every prediction on a busy machine (benchmarks/request_cost.py);
    in memory it costs nothing. /dev/shm when this machine has one (gunicorn's own advice for containers)."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


wsgi_app = "webapp.wsgi:app"
proc_name = "image-studio"
worker_class = "gthread"  # long-lived event streams each hold a thread; the sync worker cannot
workers = web_processes()
threads = web_threads()
bind = [bind_address()]
worker_tmp_dir = heartbeat_directory()
keepalive = 5
graceful_timeout = 10
timeout = 120
loglevel = "warning"
accesslog = "-" if os.environ.get("ACCESS_LOG") else None


# Prometheus figures (webapp.process_metrics): the web processes count into one folder made fresh at each
# start, so GET /metrics in any of them sums them all. The hooks run in the master and import only that
# module, which holds no app state.
def on_starting(server) -> None:
    """Before the first fork: this start's empty figures folder, inherited by every web process."""
    from webapp.process_metrics import prepare_folder

    prepare_folder("web")


def child_exit(server, worker) -> None:
    """A web process ended: its live figures stop counting (its counts stay in the sums)."""
    from webapp.process_metrics import mark_process_dead

    mark_process_dead(worker.pid)


def on_exit(server) -> None:
    from webapp.process_metrics import remove_folder

    remove_folder()
