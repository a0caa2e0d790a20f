"""Every kind of background work (webapp.lifecycle), in one list: the workers' watcher reaps and sends each
kind's rows (worker.loops), and GET /metrics counts them by status (webapp.metrics). A new kind is one more
entry here."""
from __future__ import annotations

from webapp.backup.schedule import BACKUPS
from webapp.batch.services import BATCH_PREDICTIONS
from webapp.datasets.quality import QUALITY_SCANS
from webapp.datasets.services import UPLOAD_CHECKS
from webapp.jobs.label_search import LABEL_SEARCHES
from webapp.jobs.work import JOBS
from webapp.release.evaluation import EVALUATIONS
from webapp.webhooks.delivery import WEBHOOK_DELIVERIES

KINDS = (JOBS, EVALUATIONS, UPLOAD_CHECKS, QUALITY_SCANS, LABEL_SEARCHES, BATCH_PREDICTIONS, WEBHOOK_DELIVERIES,
         BACKUPS)
