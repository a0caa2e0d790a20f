"""Calls made at the same moment from several threads, for tests of what processes or threads do at once."""
from __future__ import annotations

import threading


def at_once(call, count: int = 8) -> list:
    """What `call()` returned in each of `count` threads released together (a barrier), in no set order."""
    start, results = threading.Barrier(count), []

    def run() -> None:
        start.wait()
        results.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
