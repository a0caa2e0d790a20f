"""A real PostgreSQL server for the tests, from Debian's packages: started on a private port and socket
folder, as its own user when the tests run as root (PostgreSQL refuses to run as root)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from launcher import free_port

VERSIONS = Path("/usr/lib/postgresql")


def server_tools() -> Path:
    """The newest installed server's bin folder (Debian keeps pg_ctl off the PATH)."""
    found = sorted(VERSIONS.glob("*/bin/pg_ctl"), key=lambda path: int(path.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed; `make test` installs Debian's postgresql")
    return found[-1].parent


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def running_postgres():
    """Yields the server's SQLAlchemy URL without a database name (append one made by `new_database`)."""
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="studio-pg-"))
    if owner:
        record = pwd.getpwnam(owner)
        os.chown(base, record.pw_uid, record.pw_gid)
    tools, port = server_tools(), free_port()
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    try:
        subprocess.run(_as_owner([str(tools / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                  "--no-sync", "-E", "UTF8", "--locale", "C"], owner),
                       check=True, capture_output=True, cwd=base)
        (sockets).mkdir()
        if owner:
            os.chown(sockets, record.pw_uid, record.pw_gid)
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_owner([str(tools / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                                  "start"], owner), check=True, capture_output=True, cwd=base)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/"
    finally:
        subprocess.run(_as_owner([str(tools / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
                       capture_output=True, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; its SQLAlchemy URL."""
    import psycopg

    name = f"studio_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql") + "postgres",
                         autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url + name
