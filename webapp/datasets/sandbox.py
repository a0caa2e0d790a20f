"""Check an upload's images in a process of their own: uploaded files are untrusted input to image decoders.

The checker process (engine.imagecheck) runs inside a bubblewrap sandbox when one can start here:
no network (its own empty network namespace), no other processes, the Python install and the engine's code
read-only, and nothing of the data folder but the upload's own folder, the only place it can write. It always
runs under a memory and a CPU-time limit. One checker serves a whole upload, a file at a time; a file that
crashes it or hits a limit is rejected with the reason, and a new checker takes the rest of the files.

`limits["sandbox"]` (INGEST_SANDBOX) is `auto` (the sandbox when it can start here, otherwise the limits
alone, said at start and in health), `on` (the sandbox or no check: an upload fails while it cannot start)
or `off` (the limits alone).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

import engine
from engine.imagecheck import MEMORY_EXIT, CheckedImage
from engine.images import ACCEPTED_FORMATS
from engine.messages import N_, Message

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Math libraries start one thread per core and reserve memory for each; the checker needs none of them.
CHECKER_ENV = {"LANG": "C.UTF-8", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def checker_environment() -> dict[str, str]:
    """The checker's environment: it finds the engine where this process found it (an install, or a source
    folder on PYTHONPATH); its `-P` keeps its own folder off its import path."""
    return {**CHECKER_ENV, "PYTHONPATH": str(Path(engine.__file__).resolve().parent.parent)}


def check_mode(mode: str) -> str:
    """The INGEST_SANDBOX setting, refused at start when it is not one of MODES."""
    if mode not in MODES:
        raise ValueError(f"INGEST_SANDBOX must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _read_only_roots() -> list[str]:
    """What the checker needs to read: the Python install, its packages and the engine's code."""
    roots = {sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent),
             str(Path(engine.__file__).resolve().parent)}
    return sorted(root for root in roots if not root.startswith("/usr/") and root != "/usr")


def sandbox_prefix(folder: Path) -> list[str]:
    """The bubblewrap command line that runs a command with `folder` as its only writable place."""
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for root in _read_only_roots():
        argv += ["--ro-bind", root, root]
    folder = str(Path(folder).resolve())
    # The root that bubblewrap builds is made read-only last: the folder is the only writable place, and
    # it serves as the temporary folder too (a /tmp in memory would escape the memory limit).
    return [*argv, "--dev", "/dev", "--proc", "/proc", "--bind", folder, folder, "--remount-ro", "/",
            "--chdir", folder, "--setenv", "TMPDIR", folder]


