"""A one-line progress bar on stderr, redrawn in place at most ten times a second on a terminal; elsewhere
(a log, a pipe) only its last state is written, as one plain line."""
from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GB"


class ProgressBar:
    """`update(done, total)` redraws the bar; `clear()` wipes it before other lines are printed."""

    def __init__(self, label: str = "", in_bytes: bool = False, stream: TextIO | None = None) -> None:
        self.label, self.in_bytes = label, in_bytes
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.drawn_at = 0.0
        self.shown = False

    def update(self, done: int, total: int, label: str | None = None) -> None:
        now = time.monotonic()
        if done < total and (not self.live or now - self.drawn_at < 0.1):
            return
        self.drawn_at, self.label = now, label if label is not None else self.label
        share = done / total if total else 1.0
        filled = int(WIDTH * share)
        counts = (f"{_size(done)}/{_size(total)} {_size(done / max(now - self.started, 1e-6))}/s" if self.in_bytes
                  else f"{done}/{total}")
        line = f"{self.label} [{'#' * filled}{' ' * (WIDTH - filled)}] {share:4.0%} {counts}"
        self.stream.write(f"\r{line}\033[K" if self.live else line + "\n")
        self.stream.flush()
        self.shown = self.live

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
            self.shown = False
