"""Check an upload's images in a process of their own: uploaded files are untrusted input to image decoders.

The checker process (engine.imagecheck) runs inside a bubblewrap sandbox when one can start here:
no network (its own empty network namespace), no other processes, the Python install and the engine's code
read-only, and nothing of the data folder but the upload's own folder, the only place it can write. It always
runs under a memory and a CPU-time limit, and each file's answer must come within a wall-clock deadline
(a checker blocked or asleep uses no CPU time). One checker serves FILES_PER_CHECKER files of an upload, a file
at a time; a file that crashes it, hits a limit or gets no answer in time is rejected with the reason, and a
new checker takes the rest of the files. Its answers are not trusted either: an answer over the caps below
counts as a crash of that file.

`limits["sandbox"]` (INGEST_SANDBOX) is `auto` (the sandbox when it can start here, otherwise the limits
alone, said at start and in health), `on` (the sandbox or no check: an upload fails while it cannot start)
or `off` (the limits alone).
"""
from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import engine
from engine.errors import StudioError
from engine.imagecheck import MEMORY_EXIT, THUMB_SIZE, CheckedImage
from engine.images import ACCEPTED_FORMATS
from engine.messages import N_, Message
from engine.quality import Signature

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
SANDBOX_STATES = ("sandboxed", "limits_only", "unavailable")  # from the strongest to the weakest
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Files one checker takes: its CPU time in all is bounded by theirs (a hard limit), then a new one starts.
FILES_PER_CHECKER = 256
START_SECONDS = 30  # for a checker to say it is ready, before it has read any file
# The most an answer may hold: a JSON line (with an image's signature, a few hundred bytes), a rejection's text,
# a thumbnail (a THUMB_SIZE JPEG is tens of kB).
MAX_ANSWER_LINE = 4096
MAX_REASON_CHARS = 500
MAX_THUMBNAIL_BYTES = THUMB_SIZE * THUMB_SIZE * 3
NOT_INSTALLED = "bubblewrap (bwrap) is not installed"
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
        return NOT_INSTALLED
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
    """Checks the images of one upload in checker processes (a context manager). Files are sent in batches
    by a feeding thread while the answers are read, so the checker never waits for the next file."""

    def __init__(self, folder: Path, limits: dict) -> None:
        self.folder, self.limits = Path(folder), limits
        self.mode = check_mode(limits["sandbox"])
        self.process: subprocess.Popen | None = None
        self._answers: _Answers | None = None
        self._taken = 0  # files sent to the current checker

    def __enter__(self) -> "ImageChecker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_files(self, files: list[bytes]) -> list[CheckedImage | Message]:
        """Each file's facts and thumbnail, or why it is rejected (a crash, a limit hit or no answer in
        time included), in order."""
        outcomes: list[CheckedImage | Message] = []
        while len(outcomes) < len(files):
            outcomes += self._run(files[len(outcomes):])
        return outcomes

    def close(self) -> None:
        """End the current checker: it ends when its input does, or is killed when it does not in time."""
        if self.process is not None:
            process, self.process = self.process, None
            _close(process.stdin)
            process.stdout.close()
            try:
                process.wait(timeout=self.limits["check_wall_seconds"])
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def command(self) -> list[str]:
        checker = [sys.executable, "-P", "-s", "-m", "engine.imagecheck", str(self.limits["max_pixels"]),
                   str(self.limits["check_memory_mb"]), str(self.limits["check_cpu_seconds"]), str(FILES_PER_CHECKER)]
        state = sandbox_state(self.mode)
        if state == "unavailable":
            log.error("INGEST_SANDBOX=on but the sandbox cannot start here (%s): the upload is not checked",
                      bwrap_problem())
            raise StudioError("ingest_sandbox_unavailable",
                              "The upload was not checked: INGEST_SANDBOX=on requires the upload sandbox, and it "
                              "cannot start because %(reason)s.", {"reason": unavailable_reason(bwrap_problem())})
        return [*sandbox_prefix(self.folder), *checker] if state == "sandboxed" else checker

    def _run(self, files: list[bytes]) -> list[CheckedImage | Message]:
        """The answers for the files the checker has left in its budget, up to and including the first that
        ended the checker."""
        process = self.process or self._start()
        files = files[:FILES_PER_CHECKER - self._taken]
        self._taken += len(files)
        feeder = threading.Thread(target=_feed, args=(process.stdin, files), daemon=True)
        feeder.start()
        outcomes: list[CheckedImage | Message] = []
        try:
            for _ in files:
                outcomes.append(self._read_outcome(time.monotonic() + self.limits["check_wall_seconds"]))
        except _NoAnswer:
            outcomes.append(self._stopped())
        except (OSError, EOFError, ValueError, KeyError, TypeError, ArithmeticError):
            outcomes.append(self._ended())
        feeder.join()
        if process is not self.process:
            _close(process.stdin)
            process.stdout.close()
        elif self._taken >= FILES_PER_CHECKER:
            self.close()
        return outcomes

    def _start(self) -> subprocess.Popen:
        self.folder.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self.folder,
                                   env=checker_environment())
        answers = _Answers(process.stdout)
        try:
            ready = answers.line(time.monotonic() + START_SECONDS)
        except (_NoAnswer, EOFError, ValueError):
            ready = {}
        if ready != {"ready": True}:
            process.kill()
            raise RuntimeError(f"the image checker did not start (exit code {process.wait()})")
        self.process, self._answers, self._taken = process, answers, 0
        return process

    def _read_outcome(self, deadline: float) -> CheckedImage | Message:
        """The next answer, checked against the caps (ValueError when over them or malformed, a signature
        included)."""
        answer = self._answers.line(deadline)
        if "rejected" in answer:
            reason = Message(str(answer["rejected"]["template"]), dict(answer["rejected"]["params"] or {}))
            if len(reason) > MAX_REASON_CHARS:
                raise ValueError(f"a rejection of {len(reason)} characters")
            return reason
        size = int(answer["thumbnail"])
        if not 0 < size <= MAX_THUMBNAIL_BYTES:
            raise ValueError(f"a thumbnail of {size} bytes")
        signature = Signature.from_json(answer["signature"])
        checked = CheckedImage(answer["format"], answer["extension"], int(answer["width"]), int(answer["height"]),
                               self._answers.exactly(size, deadline), signature)
        if ACCEPTED_FORMATS.get(checked.format) != checked.extension:
            raise ValueError(f"not an answer of the checker: {answer}")
        return checked

    def _ended(self) -> Message:
        """The reason for the file the checker was on when it ended; the next file starts a new checker."""
        process, self.process = self.process, None
        if process.poll() is None:  # alive, but its answer made no sense or was over the caps
            process.kill()
        return crash_reason(process.wait(), self.limits)

    def _stopped(self) -> Message:
        """The file the checker gave no answer for in time: it is killed, the next file starts a new one."""
        process, self.process = self.process, None
        process.kill()
        process.wait()
        return Message(N_("no answer came from the image decoder within the time limit of %(seconds)s s"),
                       {"seconds": self.limits["check_wall_seconds"]})


