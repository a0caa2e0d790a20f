"""The per-process model server: loaded versions, the runtime each one uses, and inference threads.

Serving reads only the bundle. Each loaded version has a few inference threads; every thread opens its
own Paddle Inference predictor or ONNX Runtime session and is the only thread that ever runs it (Paddle
keeps per-thread state, so predictors handed between request threads failed now and then). Request
threads put their image on the version's queue and wait; a free inference thread takes every request
that is waiting (up to `max_batch`) and runs them as one batch. A request may ask for an explanation: the
batch then also fetches the model's feature map, and the explain head runs for the requests that asked only.

Web processes serve on the CPU unless SERVING_DEVICE=gpu (the training GPU is the workers'); a version's note
says when it serves elsewhere than asked (no GPU, ONNX Runtime fallen back to the CPU, TensorRT refused).

On a GPU a session also ends on its own thread, but never while another runs: Paddle's GPU predictors
crash when one is destroyed while others are made or run on the same card (reported with threads that load
and unload models on one GPU, not when each thread has its own), and an evicted version's threads would
otherwise end their predictors in the middle of the other versions' batches. So an evicted version stops
taking requests at once, and each of its threads keeps its predictor until `RetiredSessions` finds a quiet
moment: no batch, creation or warm-up running in the process. New batches wait while the retired
predictors end, oldest first. Every batch counts itself in and out, one lock each way; if the process never
goes quiet, once RETIRED_VERSIONS versions' worth of predictors wait, new batches are held back until those
running end, so the release comes at the next boundary between batches of all threads. The server's
`close` (also at the process's exit) ends the rest the same way. On the CPU a session ends as soon as its
thread stops, as before: the crash is a GPU one, and holding batches back would cost CPU serving for nothing.
"""
from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import os
import queue
import threading
import time
from collections import OrderedDict, deque
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from engine.bundle import Bundle, BundleRejected, read_bundle, runtime_key
from engine.device import device_model, is_gpu, serving_device
from engine.explain import unavailable
from engine.messages import N_, Message
from engine.runtimes import ModelFiles, measure, open_session
from engine.tensorrt import converted, engine_key, tensorrt_missing
from webapp.config import ServingOptions
from webapp.predict.explaining import explanation
from webapp.release import services as release
from webapp.release.routing import AbstainRule, Catalog, takes_candidate
from webapp.storage import DataDir

log = logging.getLogger(__name__)


RETIRED_VERSIONS = 2
"""How many versions' worth of retired GPU predictors (times SERVING_THREADS) may wait for a quiet moment. Each
keeps its weights and workspace on the GPU beside the loaded versions'; past two versions' worth, holding new
batches back for the length of the batches running costs less than running out of GPU memory."""


class VersionUnloaded(Exception):
    """The version was unloaded between looking it up and running it; look it up again."""


