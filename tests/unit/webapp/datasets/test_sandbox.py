"""Upload images are decoded in a checker process of their own: in a bubblewrap sandbox (no network, nothing
writable but the upload's own folder) where one can start, and under memory and CPU-time limits always."""
from __future__ import annotations

import io
import logging
import signal
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import engine
from engine.errors import StudioError
from tests.images import class_files, image_bytes, zip_bytes
from webapp.datasets import sandbox
from webapp.datasets.sandbox import ImageChecker, checker_environment, crash_reason, sandbox_prefix

needs_bwrap = pytest.mark.skipif(sandbox.bwrap_problem() is not None,
                                 reason=f"the sandbox cannot start here: {sandbox.bwrap_problem()}")
LIMITS = {"max_pixels": 80_000_000, "sandbox": "auto", "check_memory_mb": 64, "check_cpu_seconds": 30,
          "check_wall_seconds": 90}


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header that claims `width` x `height` pixels over a 1-pixel body: decoding it allocates
    the whole claimed image before finding the data short."""
    data = bytearray(image_bytes(size=(1, 1), fmt="PNG"))
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def run_in_sandbox(folder: Path, code: str, *args: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([*sandbox_prefix(folder), sys.executable, "-P", "-s", "-c", code, *args],
                          capture_output=True, text=True, env=checker_environment(), timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def upload_with_a_memory_bomb(client) -> dict:
    files = class_files({"cat": 3, "dog": 3})
    files["cat/huge.png"] = png_claiming(6000, 6000)  # 108 MB of pixels; sorted before the other cats
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(zip_bytes(files)), "pets.zip")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def assert_only_the_bomb_was_rejected(dataset: dict) -> None:
    assert dataset["status"] == "ready"
    assert dataset["num_images"] == 6
    assert {row["name"]: row["train"] + row["val"] for row in dataset["classes"]} == {"cat": 3, "dog": 3}
    assert dataset["rejected"] == [{"path": "cat/huge.png",
                                    "reason": "decoding it needed more memory than the limit of 64 MB"}]


@needs_bwrap
def test_a_check_in_the_sandbox_cannot_reach_a_loopback_port(tmp_path):
    folder = tmp_path / "upload"
    assert ImageChecker(folder, LIMITS).command()[:len(sandbox_prefix(folder))] == sandbox_prefix(folder)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        code = ("import socket, sys\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
                "    print('connected')\nexcept OSError as exc:\n    print(type(exc).__name__)")
        assert run_in_sandbox(folder, code, str(server.getsockname()[1])).strip() in (
            "ConnectionRefusedError", "OSError")
        with pytest.raises(BlockingIOError):
            server.accept()


@needs_bwrap
def test_the_checker_imports_neither_paddle_nor_the_web_app(tmp_path):
    code = ("import sys\nimport engine.imagecheck\n"
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'paddle', 'flask', 'webapp'}))")
    assert run_in_sandbox(tmp_path / "upload", code).strip() == "[]"


@needs_bwrap
def test_a_check_cannot_write_outside_the_upload_folder_nor_read_other_data(tmp_path):
    folder = tmp_path / "data" / "tmp" / "ingest-1-1" / "check"
    (tmp_path / "data" / "keys").mkdir(parents=True)
    (tmp_path / "data" / "keys" / "session.key").write_text("secret")
    targets = [folder / "inside.txt", tmp_path / "data" / "outside.txt", Path(sys.prefix) / "planted.txt",
               Path(engine.__file__).parent / "planted.py"]
    code = ("import sys\nfor path in sys.argv[1:]:\n    try:\n        open(path, 'a').close()\n"
            "        print('written')\n    except OSError as exc:\n        print(type(exc).__name__)\n"
            "try:\n    print(open(sys.argv[-1]).read())\nexcept OSError as exc:\n    print(type(exc).__name__)")
    try:
        lines = run_in_sandbox(folder, code, *map(str, targets), str(tmp_path / "data" / "keys" / "session.key"))
    finally:
        for target in targets[2:]:
            target.unlink(missing_ok=True)
    inside, outside, prefix, code_folder, *_, secret = lines.split()
    assert inside == "written" and (folder / "inside.txt").exists()
    assert outside == "OSError" and not (tmp_path / "data" / "outside.txt").exists()
    assert prefix == code_folder == "OSError"  # a read-only file system
    assert secret == "FileNotFoundError"


@needs_bwrap
def test_an_image_over_the_memory_limit_is_rejected_and_the_rest_of_the_upload_kept(app, client):
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "check_memory_mb": 64}
    assert_only_the_bomb_was_rejected(upload_with_a_memory_bomb(client))


def test_without_the_sandbox_checks_run_under_the_limits_and_the_studio_says_so(app, client, monkeypatch, caplog):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "no user namespaces")
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "check_memory_mb": 64}
    assert ImageChecker(Path("upload"), app.config["INGEST_LIMITS"]).command()[0] == sys.executable
    assert_only_the_bomb_was_rejected(upload_with_a_memory_bomb(client))
    assert client.get("/api/health").get_json()["ingest_sandbox"] == "limits_only"
    with caplog.at_level(logging.WARNING, logger=sandbox.__name__):
        sandbox.announce.__wrapped__("auto")
    assert "cannot start here (no user namespaces)" in caplog.text


def test_a_required_sandbox_that_cannot_start_checks_nothing(app, client, monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "no user namespaces")
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "sandbox": "on"}
    assert client.get("/api/health").get_json()["ingest_sandbox"] == "unavailable"
    with pytest.raises(StudioError, match="cannot start because this system does not let it create user namespaces"), \
            ImageChecker(tmp_path, {**LIMITS, "sandbox": "on"}) as checker:
        checker.check_files([image_bytes()])


def test_a_check_over_the_cpu_time_limit_ends_with_the_reason(tmp_path):
    """The checker's own limit, in the sandbox where it can start (bubblewrap reports the signal as 128 + it)."""
    prefix = sandbox_prefix(tmp_path) if sandbox.bwrap_problem() is None else []
    code = "from engine.imagecheck import _limit_cpu\n_limit_cpu(1)\nwhile True:\n    pass"
    done = subprocess.run([*prefix, sys.executable, "-P", "-s", "-c", code], env=checker_environment(), timeout=60)
    limits = {**LIMITS, "check_cpu_seconds": 1}
    assert str(crash_reason(done.returncode, limits)) == "decoding it took more than the CPU-time limit of 1 s"