class _NoAnswer(Exception):
    """The checker did not answer before the deadline."""


class _Answers:
    """The checker's answers on its stdout, read without its buffer so that a read waits no longer than a
    deadline; a line longer than MAX_ANSWER_LINE is refused before it is all read."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd, self.buffer = stream.fileno(), bytearray()

    def line(self, deadline: float) -> dict:
        while (end := self.buffer.find(b"\n", 0, MAX_ANSWER_LINE + 1)) < 0:
            if len(self.buffer) > MAX_ANSWER_LINE:
                raise ValueError(f"an answer line over {MAX_ANSWER_LINE} bytes")
            self._fill(deadline)
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 1]
        return json.loads(line)

    def exactly(self, size: int, deadline: float) -> bytes:
        while len(self.buffer) < size:
            self._fill(deadline)
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise _NoAnswer
        chunk = os.read(self.fd, 2**16)
        if not chunk:
            raise EOFError
        self.buffer += chunk


def unavailable_reason(problem: str | None) -> Message:
    """Why the sandbox cannot start, in words for people: no server paths, no command output."""
    if problem == NOT_INSTALLED:
        return Message(N_("bubblewrap (bwrap) is not installed on the ingest worker"))
    if any(word in (problem or "").lower() for word in ("namespace", "uid map", "unshare")):
        return Message(N_("this system does not let it create user namespaces (as in many containers)"))
    return Message(N_("bubblewrap failed to start (the ingest worker's log says why)"))


def _feed(stream: IO[bytes], files: list[bytes]) -> None:
    """Send `files` to the checker; stops quietly when it has ended."""
    try:
        for data in files:
            stream.write(json.dumps({"size": len(data)}).encode() + b"\n")
            stream.write(data)
        stream.flush()
    except (OSError, ValueError):
        pass


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