class RetiredSessions:
    """When the sessions of unloaded versions end, serving on a GPU: each on the thread that made it, only
    while no other session runs (see the module's text), in the order they retired.

    Every batch, and every session's creation and warm-up, runs inside `running()`, which counts it in
    flight. A thread whose version was unloaded calls `release(session)` after its last batch: it waits for
    the count to reach zero and its turn, then closes the session while new batches wait. When `limit`
    sessions wait, new batches wait too, so the count reaches zero once the batches running end."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._changed = threading.Condition()
        self._in_flight = 0
        self._waiting: deque[object] = deque()  # one token per retired session, oldest first
        self._releasing = False

    @property
    def waiting(self) -> int:
        """How many retired sessions wait to be closed."""
        with self._changed:
            return len(self._waiting)

    @contextmanager
    def running(self):
        """Count a batch (or a session's creation) in flight; it starts once no session is being closed and
        fewer than `limit` wait."""
        with self._changed:
            self._changed.wait_for(lambda: not self._releasing and len(self._waiting) < self.limit)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._changed.notify_all()

    def release(self, session) -> None:
        """Close `session` on the calling thread (its owner, past its last batch) at the next quiet moment,
        after the sessions that retired before it; new batches wait until every waiting session is closed."""
        token = object()
        with self._changed:
            self._waiting.append(token)
            self._changed.wait_for(lambda: self._in_flight == 0 and self._waiting[0] is token)
            self._releasing = True
        try:
            session.close()
        finally:
            with self._changed:
                self._waiting.popleft()
                self._releasing = bool(self._waiting)  # the next one closes in the same quiet moment
                self._changed.notify_all()


def running_on(retired: RetiredSessions | None) -> AbstractContextManager:
    """Where a session is made or runs: counted in flight when serving on a GPU (`retired`), as is."""
    return retired.running() if retired is not None else nullcontext()


def end_session(session, retired: RetiredSessions | None) -> None:
    """End a session on its own thread: at once on the CPU, at a quiet moment on a GPU (`retired`)."""
    if retired is None:
        session.close()
    else:
        retired.release(session)


class _Request:
    __slots__ = ("batch", "explain", "done", "result", "maps", "error")

    def __init__(self, batch: np.ndarray, explain: bool = False) -> None:
        self.batch, self.explain, self.done, self.result, self.error = batch, explain, threading.Event(), None, None
        self.maps: np.ndarray | None = None


def _run_batch(session, requests: list[_Request]) -> None:
    """One batch through `session`: probabilities for every request, class maps for those that asked."""
    batch = np.concatenate([r.batch for r in requests])
    if not any(r.explain for r in requests):
        output, features = session(batch), None
    else:
        output, features = session.with_features(batch)
    offset = 0
    for request in requests:
        request.result = output[offset:offset + len(request.batch)]
        offset += len(request.batch)
    if features is not None:
        offsets = np.cumsum([0, *(len(r.batch) for r in requests)])
        asked = [i for i, r in enumerate(requests) if r.explain]
        maps = session.class_maps(np.concatenate([features[offsets[i]:offsets[i + 1]] for i in asked]))
        start = 0
        for i in asked:
            requests[i].maps = maps[start:start + len(requests[i].batch)]
            start += len(requests[i].batch)


class InferenceThreads:
    """Threads that each own one session; `run` is safe from any number of request threads."""

    def __init__(self, open_one: Callable[[], Callable[[np.ndarray], np.ndarray]], options: ServingOptions,
                 warmup: np.ndarray, retired: RetiredSessions | None = None) -> None:
        self.options = options
        self._retired = retired  # None: a session closes as soon as its thread stops (the CPU)
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.fallback: Message | None = None  # a session's word that it runs elsewhere than asked (one suffices)
        started: queue.Queue = queue.Queue()
        for index in range(options.threads):
            thread = threading.Thread(target=self._serve, args=(open_one, warmup, started), daemon=True,
                                      name=f"inference-{index}")
            thread.start()
            self._threads.append(thread)
        errors = [error for error in (started.get() for _ in self._threads) if error is not None]
        if errors:
            self.close()
            raise errors[0]

    def _serve(self, open_one, warmup: np.ndarray, started: queue.Queue) -> None:
        session = None
        try:
            with running_on(self._retired):
                session = open_one()  # created here: this thread is the only one that ever runs it
                self.fallback = self.fallback or getattr(session, "fallback", None)
                session(warmup)
        except Exception as exc:
            # its frames hold the predictor, which ends here; the loader hears first, as on a GPU the end waits
            # for a quiet moment
            started.put(exc.with_traceback(None))
            if session is not None:
                end_session(session, self._retired)
            return
        started.put(None)
        try:
            while (first := self._queue.get()) is not None:
                requests = [first, *self._more(first)]
                with running_on(self._retired):
                    self._answer(session, requests)
        finally:
            end_session(session, self._retired)

    @staticmethod
    def _answer(session, requests: list[_Request]) -> None:
        try:
            _run_batch(session, requests)
        except Exception as exc:
            log.exception("inference failed")
            for request in requests:
                request.error = exc.with_traceback(None)  # its frames hold the predictor, which ends on this thread
        for request in requests:
            request.done.set()

    def _more(self, first: _Request) -> list[_Request]:
        """Requests waiting behind `first`, up to the batch limit (briefly waiting when so configured)."""
        taken, size = [], len(first.batch)
        deadline = time.monotonic() + self.options.batch_wait_ms / 1000
        while size < self.options.max_batch:
            try:
                remaining = deadline - time.monotonic()
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # closing: let the other threads see it too
                self._queue.put(None)
                break
            taken.append(item)
            size += len(item.batch)
        return taken

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._wait(_Request(batch)).result

    def run_explained(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and the class maps (N x K x h x w) of `batch`."""
        request = self._wait(_Request(batch, explain=True))
        return request.result, request.maps

    def _wait(self, request: _Request) -> _Request:
        with self._lock:  # every request queued before close() is served before the threads stop
            if self._closed:
                raise VersionUnloaded()
            self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise RuntimeError(f"inference failed: {request.error}") from request.error
        return request

    def close(self) -> None:
        """Take no more requests; the threads stop once those already queued are answered."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (up to `timeout` seconds in all) for the threads to stop after `close`; whether they did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)


@dataclass
class LoadedVersion:
    version: int
    bundle: Bundle
    runtime: str
    threads: InferenceThreads
    note: Message | None = None  # why the runtime differs from the one asked for (English, translatable)
    digest: str = ""  # sha256 of the meta.json it was loaded from (which holds every file's sha256)
    stamp: tuple = ()  # that meta.json's identity on disk when its digest was last read

    @property
    def decode_size(self) -> int:
        return self.bundle.preprocess.decode_size

    @property
    def classes(self) -> list[str]:
        return self.bundle.classes

    def probabilities(self, image: Image.Image) -> np.ndarray:
        rule = self.bundle.preprocess
        return self.threads.run(rule.batch(rule.square(image)[None]))[0]

    def scores(self, image: Image.Image, explain: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """The image's probabilities and, when `explain`, its class maps (K x h x w; else None)."""
        if not explain:
            return self.probabilities(image), None
        rule = self.bundle.preprocess
        probabilities, maps = self.threads.run_explained(rule.batch(rule.square(image)[None]))
        return probabilities[0], maps[0]

    def classify(self, image: Image.Image, top_k: int, abstain: AbstainRule | None = None, explain: bool = False,
                 heat_map: bool = False) -> dict:
        """The top-k answer; when `abstain` says so (its top-1 confidence under the version's threshold or
        its class's) the answer names no class (the top-k stay) and `abstained_by` says which threshold.
        With `explain`, the answer also holds the top class's `explanation` (with a PNG when `heat_map`)."""
        probabilities, maps = self.scores(image, explain)
        result = {**answer(probabilities, self.classes, top_k, abstain), "model_version": self.version,
                  "runtime": self.runtime}
        if maps is not None:
            result["explanation"] = explanation(self.bundle, image, probabilities, maps, heat_map)
        return result

    @property
    def explanation_unavailable(self) -> Message | None:
        """Why this version cannot explain on its runtime (None when it can)."""
        return unavailable(self.bundle.meta, self.runtime)


def answer(probabilities: np.ndarray, classes: list[str], top_k: int, abstain: AbstainRule | None = None) -> dict:
    """One image's answer from its probabilities: the top-k classes, and the top class unless `abstain` says
    otherwise (its confidence under the version's threshold or its class's: the answer then names no class, the
    top-k stay, and `abstained_by` says which threshold). The one rule for a single prediction and a batch
    run's rows."""
    order = np.argsort(-probabilities)[:top_k]
    top = [{"class": classes[i], "confidence": round(float(probabilities[i]), 6)} for i in order]
    abstained_by = abstain.abstains(top[0]["class"], float(probabilities[order[0]])) if abstain else None
    abstained = abstained_by is not None
    return {"class": None if abstained else top[0]["class"], "confidence": top[0]["confidence"],
            "abstained": abstained, "abstained_by": abstained_by, "top_k": top}


def choose_runtime(bundle: Bundle, options: ServingOptions, device: str,
                   opened: dict | None = None) -> tuple[str, Message | None]:
    """The runtime for this bundle and a note (an English Message) when it is not the one configured. The
    sessions a measurement opens are left in `opened` for the caller to end (dropped here without it)."""
    has_onnx = bundle.files.onnx is not None
    if options.runtime == "paddle":
        return "paddle", None
    if options.runtime == "onnx_int8" and bundle.files.int8 is not None:
        return "onnx_int8", None
    if options.runtime == "onnx_int8" and has_onnx:
        return "onnx", Message(N_("SERVING_RUNTIME=onnx_int8, but this version has no int8 variant; serving the "
                                  "float ONNX model."))
    if options.runtime == "onnx":
        if has_onnx:
            return "onnx", None
        problem = {"problem": bundle.onnx_error or Message(N_("no ONNX model"))}
        return "paddle", Message(N_("SERVING_RUNTIME=onnx, but this version has no ONNX model (%(problem)s); serving "
                                    "with Paddle Inference."), problem)
    if options.runtime == "onnx_int8":
        problem = {"problem": bundle.onnx_error or Message(N_("no ONNX model"))}
        return "paddle", Message(N_("SERVING_RUNTIME=onnx_int8, but this version has no int8 variant (%(problem)s); "
                                    "serving with Paddle Inference."), problem)
    if not has_onnx:
        return "paddle", None
    key = runtime_key(device, options.cpu_threads)
    measured, note = bundle.measurement(key), None
    if measured is None:
        note = measured_elsewhere(bundle, key)
        log.info("measuring both runtimes of %s for %s", bundle.folder.name, key)
        measured = bundle.record_measurement(key, measure(bundle.files, bundle.preprocess.input_size, device,
                                                           options.cpu_threads, sessions=opened))
    return measured["runtime"], note


def measured_elsewhere(bundle: Bundle, key: str) -> Message | None:
    """A note when the export measured the runtimes only on another kind or model of device than `key`'s
    (a GPU worker's timings say nothing of CPU serving, nor the reverse), or None: this server measures
    them itself then. Another thread count on the same device is no news."""
    exported = list(bundle.meta.get("runtimes") or {})
    device_part = key.rpartition("-")[0]
    if not exported or any(other.rpartition("-")[0] == device_part for other in exported):
        return None
    return Message(N_("The runtimes were measured at export on another device (%(measured)s), not this server's "
                      "(%(here)s): measured again here."), {"measured": ", ".join(exported), "here": key})


def tensorrt_refusal(options: ServingOptions, device: str) -> Message | None:
    """Why PADDLE_TRT=fp16 cannot apply to this server, or None when it can (or is off): TensorRT needs GPU
    serving and a Paddle build with TensorRT."""
    if options.tensorrt == "off":
        return None
    if not is_gpu(device):
        return Message(N_("PADDLE_TRT=fp16 applies to GPU serving only (SERVING_DEVICE=gpu); serving without "
                          "TensorRT."))
    missing = tensorrt_missing()
    if missing is not None:
        return Message(N_("PADDLE_TRT=fp16, but %(reason)s; serving without TensorRT."), {"reason": missing})
    return None


def tensorrt_files(bundle: Bundle, options: ServingOptions, device: str, cache: Path,
                   digest: str) -> tuple[ModelFiles, Message | None]:
    """The bundle's files with its program converted for TensorRT (made once per digest and settings under
    `cache`, shared by threads and processes), or its own files and why not when the conversion fails."""
    size = bundle.preprocess.input_size
    key = engine_key(digest, size, options.max_batch, options.tensorrt, device_model(device))
    try:
        program = converted(bundle.files, cache, key, size, options.max_batch)
    except Exception as exc:
        log.exception("TensorRT conversion of %s failed", bundle.folder.name)
        return bundle.files, Message(N_("The TensorRT conversion failed (%(error)s); serving without TensorRT."),
                                     {"error": type(exc).__name__})
    return dataclasses.replace(bundle.files, model=program.model, params=program.params, onnx=None), None


def joined(notes: list[Message | None]) -> Message | None:
    """Several notes on one version as one (None when there are none)."""
    present = [note for note in notes if note is not None]
    if not present:
        return None
    note = present[0]
    for then in present[1:]:
        note = Message(N_("%(first)s %(then)s"), {"first": note, "then": then})
    return note


def runtime_and_files(bundle: Bundle, options: ServingOptions, device: str, tensorrt_cache: Path, digest: str,
                      opened: dict) -> tuple[str, ModelFiles, Message | None, Message | None]:
    """The runtime a version serves with, the files it runs (the TensorRT program when PADDLE_TRT=fp16 can
    apply), and the notes on each choice. The sessions a runtime measurement opens are left in `opened`."""
    trt_note = tensorrt_refusal(options, device)
    applies = options.tensorrt != "off" and trt_note is None
    if applies and options.runtime in ("auto", "paddle"):
        files, trt_note = tensorrt_files(bundle, options, device, tensorrt_cache, digest)
        return "paddle", files, None, trt_note
    runtime, note = choose_runtime(bundle, options, device, opened)
    if applies:
        trt_note = Message(N_("PADDLE_TRT=fp16 applies to Paddle Inference; SERVING_RUNTIME=%(runtime)s serves "
                              "without TensorRT."), {"runtime": options.runtime})
    return runtime, bundle.files, note, trt_note


def load_version(folder: Path, version: int, options: ServingOptions, device: str = "cpu",
                 tensorrt_cache: Path | None = None, device_note: Message | None = None,
                 retired: RetiredSessions | None = None) -> LoadedVersion:
    """Check every file's sha256 against meta.json, choose the runtime (Paddle Inference with TensorRT when it
    is asked for and can apply), start the inference threads. `device_note` says why `device` is not the
    one asked for; it joins the version's note with the others. `retired` (serving on a GPU) decides when
    the threads' sessions end after the version is unloaded."""
    stamp, digest = _stamp(folder), _digest(folder)  # before reading: a later replacement changes the stamp
    try:
        bundle = read_bundle(folder)
    except BundleRejected as exc:
        raise BundleRejected("Model version %(version)s cannot serve: %(reason)s",
                             {"version": version, "reason": exc}) from None
    try:
        opened: dict = {}  # a measurement's sessions, ended below (on a GPU: at a quiet moment, as retired ones)
        try:
            with running_on(retired):
                runtime, files, note, trt_note = runtime_and_files(bundle, options, device,
                                                                   tensorrt_cache or folder.parent, digest, opened)
        finally:
            for session in opened.values():
                end_session(session, retired)
        side = bundle.preprocess.input_size
        threads = InferenceThreads(lambda: open_session(files, runtime, device, options.cpu_threads),
                                   options, np.zeros((1, 3, side, side), dtype=np.float32), retired)
    except Exception as exc:  # the runtime's own text names the bundle's files: it goes to the log only
        log.error("model version %d could not be loaded: %s", version, exc)
        raise BundleRejected("Model version %(version)s could not be loaded by its runtime (%(kind)s); the "
                             "details are in the server's log.", {"version": version, "kind": type(exc).__name__}) \
            from exc
    note = joined([device_note, note, trt_note, threads.fallback])
    if note:
        log.warning("model version %d: %s", version, note)
    return LoadedVersion(version, bundle, runtime, threads, note, digest, stamp)


def _stamp(folder: Path) -> tuple:
    """The identity of the bundle's meta.json on disk: one stat."""
    try:
        info = os.stat(folder / "meta.json")
    except OSError:
        return ()
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def _digest(folder: Path) -> str:
    """The bundle's identity: sha256 of its meta.json, which lists the sha256 of every other file."""
    try:
        return hashlib.sha256((folder / "meta.json").read_bytes()).hexdigest()
    except OSError:
        return ""


def _still_on_disk(loaded: LoadedVersion, folder: Path) -> bool:
    """Whether the bundle under the version's number is still the one `loaded` came from: one stat while
    meta.json is untouched, its digest read again (never the weights) when it was."""
    stamp = _stamp(folder)
    if stamp == loaded.stamp:
        return True
    if _digest(folder) != loaded.digest:
        return False
    loaded.stamp = stamp
    return True


def _signature(folder: Path) -> tuple:
    """Changes when any file of the bundle folder is replaced, so a refused version is checked again."""
    try:
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()))
    except OSError:
        return ()


