"""Serving on a GPU: an evicted version's predictors end on their own threads, only when no other predictor
runs, oldest first, and a limit forces that moment at a boundary between batches; the CPU ends them at once.

Fake sessions stand in for the predictors: each records whether it was closed while another one ran."""
from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.bundle import BundleRejected, read_bundle
from engine.runtimes import open_session
from webapp.config import ServingOptions
from webapp.predict import serving
from webapp.predict.serving import ModelServer, RetiredSessions, VersionUnloaded

WAIT = 5.0  # seconds any one step may take before the test fails (never a pause: every wait ends on an event)
IMAGE = Image.new("RGB", (40, 40), (200, 30, 30))


class FakeSession:
    """A predictor's stand-in: runs of a held version block until the test lets them go."""

    fallback = None

    def __init__(self, predictors: Predictors, version: int) -> None:
        self.predictors, self.version = predictors, version
        self.destroyed = False
        self.made_on, self.closed_on = threading.get_ident(), None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert not self.destroyed, "a closed session ran"
        self.predictors.enter()
        try:
            if self.version in self.predictors.failing:
                raise RuntimeError("CUDA error: out of memory")
            if self.version in self.predictors.held:
                self.predictors.inside.release()
                assert self.predictors.go.wait(WAIT)
            return np.full((len(batch), 3), 1 / 3, dtype=np.float32)
        finally:
            self.predictors.leave()

    def close(self) -> None:
        self.predictors.closing(self)
        self.destroyed, self.closed_on = True, threading.get_ident()


