"""Run the whole studio: Redis (embedded unless REDIS_URL is set), the database migrations,
one Celery worker, the VisualDL board and the web app under gunicorn. Ctrl-C stops all of it;
a worker that dies is started again."""
from __future__ import annotations

import logging
import os
import signal
import sys
import time

from launcher import (free_port, redis_process, visualdl_process, wait_for_port, wait_for_redis, web_process,
                      web_processes, worker_process)
from webapp import create_app
from webapp.config import data_dir_from_env
from webapp.database import upgrade_schema
from webapp.jobs.reaper import start_reaper

log = logging.getLogger("studio")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir_from_env()
    data_dir.root.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(data_dir.root)
    port = int(os.environ.get("PORT") or 5000)
    if free_port(port) != port:
        log.error("Port %d on 127.0.0.1 is in use; stop what uses it or choose another with PORT=...", port)
        sys.exit(1)
    services = []
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        if not os.environ.get("REDIS_URL"):
            redis_port = free_port(int(os.environ.get("REDIS_PORT") or 6389))
            services.append(redis_process(data_dir, redis_port).start())
            os.environ["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        wait_for_redis(os.environ["REDIS_URL"])
        board_port = free_port(int(os.environ.get("VISUALDL_PORT") or 8040))
        services.append(visualdl_process(data_dir, board_port).start())
        os.environ["VISUALDL_URL"] = f"http://127.0.0.1:{board_port}"
        app = create_app()
        upgrade_schema(app)
        worker = worker_process(data_dir, dict(os.environ)).start()
        services.append(worker)
        start_reaper(app)
        web = web_process(data_dir, "127.0.0.1", port, dict(os.environ),
                          processes=web_processes(os.environ),
                          threads=int(os.environ.get("WEB_THREADS") or 32)).start()
        services.append(web)
        wait_for_port("127.0.0.1", port, web)
        log.info("Image Studio is running on http://127.0.0.1:%d  (Ctrl-C stops it)", port)
        supervise(web, worker)
    except KeyboardInterrupt:
        pass
    finally:
        for service in reversed(services):
            service.stop()
        log.info("stopped")


def supervise(web, worker) -> None:
    """Return when the web server ends; start the training worker again whenever it dies."""
    while web.exited() is None:
        code = worker.exited()
        if code is not None:
            log.warning("the training worker exited (%s); starting it again", code)
            worker.start()
        time.sleep(1)
    log.error("the web server exited (%s)", web.exited())


if __name__ == "__main__":
    main()
