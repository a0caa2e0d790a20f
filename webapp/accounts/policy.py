"""The role each endpoint needs: one table, checked for every request before its view runs.

Roles are ordered: a viewer reads and predicts, a member also uploads, trains, evaluates, downloads
bundles and gives feedback, an admin also manages users and deletes and changes releases. An
endpoint not named below needs a viewer to read (GET) and a member for anything else, so a new
endpoint is never public by accident.
"""
from __future__ import annotations

ROLES = ("viewer", "member", "admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Answered for anyone: sign-in itself, the first-run page, static files, and health (reduced for anonymous).
PUBLIC = frozenset({"static", "accounts.sign_in", "accounts.sign_out", "accounts.setup", "health.health",
                    "i18n.choose_language"})
# Also open to the scrape token (METRICS_TOKEN) sent as a bearer token; refused in JSON, never sent to sign-in.
SCRAPE = frozenset({"metrics.metrics"})
# Opened to anonymous callers only when PREDICT_PUBLIC is on.
PREDICT_PUBLIC = frozenset({"predict_api.predict", "predict.index"})

NEEDS = {
    # reads that hand out more than a page shows
    "registry_api.download": "member",
    "datasets_api.download_revision": "member",
    # a few timed training steps on a worker, for the train form's estimate
    "jobs_api.request_timing_probe": "member",
    # users, deletes and release changes
    "accounts_api.list_users": "admin",
    "accounts_api.create_user": "admin",
    "accounts_api.update_user": "admin",
    "accounts_api.delete_user": "admin",
    "accounts.users": "admin",
    "datasets_api.delete": "admin",
    "datasets_api.delete_revision": "admin",
    "registry_api.delete": "admin",
    "registry_api.update": "admin",
    "release_api.change": "admin",
    "release_api.rollback": "admin",
    "feedback_api.purge": "admin",
    # webhooks: endpoints, their secrets and deliveries
    **{f"webhooks_api.{view}": "admin" for view in ("index", "create", "show", "update", "delete", "rotate", "test",
                                                    "deliveries", "resend")},
    "webhooks.index": "admin",
    "review_api.change_settings": "admin",  # turns keeping production images on
    # every signed-in person manages their own tokens and reads who they are, and anyone may predict
    "accounts_api.me": "viewer",
    "accounts_api.list_tokens": "viewer",
    "accounts_api.create_token": "viewer",
    "accounts_api.revoke_token": "viewer",
    "accounts_api.change_password": "viewer",
    "accounts_api.end_sessions": "viewer",
    "predict_api.predict": "viewer",
    # batch predictions: members start them; their starter or an admin cancels or deletes one (the service
    # checks whose it is); results files hand out more than a page shows
    "batch_api.cancel": "member",
    "batch_api.delete": "member",
    "batch_api.results_csv": "member",
    "batch_api.results_jsonl": "member",
    # scheduled backups (webapp.backup): what the install's archives are, for admins
    "backups_api.index": "admin",
    # where a model version looks in a dataset image (the job page's gallery): a read
    "predict_api.explain_image": "viewer",
    # the audit log: who signed in from where and changed what
    "audit_api.listing": "admin",
    "audit.index": "admin",
    # the install's figures (Prometheus): admins' tokens, the scrape token, this machine while sign-in is off
    "metrics.metrics": "admin",
}


def required_role(endpoint: str, method: str) -> str | None:
    """The least role `endpoint` needs for `method`; None for public endpoints."""
    if endpoint in PUBLIC:
        return None
    return NEEDS.get(endpoint) or ("viewer" if method in SAFE_METHODS else "member")


def role_allows(role: str | None, needed: str) -> bool:
    """Whether `role` is at least `needed`."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)
