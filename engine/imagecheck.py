"""Check that bytes are an image the studio accepts and make its thumbnail, and the checker process that does it
for an upload: `python -P -s -m engine.imagecheck MAX_PIXELS MEMORY_MB CPU_SECONDS FILES`, which
webapp.datasets.sandbox starts (inside its sandbox when one can start) with an environment of its own that
names where the engine is (PYTHONPATH, which `-I` would ignore): `-P` keeps the current folder off the import
path and `-s` the user's site-packages. It imports Pillow and numpy only: no Paddle, and none of the web app.

The process answers `{"ready": true}` once its limits are set, before it reads any file. Then it reads files
from stdin, each a JSON line `{"size": N}` followed by N bytes, and answers each on stdout with a JSON line:
`{"format", "extension", "width", "height", "signature", "thumbnail": M}` followed by the M bytes of the JPEG
thumbnail (`signature`: engine.quality.Signature.to_json() of the thumbnail, for the dataset's quality report),
or `{"rejected": {"template", "params"}}`. A file that needs more memory than MEMORY_MB beyond the checker's
own ends it with MEMORY_EXIT; one that takes more than CPU_SECONDS of CPU time ends it by SIGXCPU. It takes
at most FILES files, then ends (the caller starts another for the rest), and its CPU time in all is bounded
by a hard limit that it cannot raise itself: CPU_SECONDS for each of its files and one more share for the
reading between them.
"""
from __future__ import annotations

import io
import json
import math
import os
import resource
import sys
from dataclasses import dataclass
from typing import IO

from PIL import Image

from engine.images import ACCEPTED_FORMATS, ImageRejected, open_checked, upright_rgb
from engine.quality import Signature, signature

THUMB_SIZE = 192
MEMORY_EXIT = 75


@dataclass
class CheckedImage:
    format: str
    extension: str
    width: int
    height: int
    thumbnail: bytes
    signature: Signature


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Decode `data` completely (by content, not name) and return its facts, thumbnail and signature (taken
    from the thumbnail before it is encoded: no second decode).

    Raises engine.images.ImageRejected with the reason.
    """
    image, (width, height) = open_checked(data, max_pixels, draft=THUMB_SIZE * 2)
    with image:
        thumb = thumbnail_image(image)
        return CheckedImage(image.format, ACCEPTED_FORMATS[image.format], width, height, thumbnail_jpeg(thumb),
                            signature(thumb))


def thumbnail_image(image: Image.Image) -> Image.Image:
    """The decoded image upright, in RGB, within THUMB_SIZE x THUMB_SIZE."""
    thumb = upright_rgb(image)
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    return thumb


def thumbnail_jpeg(thumb: Image.Image) -> bytes:
    """The thumbnail as the JPEG the studio keeps and shows."""
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82)
    return out.getvalue()


def main(argv: list[str]) -> None:
    max_pixels, memory_mb, cpu_seconds, max_files = (int(value) for value in argv)
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print of a library goes to the log, never into the answers
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _limit_memory(memory_mb)
    _limit_cpu_in_all(cpu_seconds * (max_files + 1))  # one file's more for the reading between the files
    _answer(answers, {"ready": True})
    files = sys.stdin.buffer
    for _ in range(max_files):
        if not (header := files.readline()):
            break
        data = files.read(json.loads(header)["size"])
        _limit_cpu(cpu_seconds)
        try:
            checked = check_image(data, max_pixels)
        except ImageRejected as exc:
            _answer(answers, {"rejected": {"template": exc.template, "params": exc.params}})
            continue
        except MemoryError:
            os._exit(MEMORY_EXIT)
        _answer(answers, {"format": checked.format, "extension": checked.extension, "width": checked.width,
                          "height": checked.height, "signature": checked.signature.to_json(),
                          "thumbnail": len(checked.thumbnail)}, checked.thumbnail)
    os._exit(0)  # every answer is flushed: the interpreter's teardown would only keep the ingest waiting


def _answer(out: IO[bytes], head: dict, body: bytes = b"") -> None:
    out.write(json.dumps(head).encode() + b"\n" + body)
    out.flush()


def _own_size() -> int:
    """The process's address space now (VmSize), in bytes; 0 where /proc does not tell."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _limit_memory(memory_mb: int) -> None:
    """Allow `memory_mb` of address space beyond what the interpreter and its libraries already take."""
    limit = _own_size() + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _cpu_used() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return math.ceil(usage.ru_utime + usage.ru_stime)


def _limit_cpu_in_all(cpu_seconds: int) -> None:
    """Allow `cpu_seconds` more CPU time in all, as the hard limit (SIGKILL past it): a decoder that took
    over the process can raise its soft limit up to the hard one, never past it."""
    limit = _cpu_used() + cpu_seconds
    resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))


def _limit_cpu(cpu_seconds: int) -> None:
    """Allow the next file `cpu_seconds` of CPU time (SIGXCPU, which ends the process, past that), kept under
    the hard limit so that a file over its limit ends by SIGXCPU, with its reason."""
    limit, hard = _cpu_used() + cpu_seconds, resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard - 1)
    resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))


if __name__ == "__main__":
    main(sys.argv[1:])