def test_a_checker_that_ends_names_the_limit_or_the_crash():
    assert str(crash_reason(-signal.SIGXCPU, LIMITS)) == "decoding it took more than the CPU-time limit of 30 s"
    assert str(crash_reason(128 + signal.SIGXCPU, LIMITS)) == str(crash_reason(-signal.SIGXCPU, LIMITS))
    assert str(crash_reason(-signal.SIGSEGV, LIMITS)) == "the image decoder crashed on it (SIGSEGV)"
    assert str(crash_reason(3, LIMITS)) == "the image decoder crashed on it (exit code 3)"


# A checker whose decoder misbehaves on a few marked files and decodes the others as the real one does.
MISBEHAVING_DECODER = """
import dataclasses, resource, sys, time
import engine.imagecheck as checker
from engine.images import ImageRejected
from engine.quality import signature
from PIL import Image

decode = checker.check_image


class BadSignature:
    def to_json(self):
        return {"spectra": ["not base64"], "blur": float("nan")}


def check_image(data, max_pixels):
    if data == b"hang":
        time.sleep(600)
    if data == b"huge thumbnail":
        return checker.CheckedImage("PNG", "png", 1, 1, bytes(8 * 2**20), signature(Image.new("RGB", (1, 1))))
    if data.startswith(b"bad signature"):
        checked = decode(data[len(b"bad signature"):], max_pixels)
        return dataclasses.replace(checked, signature=BadSignature())
    if data == b"long reason":
        raise ImageRejected("image_corrupt", "x" * 100_000)
    if data == b"raise the cpu limit":
        try:
            resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        except ValueError:
            raise ImageRejected("image_corrupt", "refused") from None
        raise ImageRejected("image_corrupt", "raised")
    return decode(data, max_pixels)


checker.check_image = check_image
checker.main(sys.argv[1:])
"""


@pytest.fixture
def misbehaving_decoder(monkeypatch) -> list[int]:
    """Checkers run MISBEHAVING_DECODER instead of the real module; the list collects their process ids."""
    command, started = ImageChecker.command, []

    def misbehaving(self):
        argv = command(self)
        at = argv.index("-m")
        return [*argv[:at], "-c", MISBEHAVING_DECODER, *argv[at + 2:]]

    start = ImageChecker._start

    def counted(self):
        process = start(self)
        started.append(process.pid)
        return process

    monkeypatch.setattr(ImageChecker, "command", misbehaving)
    monkeypatch.setattr(ImageChecker, "_start", counted)
    return started


