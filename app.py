"""Run the whole studio: Redis (embedded unless REDIS_URL is set), the database migrations, the training,
ingest and batch Celery workers, the VisualDL board and the web app under gunicorn on HOST:PORT. Ctrl-C stops
all of it; a worker (or any other service but the web app) that dies is started again, after a longer wait
each time it dies again soon after starting. Files it creates are its user's only (umask 077)."""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time

from flask import Flask

from launcher import (LOOPBACK, ServiceProcess, Supervisor, batch_worker_process, connect_address, free_port, host_port,
                      ingest_worker_process, make_data_dir_private, number_metrics_ports, redis_password, redis_process,
                      redis_url, visualdl_process, wait_for_port, wait_for_redis, web_process, worker_process)
from webapp import create_app
from webapp.accounts.settings import ANY_ADDRESS
from webapp.config import data_dir_from_env
from webapp.datasets.services import waiting_for_check
from webapp.database import upgrade_schema
from webapp.storage import DataDir
from worker.loops import start_watcher

log = logging.getLogger("studio")
# With its own Redis this launcher starts every process that writes to DATA_DIR. With a shared REDIS_URL,
# workers on other hosts may be writing to it, so only what nobody has touched for this long is swept.
SHARED_LEFTOVER_SECONDS = 3600


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir_from_env()
    make_data_dir_private(data_dir.root)
    host = os.environ.get("HOST") or LOOPBACK
    port = int(os.environ.get("PORT") or 5000)
    os.environ.update(DATA_DIR=str(data_dir.root), HOST=host)
    if free_port(port, host) != port:
        log.error("Port %d on %s is in use; stop what uses it or choose another with PORT=...", port, host)
        sys.exit(1)
    services: list[ServiceProcess] = []
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        embedded = not os.environ.get("REDIS_URL")
        if embedded:
            services.append(start_redis(data_dir))
        wait_for_redis(os.environ["REDIS_URL"])
        board_port = free_port(int(os.environ.get("VISUALDL_PORT") or 8040))
        services.append(visualdl_process(data_dir, board_port).start())
        os.environ["VISUALDL_URL"] = f"http://{LOOPBACK}:{board_port}"
        app = create_app()
        upgrade_schema(app)
        env = dict(os.environ)
        workers = [worker_process(data_dir, env), ingest_worker_process(data_dir, env),
                   batch_worker_process(data_dir, env)]
        number_metrics_ports(workers)
        web = web_process(data_dir, host, port, env)
        for writer in [*workers, web]:
            writer.stop_leftover()
        sweep_leftovers(app, data_dir, unchanged_for=0 if embedded else SHARED_LEFTOVER_SECONDS)
        services += [worker.start() for worker in workers]
        start_watcher(app)  # also here, so work is watched while no worker runs
        supervisor = Supervisor(list(services), data_dir.service_status)
        services.append(web.start())
        wait_for_port(connect_address(host), port, web)
        log.info("%s  (Ctrl-C stops it)", running_message(host, port))
        supervise(web, supervisor)
    except KeyboardInterrupt:
        pass
    finally:
        for service in reversed(services):
            service.stop()
        log.info("stopped")


def start_redis(data_dir: DataDir) -> ServiceProcess:
    """Start the embedded Redis (loopback only, with the install's password) and point REDIS_URL at it."""
    port = free_port(int(os.environ.get("REDIS_PORT") or 6389))
    password = redis_password(data_dir)
    os.environ["REDIS_URL"] = redis_url(port, password)
    return redis_process(data_dir, port, password).start()


def sweep_leftovers(app: Flask, data_dir: DataDir, unchanged_for: float) -> None:
    """Remove what interrupted runs left in DATA_DIR, before any process that writes there starts; the
    uploads that datasets still wait to have checked (answered 202, their check queued) stay."""
    with app.app_context():
        waiting = waiting_for_check()
    removed = [str(path.relative_to(data_dir.root))
               for path in data_dir.sweep_leftovers(unchanged_for, waiting)]
    if removed:
        shown = ", ".join(removed[:20]) + (f" and {len(removed) - 20} more" if len(removed) > 20 else "")
        log.info("removed %d leftover(s) of interrupted runs: %s", len(removed), shown)


def running_message(host: str, port: int) -> str:
    """Where people open the studio: HOST, or for every address the names that reach this machine."""
    if host in ANY_ADDRESS:
        return (f"Image Studio is running on every address of this machine ({host_port(host, port)}): open "
                f"http://{host_port(socket.gethostname(), port)} from other machines, "
                f"http://{host_port(connect_address(host), port)} on this one")
    return f"Image Studio is running on http://{host_port(host, port)}"


def supervise(web: ServiceProcess, supervisor: Supervisor) -> None:
    """Return when the web server ends; meanwhile every other service that ends is started again, with
    backoff while it keeps ending (launcher.Supervisor)."""
    while web.exited() is None:
        supervisor.check()
        time.sleep(1)
    log.error("the web server exited (%s)", web.exited())


if __name__ == "__main__":
    main()