class Predictors:
    """Every fake session made, the runs in progress, and the sessions closed while another ran."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made: list[FakeSession] = []
        self.running = 0
        self.closed_during_runs: list[FakeSession] = []
        self.held: set[int] = set()  # versions whose runs block until `go`
        self.failing: set[int] = set()  # versions whose runs raise (from the warm-up on)
        self.inside, self.go = threading.Semaphore(0), threading.Event()

    def open(self, files, runtime: str, device: str, cpu_threads: int) -> FakeSession:
        session = FakeSession(self, int(files.model.parent.name))
        with self.lock:
            self.made.append(session)
        return session

    def enter(self) -> None:
        with self.lock:
            self.running += 1

    def leave(self) -> None:
        with self.lock:
            self.running -= 1

    def closing(self, session: FakeSession) -> None:
        with self.lock:
            if self.running:
                self.closed_during_runs.append(session)

    def of(self, version: int) -> list[FakeSession]:
        return [session for session in self.made if session.version == version]

    def live(self) -> list[FakeSession]:
        return [session for session in self.made if not session.destroyed]


@pytest.fixture
def predictors(monkeypatch) -> Predictors:
    made = Predictors()
    monkeypatch.setattr(serving, "open_session", made.open)
    yield made
    made.go.set()  # a failed test leaves no run blocked


@pytest.fixture
def models(trained, tmp_path) -> Path:
    """Versions 1 and 2: copies of the trained bundle."""
    for version in (1, 2):
        shutil.copytree(trained[1], tmp_path / "models" / str(version))
    return tmp_path / "models"


def server_on(models: Path, device: str) -> ModelServer:
    """A server that keeps one version loaded, two threads each."""
    return ModelServer(models, ServingOptions(runtime="paddle", threads=2, max_versions=1), device=device)


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.002)


def in_thread(target):
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_an_evicted_version_ends_its_predictors_only_once_the_runs_in_progress_finish(models, predictors):
    server = server_on(models, "gpu:0")
    first = server.get(1)
    predictors.held.add(1)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(first.probabilities, IMAGE)
        assert predictors.inside.acquire(timeout=WAIT)  # a batch of version 1 is inside its predictor
        second = server.get(2)  # evicts version 1 under load
        assert server.loaded(1) is None and server.loaded(2) is second
        with pytest.raises(VersionUnloaded):
            first.probabilities(IMAGE)
        wait_until(lambda: server.retired.waiting == 1 or any(s.destroyed for s in predictors.of(1)),
                   "the idle thread of version 1 to retire")
        assert second.probabilities(IMAGE).shape == (3,)  # the other versions serve meanwhile
        assert [session.destroyed for session in predictors.of(1)] == [False, False]
        predictors.go.set()
        assert answer.result(timeout=WAIT).shape == (3,)  # the request queued before the eviction is answered
    assert first.threads.join(WAIT) and server.retired.waiting == 0
    assert [session.destroyed for session in predictors.of(1)] == [True, True]
    assert predictors.closed_during_runs == []
    assert all(session.closed_on == session.made_on for session in predictors.of(1))
    assert predictors.live() == predictors.of(2) and len(predictors.live()) == 2
    assert server.close(WAIT) and predictors.live() == []


def test_a_version_loaded_again_after_its_eviction_serves_and_nothing_leaks(models, predictors):
    server = server_on(models, "gpu:0")
    first = server.get(1)
    second = server.get(2)
    again = server.get(1)
    assert again is not first and again.probabilities(IMAGE).shape == (3,)
    assert first.threads.join(WAIT) and second.threads.join(WAIT)
    assert len(predictors.made) == 6 and predictors.live() == predictors.of(1)[2:]
    assert predictors.closed_during_runs == []
    assert server.close(WAIT) and predictors.live() == []


class Closing:
    """A retired session that writes down when it is closed."""

    def __init__(self, order: list[str], name: str = "closed") -> None:
        self.order, self.name = order, name

    def close(self) -> None:
        self.order.append(self.name)


def held_batch(retired: RetiredSessions, order: list[str], name: str) -> tuple[threading.Thread, threading.Event]:
    """A batch running until the returned event is set; it writes `name` down as it ends, still counted in
    flight, so its end comes before any session a quiet moment then closes."""
    running, go = threading.Event(), threading.Event()

    def batch() -> None:
        with retired.running():
            running.set()
            assert go.wait(WAIT)
            order.append(name)

    thread = in_thread(batch)
    assert running.wait(WAIT)
    return thread, go


def test_retired_sessions_close_oldest_first_at_the_next_quiet_moment():
    retired, order = RetiredSessions(limit=5), []
    busy, go = held_batch(retired, order, "batch ended")
    owners = []
    for count, name in enumerate(("older", "newer"), start=1):
        owners.append(in_thread(lambda name=name: retired.release(Closing(order, name))))
        wait_until(lambda count=count: retired.waiting == count, f"{name} to retire")
    with retired.running():  # under the limit, new batches still start while sessions wait
        order.append("another batch")
    go.set()
    for thread in (busy, *owners):
        thread.join(WAIT)
    assert order == ["another batch", "batch ended", "older", "newer"] and retired.waiting == 0


def test_the_limit_holds_new_batches_back_until_the_running_ones_end_and_the_retired_close():
    retired, order = RetiredSessions(limit=1), []
    busy, go = held_batch(retired, order, "running batch ended")
    owner = in_thread(lambda: retired.release(Closing(order)))
    wait_until(lambda: retired.waiting == 1, "the session to retire")

    def next_batch() -> None:
        with retired.running():
            order.append("next batch")

    held = in_thread(next_batch)
    go.set()
    for thread in (busy, owner, held):
        thread.join(WAIT)
    assert order == ["running batch ended", "closed", "next batch"]


def test_cpu_serving_ends_an_evicted_versions_sessions_at_once_on_their_threads(models, predictors):
    server = server_on(models, "cpu")
    assert server.retired is None
    first = server.get(1)
    predictors.held.add(1)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(first.probabilities, IMAGE)
        assert predictors.inside.acquire(timeout=WAIT)
        server.get(2)
        wait_until(lambda: sum(s.destroyed for s in predictors.of(1)) == 1, "the idle session to end")
        predictors.go.set()
        assert answer.result(timeout=WAIT).shape == (3,)
    assert first.threads.join(WAIT)
    assert all(session.destroyed and session.closed_on == session.made_on for session in predictors.of(1))
    assert server.close(WAIT) and predictors.live() == []


def test_a_session_that_fails_its_warm_up_on_a_gpu_is_closed_on_its_thread_and_the_version_refused(
        models, predictors):
    predictors.failing.add(1)
    server = server_on(models, "gpu:0")
    with pytest.raises(BundleRejected, match="could not be loaded by its runtime"):
        server.get(1)
    made = predictors.of(1)
    wait_until(lambda: all(session.destroyed for session in made), "the failed sessions to end")
    assert made and all(session.closed_on == session.made_on for session in made)
    assert server.retired.waiting == 0 and server.get(2).probabilities(IMAGE).shape == (3,)
    assert server.close(WAIT) and predictors.live() == []


def test_the_sessions_a_gpu_load_measures_with_end_only_at_a_quiet_moment(models, predictors, monkeypatch):
    def measure(files, input_size, device, cpu_threads, repeats=20, sessions=None):
        for runtime in ("paddle", "onnx"):
            sessions[runtime] = predictors.open(files, runtime, device, cpu_threads)
        return {"runtime": "paddle", "ms": {"paddle": 1.0, "onnx": 2.0}, "cpu_threads": cpu_threads, "where": {}}

    monkeypatch.setattr(serving, "measure", measure)
    monkeypatch.setattr(serving, "runtime_key", lambda device, threads: f"gpu-test-{threads}t")
    server = ModelServer(models, ServingOptions(runtime="auto", threads=1, max_versions=2), device="gpu:0")
    first = server.get(1)
    predictors.held.add(1)
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(first.probabilities, IMAGE)
        assert predictors.inside.acquire(timeout=WAIT)  # version 1 runs on the GPU
        loading = pool.submit(server.get, 2)  # its measurement's two sessions wait to end
        wait_until(lambda: server.retired.waiting == 1, "the measurement's first session to wait")
        assert not loading.done() and not any(session.destroyed for session in predictors.of(2))
        predictors.go.set()
        assert answer.result(timeout=WAIT).shape == (3,)
        second = loading.result(timeout=WAIT)
    assert second.runtime == "paddle" and second.probabilities(IMAGE).shape == (3,)
    measured = predictors.of(2)[:2]  # made by the measurement, before the inference thread's own
    assert all(session.destroyed and session.closed_on == session.made_on for session in measured)
    assert predictors.closed_during_runs == []
    assert server.close(WAIT) and predictors.live() == []


def test_a_closed_runtime_session_refuses_to_run(trained):
    session = open_session(read_bundle(trained[1]).files, "onnx")
    batch = np.zeros((1, 3, 32, 32), dtype=np.float32)
    assert session(batch).shape[0] == 1
    session.close()
    with pytest.raises(RuntimeError, match="this session was closed"):
        session(batch)
