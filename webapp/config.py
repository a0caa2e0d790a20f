"""Configuration read from the environment, with defaults for a laptop install."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from engine.quality import Thresholds
from engine.runtimes import RUNTIMES
from webapp.storage import DataDir


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _list_env(name: str) -> list[str] | None:
    """A comma-separated setting as a list; None when unset."""
    value = os.environ.get(name)
    return [item.strip() for item in value.split(",") if item.strip()] if value else None


def data_dir_from_env(override: str | None = None) -> DataDir:
    """`override`, else DATA_DIR, else ./instance, as an absolute path."""
    return DataDir(Path(override or os.environ.get("DATA_DIR") or "instance").resolve())


def quality_thresholds(environ=os.environ) -> dict:
    """The quality report's thresholds: each of engine.quality.Thresholds' defaults, or the setting
    QUALITY_<NAME> (e.g. QUALITY_NEAR_DUPLICATE_DISTANCE) when it is set; a setting that is no number stops
    the start with a message."""
    values = {}
    for item in dataclasses.fields(Thresholds):
        setting = environ.get(f"QUALITY_{item.name.upper()}")
        if setting:
            kind = type(getattr(Thresholds(), item.name))
            try:
                values[item.name] = kind(setting)
            except ValueError:
                raise ValueError(f"QUALITY_{item.name.upper()} must be a number, not {setting!r}") from None
    return dataclasses.asdict(Thresholds(**values))


@dataclass(frozen=True)
class ServingOptions:
    """How versions are served in this process (from the app's configuration)."""

    runtime: str = "auto"  # auto | onnx | paddle | onnx_int8
    threads: int = 2  # inference threads per loaded version
    cpu_threads: int = 1  # math threads per predictor or session
    max_batch: int = 1
    batch_wait_ms: float = 0.0  # extra wait for a batch to fill; 0 takes only what is already waiting
    max_versions: int = 3  # loaded versions kept; the least recently used is unloaded
    versions_ttl_seconds: float = 5.0
    tensorrt: str = "off"  # off | fp16, on a GPU with Paddle Inference
    device: str = "cpu"  # cpu | gpu: web processes serve on the CPU unless told (the GPU is the workers')
    gpu: int = 0  # the GPU's index when `device` is gpu


def serving_options(config) -> ServingOptions:
    """The model server's options from the app's configuration; bad values stop the start with a message."""
    runtime, tensorrt = config["SERVING_RUNTIME"], config["PADDLE_TRT"]
    if runtime not in ("auto", *RUNTIMES):
        raise ValueError(f"SERVING_RUNTIME must be one of auto, {', '.join(RUNTIMES)}, not {runtime!r}")
    if tensorrt not in ("off", "fp16"):
        raise ValueError(f"PADDLE_TRT must be off or fp16, not {tensorrt!r}")
    if config["SERVING_DEVICE"] not in ("cpu", "gpu"):
        raise ValueError(f"SERVING_DEVICE must be cpu or gpu, not {config['SERVING_DEVICE']!r}")
    threads = max(1, config["SERVING_THREADS"])
    cpu_threads = config["SERVING_CPU_THREADS"] or max(1, (os.cpu_count() or 1) // threads)
    return ServingOptions(runtime=runtime, threads=threads, cpu_threads=cpu_threads,
                          max_batch=max(1, config["SERVING_MAX_BATCH"]),
                          batch_wait_ms=max(0.0, config["SERVING_BATCH_WAIT_MS"]),
                          max_versions=max(1, config["SERVING_MAX_VERSIONS"]), tensorrt=tensorrt,
                          device=config["SERVING_DEVICE"], gpu=max(0, config["SERVING_GPU"]))


def default_config(data_dir: str | None = None) -> dict:
    """Build the configuration mapping from environment variables (`data_dir` overrides DATA_DIR)."""
    folders = data_dir_from_env(data_dir)
    return {
        "DATA_DIR": str(folders.root),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or f"sqlite:///{folders.database}",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "VISUALDL_URL": os.environ.get("VISUALDL_URL", ""),
        # Signs session cookies: made once per install and kept in DATA_DIR/keys (0600) unless given.
        "SECRET_KEY": os.environ.get("SECRET_KEY") or folders.secret("session.key").hex(),
        "SESSION_COOKIE_NAME": "studio_session",
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(days=_int_env("SESSION_DAYS", 14)),
        # The cookie is sent only when the session changes: a request still in flight with an older cookie
        # (a poll during sign-in or sign-out) would otherwise put that older session back.
        "SESSION_REFRESH_EACH_REQUEST": False,
        # Who can reach the studio (webapp.accounts.settings resolves these once at start). HOST is the address
        # the server listens on: the launcher binds it, and a server that listens wider is refused while sign-in
        # is off.
        "HOST": os.environ.get("HOST") or "127.0.0.1",
        "AUTH": (os.environ.get("AUTH") or "auto").strip().lower(),
        "TRUSTED_HOSTS": _list_env("TRUSTED_HOSTS"),
        "TRUSTED_PROXIES": _int_env("TRUSTED_PROXIES", 0),
        "PREDICT_PUBLIC": os.environ.get("PREDICT_PUBLIC", "").strip().lower() in ("1", "on", "true", "yes"),
        "PREDICT_CORS_ORIGINS": _list_env("PREDICT_CORS_ORIGINS") or [],
        "PREDICT_PUBLIC_PER_MINUTE": _int_env("PREDICT_PUBLIC_PER_MINUTE", 120),
        # Failed sign-ins allowed per client address and per user name in SIGN_IN_WINDOW_SECONDS; these and the
        # public predictions are counted in Redis, for all web processes (webapp.accounts.limits).
        "SIGN_IN_ATTEMPTS": _int_env("SIGN_IN_ATTEMPTS", 10),
        "SIGN_IN_WINDOW_SECONDS": _int_env("SIGN_IN_WINDOW_SECONDS", 900),
        # Whole request body (an archive or a folder of files).
        "MAX_CONTENT_LENGTH": _int_env("MAX_UPLOAD_MB", 4096) * 1024 * 1024,
        # Werkzeug spools every uploaded file above this size to disk.
        "MAX_FORM_MEMORY_SIZE": 2 * 1024 * 1024,
        "MAX_FORM_PARTS": _int_env("MAX_UPLOAD_FILES", 50_000) + 100,
        # What the quality report counts as a near duplicate, blurry, dark, ... (engine.quality.Thresholds)
        "QUALITY_THRESHOLDS": quality_thresholds(),
        # A revision made in a request (a fix, feedback appended) gets its report in that request up to this many
        # images; a larger one gets it from a quality scan in the background (the pair search grows as n^2).
        "QUALITY_REPORT_IN_REQUEST_MAX_IMAGES": _int_env("QUALITY_REPORT_IN_REQUEST_MAX_IMAGES", 5000),
        "INGEST_LIMITS": {
            "max_entries": _int_env("MAX_UPLOAD_FILES", 50_000),
            "max_total_bytes": _int_env("MAX_DATASET_MB", 8192) * 1024 * 1024,
            "max_file_bytes": _int_env("MAX_IMAGE_MB", 50) * 1024 * 1024,
            "max_ratio": 200,
            "max_pixels": _int_env("MAX_IMAGE_MEGAPIXELS", 80) * 1_000_000,
            # Upload images are decoded in a checker process: in a bubblewrap sandbox (auto: when it can
            # start here; on: always, or uploads fail; off: never), and under these limits per file (memory
            # beyond the checker's own: an 80-megapixel PNG with transparency needs about 1 GB to decode and
            # thumbnail), and a wall-clock deadline for each file's answer (a decoder blocked or asleep uses
            # no CPU time).
            "sandbox": (os.environ.get("INGEST_SANDBOX") or "auto").strip().lower(),
            "check_memory_mb": _int_env("INGEST_SANDBOX_MEMORY_MB", 1536),
            "check_cpu_seconds": _int_env("INGEST_SANDBOX_CPU_SECONDS", 30),
            "check_wall_seconds": _int_env("INGEST_SANDBOX_WALL_SECONDS",
                                           3 * _int_env("INGEST_SANDBOX_CPU_SECONDS", 30)),
        },
        # Check uploads in the request instead of on the ingest queue (a one-process install without workers).
        "INGEST_IN_REQUEST": os.environ.get("INGEST_IN_REQUEST", "").strip().lower() in ("1", "on", "true"),
        # Decoded training images shared by all jobs: pruned when datasets are deleted, and to this size
        # (least recently used first) after each job.
        "IMAGE_CACHE_MAX_BYTES": _int_env("IMAGE_CACHE_GB", 20) * 1024**3,
        "HEALTH_CACHE_SECONDS": 5,
        "PREDICT_MAX_BYTES": _int_env("PREDICT_MAX_MB", 5) * 1024 * 1024,
        "PREDICT_MAX_PIXELS": _int_env("PREDICT_MAX_MEGAPIXELS", 40) * 1_000_000,
        "JSON_MAX_BYTES": _int_env("JSON_MAX_KB", 1024) * 1024,
        # Serving: inference threads per loaded version, each with its own predictor or session, and the
        # math threads each of them uses; the defaults fill the machine's cores once.
        "SERVING_RUNTIME": os.environ.get("SERVING_RUNTIME") or "auto",
        "SERVING_THREADS": _int_env("SERVING_THREADS", min(2, os.cpu_count() or 1)),
        "SERVING_CPU_THREADS": _int_env("SERVING_CPU_THREADS", 0),  # 0: cores / SERVING_THREADS
        # Micro-batching measured no gain on CPU (benchmarks/predict_latency.py); worth raising on a GPU.
        "SERVING_MAX_BATCH": _int_env("SERVING_MAX_BATCH", 1),
        "SERVING_BATCH_WAIT_MS": float(os.environ.get("SERVING_BATCH_WAIT_MS") or 0),
        "SERVING_MAX_VERSIONS": _int_env("SERVING_MAX_VERSIONS", 3),
        "PADDLE_TRT": os.environ.get("PADDLE_TRT") or "off",
        # Web processes serve on the CPU even on a CUDA build with a GPU (the training GPU is the workers'),
        # unless SERVING_DEVICE=gpu (on GPU SERVING_GPU).
        "SERVING_DEVICE": os.environ.get("SERVING_DEVICE") or "cpu",
        "SERVING_GPU": _int_env("SERVING_GPU", 0),
        # Live statistics: answers below this confidence count as low-confidence; totals are written
        # to the database this often (never on the request path).
        "STATS_LOW_CONFIDENCE": float(os.environ.get("STATS_LOW_CONFIDENCE") or 0.5),
        "STATS_FLUSH_SECONDS": float(os.environ.get("STATS_FLUSH_SECONDS") or 2),
        # Feedback: every web process holds its recent answers' images in memory this long (bounded in
        # bytes) so a person can still mark them; images with feedback are kept on disk up to a cap.
        "FEEDBACK_HOLD_SECONDS": float(os.environ.get("FEEDBACK_HOLD_SECONDS") or 900),
        "FEEDBACK_HOLD_BYTES": _int_env("FEEDBACK_HOLD_MB", 64) * 1024 * 1024,
        "FEEDBACK_LOOKUP_SECONDS": 1.5,  # how long feedback waits for the process that answered
        "FEEDBACK_MAX_BYTES": _int_env("FEEDBACK_MAX_MB", 1024) * 1024 * 1024,
        # Review queue: each web process reads its run-time settings (set by an admin on the Feedback page)
        # again after this many seconds, so sampling costs no database read per prediction.
        "REVIEW_SETTINGS_SECONDS": float(os.environ.get("REVIEW_SETTINGS_SECONDS") or 5),
        # Live job pages: concurrent event streams per signed-in session or token, and per web process in
        # all (each stream holds one of the process's threads); pages beyond either cap poll instead.
        "EVENT_STREAMS_PER_CALLER": max(10, _int_env("EVENT_STREAMS_PER_CALLER", 12)),
        "EVENT_STREAMS_TOTAL": _int_env("EVENT_STREAMS_TOTAL", 24),
        "JOB_HEARTBEAT_SECONDS": float(os.environ.get("JOB_HEARTBEAT_SECONDS") or 10),
        "JOB_STALE_SECONDS": float(os.environ.get("JOB_STALE_SECONDS") or 90),
        "JOB_MAX_ATTEMPTS": max(1, _int_env("JOB_MAX_ATTEMPTS", 3)),
        # The same deadlines for the other kinds of background work (webapp.lifecycle): an evaluation and an
        # upload check whose worker is silent this long wait again, up to their maximum of attempts.
        "EVALUATION_STALE_SECONDS": float(os.environ.get("EVALUATION_STALE_SECONDS") or 90),
        "EVALUATION_MAX_ATTEMPTS": max(1, _int_env("EVALUATION_MAX_ATTEMPTS", 3)),
        "INGEST_STALE_SECONDS": float(os.environ.get("INGEST_STALE_SECONDS") or 90),
        "INGEST_MAX_ATTEMPTS": max(1, _int_env("INGEST_MAX_ATTEMPTS", 3)),
        # Batch predictions (webapp.batch): images classified per batch (each batch's results are committed
        # together, so a lost worker repeats at most one), a lost run's deadlines, and how long results are kept.
        "BATCH_PREDICT_SIZE": max(1, _int_env("BATCH_PREDICT_SIZE", 32)),
        "BATCH_STALE_SECONDS": float(os.environ.get("BATCH_STALE_SECONDS") or 90),
        "BATCH_MAX_ATTEMPTS": max(1, _int_env("BATCH_MAX_ATTEMPTS", 3)),
        "BATCH_RESULTS_KEEP_HOURS": float(os.environ.get("BATCH_RESULTS_KEEP_HOURS") or 7 * 24),
        # Scheduled backups (webapp.backup.schedule): one every BACKUP_EVERY_HOURS (0: off), written by the batch
        # worker (maintenance queue) to BACKUP_DIR, the newest BACKUP_KEEP archives kept.
        "BACKUP_EVERY_HOURS": float(os.environ.get("BACKUP_EVERY_HOURS") or 0),
        "BACKUP_KEEP": max(1, _int_env("BACKUP_KEEP", 7)),
        "BACKUP_DIR": os.environ.get("BACKUP_DIR") or str(folders.backups),
        "BACKUP_STALE_SECONDS": float(os.environ.get("BACKUP_STALE_SECONDS") or 90),
        "BACKUP_MAX_ATTEMPTS": max(1, _int_env("BACKUP_MAX_ATTEMPTS", 3)),
        "REAPER_INTERVAL_SECONDS": float(os.environ.get("REAPER_INTERVAL_SECONDS") or 30),
        # How often sending a task to Redis is tried again (0.5 s, then 1 s apart) before the request
        # answers 503 queue_unavailable.
        "QUEUE_PUBLISH_RETRIES": max(0, _int_env("QUEUE_PUBLISH_RETRIES", 2)),

        # Audit log (webapp.audit): entries older than this many days are removed by the workers' watcher
        # pass; 0 keeps them forever.
        "AUDIT_KEEP_DAYS": max(0, _int_env("AUDIT_KEEP_DAYS", 365)),
        # Webhooks (webapp.webhooks): the backoff of a failed delivery (base * 2^n, at most the longest wait),
        # how long it is tried, the timeout of one try, the networks and hosts that may be private, how long a
        # replaced secret still signs, and a lost sender's deadlines.
        "WEBHOOK_RETRY_BASE_SECONDS": float(os.environ.get("WEBHOOK_RETRY_BASE_SECONDS") or 30),
        "WEBHOOK_RETRY_MAX_DELAY_SECONDS": float(os.environ.get("WEBHOOK_RETRY_MAX_DELAY_SECONDS") or 3 * 3600),
        "WEBHOOK_RETRY_FOR_SECONDS": float(os.environ.get("WEBHOOK_RETRY_FOR_SECONDS") or 24 * 3600),
        "WEBHOOK_TIMEOUT_SECONDS": float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS") or 5),
        "WEBHOOK_ALLOWED_NETWORKS": os.environ.get("WEBHOOK_ALLOWED_NETWORKS", ""),
        "WEBHOOK_SECRET_GRACE_SECONDS": float(os.environ.get("WEBHOOK_SECRET_GRACE_SECONDS") or 24 * 3600),
        "WEBHOOK_STALE_SECONDS": float(os.environ.get("WEBHOOK_STALE_SECONDS") or 60),
        "WEBHOOK_MAX_ATTEMPTS": max(1, _int_env("WEBHOOK_MAX_ATTEMPTS", 3)),
        # Prometheus (webapp.metrics): a token that may read GET /metrics (and nothing else) as a bearer token,
        # and the address where each worker serves its own figures (port 0: not served). Where processes keep
        # their figures (METRICS_DIR, default DATA_DIR/tmp/metrics) is read by webapp.process_metrics, before
        # any app exists.
        "METRICS_TOKEN": os.environ.get("METRICS_TOKEN") or "",
        "WORKER_METRICS_PORT": _int_env("WORKER_METRICS_PORT", 0),
        "WORKER_METRICS_HOST": os.environ.get("WORKER_METRICS_HOST") or "127.0.0.1",
    }