class ModelServer:
    """Loaded versions of this process, the cached catalog, and the route of each unpinned request.

    Versions load outside the server's lock (a request for a loaded version never waits for another
    one to load). A loaded version stands for the bundle it was loaded from: when the bundle under its
    number changes (its meta.json digest), it is unloaded once the catalog is read again (at once when
    the models folder changes here, within a few seconds on another host). Requests route by the
    release as the database holds it: a request sent to a version this process has not loaded yet
    waits for it to load, so a client's arm never depends on which process answers or how warm it is.
    Only a version this process refuses to load gives way: its requests go to production, or, for
    production, to the production version this process answered with before."""

    def __init__(self, models_dir: Path, options: ServingOptions | None = None, device: str | None = None) -> None:
        self.models_dir, self.options = models_dir, options or ServingOptions()
        self._device = device
        self.device_note: Message | None = None  # why it serves elsewhere than SERVING_DEVICE says
        self._loaded: OrderedDict[int, LoadedVersion] = OrderedDict()
        self._loading: dict[int, threading.Event] = {}
        self._refused: dict[int, tuple[tuple, str, dict]] = {}  # version: (files' signature, template, params)
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._catalog_key: tuple | None = None
        self._serving_production: int | None = None  # the version this process last answered with
        self._protected: frozenset[int] = frozenset()
        self._retired: RetiredSessions | None = None

    @property
    def device(self) -> str:
        """The device this process serves on: the CPU unless SERVING_DEVICE=gpu (and a GPU is there)."""
        if self._device is None:
            self._device, self.device_note = serving_device(self.options.device, self.options.gpu)
            if self.device_note is not None:
                log.warning("%s", self.device_note)
        return self._device

    @property
    def retired(self) -> RetiredSessions | None:
        """When the sessions of unloaded versions end, serving on a GPU (None on the CPU: at once). Made with
        the first GPU version, and the server then closes at the process's exit, while the interpreter can
        still end each session on its own thread."""
        if not is_gpu(self.device):
            return None
        with self._lock:
            if self._retired is None:
                self._retired = RetiredSessions(RETIRED_VERSIONS * self.options.threads)
                atexit.register(self.close)
            return self._retired

    def close(self, timeout: float = 10.0) -> bool:
        """Unload every version and wait (up to `timeout` seconds) until their threads have ended their
        sessions: on a GPU that comes after the batches running and the sessions retired before. Whether
        they all ended."""
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
        for item in loaded:
            item.threads.close()
        deadline = time.monotonic() + timeout
        return all([item.threads.join(max(0.0, deadline - time.monotonic())) for item in loaded])

    def catalog(self, read: Callable[[], Catalog], revision: Callable[[], int]) -> Catalog:
        """The catalog from `read` (the database). `revision` (the release's revision, one primary-key
        read) is asked on every call, so a release change that has answered in any process is followed
        by this one's next request; the rest is read again when the models folder changes (a version
        added or removed, a threshold changed) or after a few seconds."""
        try:
            stamp = os.stat(self.models_dir).st_mtime_ns
        except OSError:
            stamp = None
        key = (stamp, int(time.monotonic() // self.options.versions_ttl_seconds))
        catalog = self._catalog
        if catalog is None or key != self._catalog_key or catalog.revision != revision():
            catalog = self._catalog = read()
            self._catalog_key = key
            self._protected = frozenset(v for v in (catalog.production, catalog.candidate, self._serving_production)
                                        if v is not None)
            self._unload_replaced()
        return catalog

    def _unload_replaced(self) -> None:
        """Unload every version whose bundle changed under its number since it was loaded (a version
        deleted and made again): checked each time the catalog is read again, so never per request, and
        by the meta.json digest, so never by hashing weights."""
        with self._lock:
            loaded = list(self._loaded.values())
        for item in loaded:
            if _still_on_disk(item, self.models_dir / str(item.version)):
                continue
            with self._lock:
                if self._loaded.get(item.version) is not item:
                    continue
                self._loaded.pop(item.version)
            item.threads.close()
            log.info("model version %d changed on disk: it is loaded again when next asked for", item.version)

    def loaded(self, version: int) -> LoadedVersion | None:
        return self._loaded.get(version)

    def runtime_key(self) -> str:
        """Which measurements apply to this process (device and CPU threads per session)."""
        return runtime_key(self.device, self.options.cpu_threads)

    def invalidate(self) -> None:
        self._catalog = None

    def get(self, version: int) -> LoadedVersion:
        """The loaded `version`, loading it on first use (raises BundleRejected)."""
        folder = self.models_dir / str(version)
        while True:
            with self._lock:
                loaded = self._loaded.get(version)
                if loaded is not None:
                    self._loaded.move_to_end(version)
                    return loaded
                refused = self._refused.get(version)
                if refused and refused[0] == _signature(folder):
                    raise BundleRejected(refused[1], refused[2])
                pending = self._loading.get(version)
                if pending is None:
                    self._loading[version] = threading.Event()
                    break
            pending.wait()  # another thread is loading it: take its result
        try:
            loaded = load_version(folder, version, self.options, self.device,
                                  DataDir(self.models_dir.parent).tensorrt_cache, self.device_note, self.retired)
        except BaseException as exc:
            with self._lock:
                if isinstance(exc, BundleRejected):
                    log.error("%s", exc.message)
                    self._refused[version] = (_signature(folder), exc.template, exc.params)
                self._loading.pop(version).set()
            raise
        evicted = []
        with self._lock:
            self._refused.pop(version, None)
            self._loaded[version] = loaded
            for old in list(self._loaded):
                if len(self._loaded) <= self.options.max_versions:
                    break
                if old != version and old not in self._protected:
                    evicted.append(self._loaded.pop(old))
            self._loading.pop(version).set()
        for gone in evicted:
            gone.threads.close()
            log.info("model version %d unloaded (least recently used)", gone.version)
        log.info("model version %d loaded on %s with %s", version, self.device, loaded.runtime)
        return loaded

    def route(self, catalog: Catalog, client_key: str | None) -> tuple[LoadedVersion, str]:
        """The version and arm ("production" or "candidate") that answer an unpinned request: the arm
        depends only on the client's key and the release, loading the version here first if need be."""
        if catalog.production is None:
            raise BundleRejected("No model version serves yet.")
        if catalog.candidate is not None and catalog.candidate_share > 0 and \
                takes_candidate(client_key, catalog.candidate, catalog.candidate_share):
            try:
                return self.get(catalog.candidate), "candidate"
            except BundleRejected:  # recorded and logged by get(): its share goes to production here
                pass
        try:
            production = self.get(catalog.production)
        except BundleRejected:
            previous = self._loaded.get(self._serving_production) \
                if self._serving_production in catalog.versions else None
            if previous is None:
                raise
            return previous, "production"  # refused here: the version this process served keeps serving
        self._serving_production = catalog.production
        return production, "production"

    def forget(self, version: int) -> None:
        with self._lock:
            loaded = self._loaded.pop(version, None)
            self._refused.pop(version, None)
        if loaded is not None:
            loaded.threads.close()
        self.invalidate()


def preload_released(app) -> threading.Thread:
    """Load the production and candidate versions of `app` in the background (a web process at start)."""

    def load() -> None:
        try:
            with app.app_context():
                server = app.extensions["model_server"]
                released = server.catalog(release.catalog, release.revision)
            for version in (released.production, released.candidate):
                if version is not None:
                    server.get(version)
        except Exception as exc:  # no database yet, or a refused bundle: the first request says why
            log.info("nothing preloaded: %s", exc)

    thread = threading.Thread(target=load, daemon=True, name="preload")
    thread.start()
    return thread
