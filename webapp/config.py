"""Configuration read from the environment, with defaults for a laptop install."""
from __future__ import annotations

import os
from pathlib import Path

from webapp.storage import DataDir


def _int_env(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def data_dir_from_env(override: str | None = None) -> DataDir:
    """`override`, else DATA_DIR, else ./instance, as an absolute path."""
    return DataDir(Path(override or os.environ.get("DATA_DIR") or "instance").resolve())


def default_config(data_dir: str | None = None) -> dict:
    """Build the configuration mapping from environment variables (`data_dir` overrides DATA_DIR)."""
    folders = data_dir_from_env(data_dir)
    return {
        "DATA_DIR": str(folders.root),
        "SQLALCHEMY_DATABASE_URI": os.environ.get("DATABASE_URL") or f"sqlite:///{folders.database}",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "VISUALDL_URL": os.environ.get("VISUALDL_URL", ""),
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "studio-local",
        # Whole request body (an archive or a folder of files).
        "MAX_CONTENT_LENGTH": _int_env("MAX_UPLOAD_MB", 4096) * 1024 * 1024,
        # Werkzeug spools every uploaded file above this size to disk.
        "MAX_FORM_MEMORY_SIZE": 2 * 1024 * 1024,
        "MAX_FORM_PARTS": _int_env("MAX_UPLOAD_FILES", 50_000) + 100,
        "INGEST_LIMITS": {
            "max_entries": _int_env("MAX_UPLOAD_FILES", 50_000),
            "max_total_bytes": _int_env("MAX_DATASET_MB", 8192) * 1024 * 1024,
            "max_file_bytes": _int_env("MAX_IMAGE_MB", 50) * 1024 * 1024,
            "max_ratio": 200,
            "max_pixels": _int_env("MAX_IMAGE_MEGAPIXELS", 80) * 1_000_000,
        },
        "HEALTH_CACHE_SECONDS": 5,
        "PREDICT_MAX_BYTES": _int_env("PREDICT_MAX_MB", 5) * 1024 * 1024,
        "PREDICT_MAX_PIXELS": _int_env("PREDICT_MAX_MEGAPIXELS", 40) * 1_000_000,
        "PREDICTOR_POOL_SIZE": _int_env("PREDICTOR_POOL_SIZE", 4),
        "JOB_HEARTBEAT_SECONDS": float(os.environ.get("JOB_HEARTBEAT_SECONDS") or 10),
        "JOB_STALE_SECONDS": float(os.environ.get("JOB_STALE_SECONDS") or 90),
        "REAPER_INTERVAL_SECONDS": float(os.environ.get("REAPER_INTERVAL_SECONDS") or 30),
    }