@functools.cache
def bwrap_problem() -> str | None:
    """Why the sandbox cannot start here (bubblewrap missing, no user namespaces), or None when it can;
    tried once per process."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed"
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run([*sandbox_prefix(Path(folder)), "true"], capture_output=True, timeout=30,
                                  env=CHECKER_ENV)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    if done.returncode:
        return done.stderr.decode(errors="replace").strip() or f"bwrap exited with code {done.returncode}"
    return None


def sandbox_state(mode: str) -> str:
    """`sandboxed`, `limits_only` (off, or auto where the sandbox cannot start) or `unavailable` (on, and
    it cannot start: uploads are not checked)."""
    if mode == "off":
        return "limits_only"
    if bwrap_problem() is None:
        return "sandboxed"
    return "unavailable" if mode == "on" else "limits_only"


@functools.cache
def announce(mode: str) -> None:
    """Say once per process how upload images are checked here."""
    state, problem = sandbox_state(mode), (bwrap_problem() if mode != "off" else None)
    if state == "sandboxed":
        log.info("upload images are checked in a bubblewrap sandbox (no network, read-only files), under "
                 "memory and CPU-time limits")
    elif state == "unavailable":
        log.error("INGEST_SANDBOX=on but the sandbox cannot start here (%s): uploads will fail until it can", problem)
    elif mode == "auto":
        log.warning("the upload sandbox cannot start here (%s): upload images are checked under memory and "
                    "CPU-time limits only, with the worker's network and file access", problem)
    else:
        log.info("INGEST_SANDBOX=off: upload images are checked under memory and CPU-time limits only")


class ImageChecker:
    """Checks the images of one upload in a checker process (a context manager). Files are sent in batches
    by a feeding thread while the answers are read, so the checker never waits for the next file."""

    def __init__(self, folder: Path, limits: dict) -> None:
        self.folder, self.limits = Path(folder), limits
        self.mode = check_mode(limits["sandbox"])
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "ImageChecker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_files(self, files: list[bytes]) -> list[CheckedImage | Message]:
        """Each file's facts and thumbnail, or why it is rejected (a crash or a limit hit included), in order."""
        outcomes: list[CheckedImage | Message] = []
        while len(outcomes) < len(files):
            outcomes += self._run(files[len(outcomes):])
        return outcomes

    def close(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            _close(process.stdin)
            process.stdout.close()
            process.wait()

    def command(self) -> list[str]:
        checker = [sys.executable, "-P", "-s", "-m", "engine.imagecheck", str(self.limits["max_pixels"]),
                   str(self.limits["check_memory_mb"]), str(self.limits["check_cpu_seconds"])]
        state = sandbox_state(self.mode)
        if state == "unavailable":
            raise RuntimeError(f"INGEST_SANDBOX=on but the sandbox cannot start here: {bwrap_problem()}")
        return [*sandbox_prefix(self.folder), *checker] if state == "sandboxed" else checker

    def _run(self, files: list[bytes]) -> list[CheckedImage | Message]:
        """The answers for `files`, up to and including the first file that ended the checker."""
        process = self.process or self._start()
        feeder = threading.Thread(target=_feed, args=(process.stdin, files), daemon=True)
        feeder.start()
        outcomes: list[CheckedImage | Message] = []
        try:
            for _ in files:
                outcomes.append(_read_outcome(process.stdout))
        except (OSError, EOFError, ValueError, KeyError, TypeError):
            outcomes.append(self._ended())
        feeder.join()
        if process is not self.process:
            _close(process.stdin)
            process.stdout.close()
        return outcomes

    def _start(self) -> subprocess.Popen:
        self.folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self.folder,
                                   env=checker_environment())
        try:
            ready = _read_answer(process.stdout)
        except (EOFError, ValueError):
            ready = {}
        if ready != {"ready": True}:
            process.kill()
            raise RuntimeError(f"the image checker did not start (exit code {process.wait()})")
        self.process = process
        return process

    def _ended(self) -> Message:
        """The reason for the file the checker was on when it ended; the next file starts a new checker."""
        process, self.process = self.process, None
        if process.poll() is None:  # alive, but its answer made no sense
            process.kill()
        return crash_reason(process.wait(), self.limits)


def _feed(stream: IO[bytes], files: list[bytes]) -> None:
    """Send `files` to the checker; stops quietly when it has ended."""
    try:
        for data in files:
            stream.write(json.dumps({"size": len(data)}).encode() + b"\n")
            stream.write(data)
        stream.flush()
    except (OSError, ValueError):
        pass


def _read_outcome(stream: IO[bytes]) -> CheckedImage | Message:
    answer = _read_answer(stream)
    if "rejected" in answer:
        return Message(str(answer["rejected"]["template"]), dict(answer["rejected"]["params"] or {}))
    checked = CheckedImage(answer["format"], answer["extension"], int(answer["width"]), int(answer["height"]),
                           _read_exactly(stream, int(answer["thumbnail"])))
    if ACCEPTED_FORMATS.get(checked.format) != checked.extension:
        raise ValueError(f"not an answer of the checker: {answer}")
    return checked


def _close(stream: IO[bytes]) -> None:
    try:
        stream.close()
    except (OSError, ValueError):
        pass


def crash_reason(returncode: int, limits: dict) -> Message:
    """Why the checker ended, from its exit status (bubblewrap reports a signal as 128 + its number)."""
    if returncode == MEMORY_EXIT:
        return Message(N_("decoding it needed more memory than the limit of %(mb)s MB"),
                       {"mb": limits["check_memory_mb"]})
    number = -returncode if returncode < 0 else returncode - 128 if returncode > 128 else None
    if number == signal.SIGXCPU:
        return Message(N_("decoding it took more than the CPU-time limit of %(seconds)s s"),
                       {"seconds": limits["check_cpu_seconds"]})
    detail = signal.Signals(number).name if number in set(signal.Signals) else f"exit code {returncode}"
    return Message(N_("the image decoder crashed on it (%(detail)s)"), {"detail": detail})


def _read_answer(stream: IO[bytes]) -> dict:
    line = stream.readline()
    if not line.endswith(b"\n"):
        raise EOFError
    return json.loads(line)


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data