def reasons(outcomes) -> list:
    return [outcome if isinstance(outcome, str) else outcome.format for outcome in outcomes]


def test_a_checker_that_hangs_without_using_cpu_is_stopped_at_the_wall_clock_deadline(tmp_path, misbehaving_decoder):
    limits = {**LIMITS, "check_wall_seconds": 1}
    with ImageChecker(tmp_path / "check", limits) as checker:
        outcomes = checker.check_files([image_bytes(fmt="PNG"), b"hang", image_bytes(fmt="JPEG")])
    assert reasons(outcomes) == ["PNG", "no answer came from the image decoder within the time limit of 1 s",
                                 "JPEG"]
    assert len(misbehaving_decoder) == 2  # the rest of the files went to a new checker


def test_answers_of_the_checker_over_the_caps_count_as_a_crash(tmp_path, misbehaving_decoder):
    with ImageChecker(tmp_path / "check", LIMITS) as checker:
        outcomes = checker.check_files([b"huge thumbnail", image_bytes(fmt="PNG"), b"long reason",
                                        image_bytes(fmt="JPEG"), b"bad signature" + image_bytes(fmt="PNG"),
                                        image_bytes(fmt="PNG")])
    crash = "the image decoder crashed on it (SIGKILL)"
    assert reasons(outcomes) == [crash, "PNG", crash, "JPEG", crash, "PNG"]
    assert len(misbehaving_decoder) == 4


def test_a_checker_without_the_sandbox_cannot_raise_its_cpu_limit_and_is_replaced_when_its_budget_is_spent(
        tmp_path, monkeypatch, misbehaving_decoder):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "no user namespaces")
    monkeypatch.setattr(sandbox, "FILES_PER_CHECKER", 2, raising=False)
    with ImageChecker(tmp_path / "check", LIMITS) as checker:
        outcomes = checker.check_files([b"raise the cpu limit", image_bytes(fmt="PNG"), image_bytes(fmt="JPEG")])
    assert reasons(outcomes) == ["refused", "PNG", "JPEG"]
    assert len(misbehaving_decoder) == 2  # two files each, at most


def test_the_checker_docstring_names_the_command_that_runs_it(tmp_path, monkeypatch):
    from engine import imagecheck

    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: "no user namespaces")
    argv = ImageChecker(tmp_path, LIMITS).command()
    usage = " ".join(["python", *argv[1:argv.index("engine.imagecheck") + 1]])
    assert f"`{usage} " in " ".join(imagecheck.__doc__.split())


@pytest.mark.parametrize("problem, why", [
    ("bubblewrap (bwrap) is not installed", "bubblewrap (bwrap) is not installed on the ingest worker"),
    ("bwrap: No permissions to create a new namespace, likely because the kernel does not allow non-privileged "
     "user namespaces.", "this system does not let it create user namespaces (as in many containers)"),
    ("[Errno 13] Permission denied: '/srv/studio/bin/bwrap'", "bubblewrap failed to start (the ingest worker's "
                                                             "log says why)"),
])
def test_an_upload_that_needs_the_sandbox_when_it_cannot_start_says_why_in_words(app, client, monkeypatch, problem,
                                                                                  why):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: problem)
    app.config["INGEST_LIMITS"] = {**app.config["INGEST_LIMITS"], "sandbox": "on"}
    files = zip_bytes(class_files({"cat": 2, "dog": 2}))
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(files), "pets.zip")})
    assert response.status_code == 503
    assert response.get_json()["code"] == "ingest_sandbox_unavailable"
    assert response.get_json()["error"] == ("The upload was not checked: INGEST_SANDBOX=on requires the upload "
                                            f"sandbox, and it cannot start because {why}.")
    chinese = client.post("/api/datasets", content_type="multipart/form-data", headers={"Accept-Language": "zh-CN"},
                          data={"archive": (io.BytesIO(files), "pets.zip")}).get_json()["error"]
    assert "INGEST_SANDBOX=on" in chinese and "沙箱" in chinese and "/srv" not in chinese
