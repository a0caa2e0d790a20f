"""The studio's Flask application."""
from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, current_app, request
from flask_babel import gettext, lazy_gettext

ROOT = Path(__file__).resolve().parent.parent
NAV_ITEMS = [("datasets.index", lazy_gettext("Datasets")), ("jobs.index", lazy_gettext("Training jobs")),
             ("registry.index", lazy_gettext("Models")), ("predict.index", lazy_gettext("Predict")),
             ("batch.index", lazy_gettext("Batch")),
             ("feedback.index", lazy_gettext("Feedback")), ("workers.index", lazy_gettext("Workers"))]


def format_duration(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 4 min', in the request's language."""
    seconds = int(round(seconds))
    if seconds < 60:
        return gettext("%(s)s s", s=seconds)
    if seconds < 3600:
        return gettext("%(m)s min %(s)s s", m=seconds // 60, s=seconds % 60)
    return gettext("%(h)s h %(m)s min", h=seconds // 3600, m=seconds % 3600 // 60)


def _limit_json_bodies() -> None:
    """Uploads have their own limits; every other request body (JSON) is small."""
    if request.endpoint not in UPLOAD_ENDPOINTS:
        request.max_content_length = current_app.config["JSON_MAX_BYTES"]


UPLOAD_ENDPOINTS = {"datasets_api.create", "predict_api.predict", "batch_api.create"}


def create_app(config: dict | None = None) -> Flask:
    """Application factory; `config` overrides the environment-derived defaults (tests use it)."""
    # Imported here, not at the top: Python runs this file before any module of the package, so the
    # features (which import the shared modules of the package) load only once an app is made.
    from webapp import api_docs, board, database, errors, health, i18n, taskqueue, workers_pages
    from webapp import metrics
    from webapp.accounts import cli as accounts_cli, guard, settings as security
    from webapp.accounts.api import api as accounts_api
    from webapp.accounts.pages import pages as accounts_pages
    from webapp.audit import api as audit
    from webapp.batch.api import api as batch_api
    from webapp.batch.pages import pages as batch_pages
    from webapp.config import default_config, serving_options
    from webapp.datasets.api import api as datasets_api
    from webapp.datasets.pages import pages as datasets_pages
    from webapp.feedback.api import api as feedback_api
    from webapp.feedback.holding import PredictionHold
    from webapp.feedback.pages import pages as feedback_pages
    from webapp.feedback.review_api import api as review_api
    from webapp.jobs.api import api as jobs_api
    from webapp.jobs.pages import pages as jobs_pages
    from webapp.predict.api import api as predict_api
    from webapp.predict.pages import pages as predict_pages
    from webapp.predict.serving import ModelServer
    from webapp.registry.api import api as registry_api
    from webapp.registry.pages import pages as registry_pages
    from webapp.release.api import api as release_api, evaluations_api
    from webapp.release.stats import StatsCollector
    from webapp.storage import DataDir

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
    config = config or {}
    app.config.update(default_config(config.get("DATA_DIR")))
    app.config.update(config)
    Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    security.init_app(app)
    database.init_app(app)
    taskqueue.init_app(app)
    errors.init_app(app)
    metrics.init_app(app)  # before the checks that may refuse a request, so refusals are counted
    i18n.init_app(app)
    app.before_request(_limit_json_bodies)  # before any check that reads a form body
    guard.init_app(app)
    accounts_cli.init_app(app)
    from webapp.backup import cli as backup_cli, api as backup_api
    backup_cli.init_app(app)
    app.register_blueprint(backup_api.api)
    for blueprint in (accounts_pages, accounts_api, board.bp, health.bp, datasets_api, datasets_pages, jobs_api,
                      jobs_pages, registry_api, registry_pages, release_api, evaluations_api, predict_api, predict_pages, feedback_api,
                      feedback_pages, workers_pages.api, workers_pages.pages, api_docs.docs, batch_api, batch_pages):
        app.register_blueprint(blueprint)
    app.register_blueprint(review_api)
    app.register_blueprint(audit.api)
    app.register_blueprint(audit.pages)
    from webapp.webhooks.api import api as webhooks_api
    from webapp.webhooks.pages import pages as webhooks_pages
    app.register_blueprint(webhooks_api)
    app.register_blueprint(webhooks_pages)
    app.register_blueprint(metrics.bp)
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    app.extensions["model_server"] = ModelServer(DataDir(app.config["DATA_DIR"]).models,
                                                 serving_options(app.config))
    app.extensions["serving_stats"] = StatsCollector(app, app.config["STATS_LOW_CONFIDENCE"],
                                                     app.config["STATS_FLUSH_SECONDS"])
    app.extensions["prediction_hold"] = PredictionHold(
        app.config["REDIS_URL"], app.config["FEEDBACK_HOLD_BYTES"], app.config["FEEDBACK_HOLD_SECONDS"],
        app.config["FEEDBACK_LOOKUP_SECONDS"])
    app.context_processor(lambda: {"nav_items": NAV_ITEMS})
    app.add_template_filter(format_duration, "duration")
    return app
