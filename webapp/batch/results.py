"""A batch run's results: one row per item, appended to a CSV file and a JSON Lines file as the run goes, and
the run's summary. The files are synced before each commit of the row that records their sizes; an attempt
that goes on after a lost worker cuts them back to those sizes first, so no row is ever written twice."""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

CSV_NAME = "results.csv"
JSONL_NAME = "results.jsonl"
CSV_COLUMNS = ("path", "class", "confidence", "abstained", "top_k", "error", "reason")


def answered_row(path: str, answer: dict) -> dict:
    """The row of an answered image: its path and the answer POST /api/predict gives (class, confidence,
    abstained, top_k); no error."""
    return {"path": path, "class": answer["class"], "confidence": answer["confidence"],
            "abstained": answer["abstained"], "top_k": answer["top_k"], "error": None, "reason": None}


def refused_row(path: str, code: str, reason: str) -> dict:
    """The row of a file that got no answer, with why (a code and the English words)."""
    return {"path": path, "class": None, "confidence": None, "abstained": False, "top_k": [], "error": code,
            "reason": str(reason)}


def csv_line(row: dict) -> bytes:
    """The row as one CSV record: top_k as JSON text, empty cells for what is null."""
    cells = [row["path"], row["class"] or "", "" if row["confidence"] is None else row["confidence"],
             "true" if row["abstained"] else "false",
             json.dumps(row["top_k"], ensure_ascii=False) if row["top_k"] else "", row["error"] or "",
             row["reason"] or ""]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue().encode()


def jsonl_line(row: dict) -> bytes:
    return (json.dumps(row, ensure_ascii=False) + "\n").encode()


@dataclass
class Summary:
    """What a run found so far: answers per class, abstentions, refusals by code, and its running time."""

    classes: dict[str, int] = field(default_factory=dict)
    abstained: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @classmethod
    def from_json(cls, stored: dict | None) -> "Summary":
        stored = stored or {}
        return cls(dict(stored.get("classes", {})), int(stored.get("abstained", 0)), dict(stored.get("refused", {})),
                   float(stored.get("seconds", 0.0)))

    def add(self, row: dict) -> None:
        if row["error"] is not None:
            self.refused[row["error"]] = self.refused.get(row["error"], 0) + 1
        elif row["abstained"]:
            self.abstained += 1
        else:
            self.classes[row["class"]] = self.classes.get(row["class"], 0) + 1

    @property
    def answered(self) -> int:
        return sum(self.classes.values()) + self.abstained

    def to_json(self) -> dict:
        rate = (self.answered + sum(self.refused.values())) / self.seconds if self.seconds > 0 else None
        return {"classes": dict(sorted(self.classes.items())), "abstained": self.abstained,
                "refused": dict(sorted(self.refused.items())), "seconds": round(self.seconds, 3),
                "images_per_second": None if rate is None else round(rate, 2)}


class ResultsWriter:
    """Appends rows to both files of a run's folder, from the committed sizes on (anything after them, from an
    attempt that was lost before its commit, is cut off first)."""

    def __init__(self, folder: Path, csv_bytes: int = 0, jsonl_bytes: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.csv = _opened_at(folder / CSV_NAME, csv_bytes)
        self.jsonl = _opened_at(folder / JSONL_NAME, jsonl_bytes)
        if csv_bytes == 0:
            self.csv.write(",".join(CSV_COLUMNS).encode() + b"\r\n")

    def write(self, row: dict) -> None:
        self.csv.write(csv_line(row))
        self.jsonl.write(jsonl_line(row))

    def sync(self) -> tuple[int, int]:
        """Flush both files to disk; their sizes, to be committed with the rows they hold."""
        for stream in (self.csv, self.jsonl):
            stream.flush()
            os.fsync(stream.fileno())
        return self.csv.tell(), self.jsonl.tell()

    def close(self) -> None:
        self.csv.close()
        self.jsonl.close()

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _opened_at(path: Path, size: int):
    """`path` opened for writing at `size`, cut to it (made when it is missing and `size` is 0)."""
    if size == 0 or not path.exists():
        if size:
            raise FileNotFoundError(f"{path.name} is missing, yet {size} bytes of it were committed")
        stream = open(path, "wb")
    else:
        stream = open(path, "r+b")
        stream.truncate(size)
        stream.seek(size)
    return stream


def committed(path: Path, size: int, chunk: int = 256 * 1024):
    """The first `size` bytes of a results file (what the row says is committed), a chunk at a time (none of a
    run that ended before its first commit, whose file may not exist)."""
    if size <= 0:
        return
    with open(path, "rb") as stream:
        left = size
        while left > 0:
            data = stream.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
