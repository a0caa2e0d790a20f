"""Refusing a zip that lists too many entries: parsing its central directory first (zipfile.ZipFile, then
the entry count, as uploads were checked before) against reading its end record first (the studio's
check_directory). The archive is built in memory: a million empty members with short names, as a
hostile upload would send them, once with its true count in the end record and once with an end record
that claims one entry (then the directory's headers are walked and counted). Prints JSON with each way's
seconds and peak Python memory, in this one process, and the ratios.

    .venv/bin/python benchmarks/archive_directory.py [--members 1000000] [--max-entries 50000] [--tiny]
"""
from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.errors import StudioError  # noqa: E402
from webapp.datasets.archive import zip_entries  # noqa: E402

LIMITS = {"max_entries": 50_000, "max_total_bytes": 8192 * 2**20, "max_ratio": 200}
TINY = {"members": 2000, "max_entries": 1000}
LOCAL = struct.Struct("<4s5H3L2H")
CENTRAL = struct.Struct("<4s6H3L5H2L")


def hostile_zip(members: int) -> bytes:
    """A valid zip of `members` empty stored files named by 5 hex digits, with zip64 end records."""
    local, central, offset = [], [], 0
    for index in range(members):
        name = f"{index:05x}".encode()
        local.append(LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name)
        central.append(CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0,
                                    offset) + name)
        offset += LOCAL.size + len(name)
    directory = b"".join(central)
    record = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, members, members, len(directory), offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, offset + len(directory), 1)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return b"".join(local) + directory + record + locator + end


def parse_first(data: bytes, limits: dict) -> None:
    """What uploads did before: zipfile parses the whole directory, then the count is checked."""
    infos = [info for info in zipfile.ZipFile(io.BytesIO(data)).infolist() if not info.is_dir()]
    if len(infos) > limits["max_entries"]:
        raise StudioError("archive_too_large", "too many entries")


def end_record_first(data: bytes, limits: dict) -> None:
    zip_entries(io.BytesIO(data), limits)


def claiming_one_entry(data: bytes) -> bytes:
    """The same archive with a zip64 end record that claims a single entry."""
    at = data.rfind(b"PK\x06\x06")
    return data[:at + 24] + struct.pack("<QQ", 1, 1) + data[at + 40:]


def measure(refuse, data: bytes, limits: dict, runs: int = 3) -> dict:
    """Seconds to refuse (best of `runs`, without tracing) and the peak of Python allocations while refusing."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            refuse(data, limits)
        except StudioError as refused:
            code = refused.code
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    try:
        refuse(data, limits)
    except StudioError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"code": code, "seconds": round(min(seconds), 6), "peak_mb": round(peak / 2**20, 3)}


def ratios(before: dict, after: dict) -> dict:
    return {"seconds_ratio": round(before["seconds"] / max(after["seconds"], 1e-6)),
            "memory_ratio": round(before["peak_mb"] / max(after["peak_mb"], 1e-3))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--max-entries", type=int, default=LIMITS["max_entries"],
                        help="the upload limit on entries (fewer than --members, so that both ways refuse)")
    args = parse_args(parser, TINY)
    if args.members <= args.max_entries:
        parser.error("--members must exceed --max-entries: the benchmark times refusals")
    limits = {**LIMITS, "max_entries": args.max_entries}
    data = hostile_zip(args.members)
    lying = claiming_one_entry(data)
    honest_after, lying_after = measure(end_record_first, data, limits), measure(end_record_first, lying, limits)
    before = measure(parse_first, data, limits, runs=1)
    print(json.dumps({"members": args.members, "archive_mb": round(len(data) / 2**20, 1),
                      "max_entries": args.max_entries, "parse_first": before,
                      "end_record_first": {**honest_after, **ratios(before, honest_after)},
                      "end_record_claiming_one_entry": {**lying_after, **ratios(before, lying_after)}}, indent=2))


if __name__ == "__main__":
    main()
