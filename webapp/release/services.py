"""Release state: the production version, the candidate and its share, and the history of changes.

Every change goes through `_apply`: one conditional update on the revision (two people changing the
release at once: one wins, the other gets 409 with the current state), history rows in the same
transaction, then the models folder is touched so every web process reads the new state at once.
"""
from __future__ import annotations

import logging
import os

from flask import current_app
from sqlalchemy import select, update

from engine.bundle import BundleRejected
from engine.errors import StudioError
from webapp import audit
from webapp.errors import id_in_range
from webapp.extensions import db
from webapp.models import ModelVersion, Release, ReleaseChange, iso, utcnow
from webapp.release.routing import AbstainRule, Catalog
from webapp.storage import data_dir
from webapp import webhooks

log = logging.getLogger(__name__)

RELEASE_ID = 1
SHARES = (1, 5, 25, 50)  # the gray-release steps the page offers
PRODUCTION_ACTIONS = ("first_version", "promote", "promote_candidate", "promote_when_done")
THRESHOLD_ACTIONS = ("threshold", "class_thresholds")  # a version's abstain thresholds changed: `details` says how
ACTIONS = (*PRODUCTION_ACTIONS, "rollback", "set_candidate", "set_share", "stop_experiment",  # of the history
           *THRESHOLD_ACTIONS)


def current() -> Release:
    """The release row; reading it never writes. The migrations create the row (0003, and 0018 puts it
    back where it was missing); without it nothing is released, as an unsaved row says."""
    release = db.session.get(Release, RELEASE_ID)
    if release is None:
        log.error("the release row is missing; run the database migrations (flask db upgrade)")
        return Release(id=RELEASE_ID, production=None, candidate=None, candidate_share=0, revision=0)
    return release


REVISION_QUERY = f"SELECT revision FROM release WHERE id = {RELEASE_ID}"


def revision() -> int:
    """The release's revision: one primary-key read, made by every prediction so that each web process
    routes by the release as it stands (0 while the row is missing, as `current` says). Straight on a
    pooled driver connection, returned at once: a prediction holds no transaction open while it runs the
    model, and the read costs about 20 microseconds here instead of a session's 220."""
    connection = db.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(REVISION_QUERY)
        row = cursor.fetchone()
        cursor.close()
    finally:
        connection.close()
    return row[0] if row else 0


def catalog() -> Catalog:
    """What the model server caches: every version, the release and when each version abstains."""
    rows = db.session.execute(select(ModelVersion.version, ModelVersion.abstain_threshold,
                                     ModelVersion.class_thresholds)).all()
    release = current()
    return Catalog(versions=tuple(sorted(version for version, _, _ in rows)), production=release.production,
                   candidate=release.candidate, candidate_share=release.candidate_share,
                   thresholds={version: AbstainRule(overall, dict(per_class or {}))
                               for version, overall, per_class in rows if overall is not None or per_class},
                   revision=release.revision)


def get_version_or_404(version: int, field: str = "version") -> ModelVersion:
    """The version's row; 404 `model_version_not_found` (naming `field`) when no version has the number."""
    row = None
    if id_in_range(version):
        row = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise StudioError("model_version_not_found", "Model version %(version)s does not exist.", {"version": version},
                          field=field)
    return row


def change_json(change: ReleaseChange) -> dict:
    return {"at": iso(change.at), "action": change.action, "from": change.from_version, "to": change.to_version,
            "share": change.share, "by": change.by, "revision": change.revision, "details": change.details}


def record_threshold_change(version: int, action: str, details: dict, by: str) -> None:
    """Add to the history, in the caller's transaction, that `version`'s abstain thresholds changed ("threshold"
    or "class_thresholds", `details` saying how). What serves stays as it is, so the release's revision too;
    the caller calls `catalog_changed` once it committed."""
    db.session.add(ReleaseChange(action=action, from_version=version, to_version=version, by=by,
                                 revision=current().revision, details=details))


def release_json(release: Release | None = None, history: int = 100) -> dict:
    release = release or current()
    changes = db.session.scalars(select(ReleaseChange).order_by(ReleaseChange.id.desc()).limit(history))
    return {"production": release.production, "candidate": release.candidate,
            "candidate_share": release.candidate_share, "revision": release.revision,
            "experiment_started_at": iso(release.experiment_started_at),
            "previous_production": previous_production(), "shares": list(SHARES),
            "history": [change_json(change) for change in changes]}


def role_of(version: int, release: Release | None = None) -> str | None:
    release = release or current()
    return "production" if version == release.production else "candidate" if version == release.candidate else None


def _release_after_conflict() -> dict:
    """The release as it stands, for a conflict's answer (this request's changes rolled back first)."""
    db.session.rollback()
    return release_json()


def _warm(version: int, field: str) -> None:
    """Load the version in this process before traffic moves to it; a refused bundle cannot serve."""
    try:
        current_app.extensions["model_server"].get(version)
    except BundleRejected as exc:
        raise StudioError(exc.code, exc.template, exc.params, field=field) from None


def _sent_versions(change: dict) -> None:
    """Each version the change names exists (404 naming its field otherwise), and it names more than its
    revision."""
    if not set(change) - {"revision"}:
        raise StudioError("invalid_body", "Send at least one of production, candidate and candidate_share.",
                          field="body")
    for name in ("production", "candidate"):
        if change.get(name) is not None:
            get_version_or_404(change[name], field=name)


def change_release(change: dict, by: str) -> dict:
    """PUT /api/release with the fields `change` sends (typed by the request's model): check the versions
    it names, warm what will serve, then apply in one conditional update."""
    _sent_versions(change)
    release = current()
    if "revision" in change and change["revision"] != release.revision:
        raise StudioError("release_conflict", "The release changed meanwhile (revision %(current)s, not "
                                              "%(sent)s); look at the current state and try again.",
                          {"current": release.revision, "sent": change["revision"]},
                          release=_release_after_conflict())
    production = change.get("production", release.production)
    promoting_candidate = "production" in change and production == release.candidate and production is not None
    candidate = change["candidate"] if "candidate" in change else None if promoting_candidate else release.candidate
    if candidate is None:
        if change.get("candidate_share"):
            raise StudioError("no_candidate", "Choose a candidate version before giving it a share of traffic.",
                              field="candidate_share")
        share = 0
    else:
        share = change.get("candidate_share", release.candidate_share)
    if candidate is not None and candidate == production:
        raise StudioError("candidate_is_production", "Version %(version)s already serves as production; "
                                                     "choose another version as candidate.", {"version": candidate},
                          field="candidate")
    if production is None:
        raise StudioError("no_model", "There is no model version to release yet.", field="production")
    if production != release.production:
        _warm(production, "production")
    if candidate is not None and candidate != release.candidate:
        _warm(candidate, "candidate")

    changes = []
    if production != release.production:
        changes.append(("promote_candidate" if promoting_candidate else "promote", release.production, production,
                        None))
    if candidate != release.candidate and not (promoting_candidate and candidate is None):
        if candidate is None:
            changes.append(("stop_experiment", release.candidate, None, 0))
        else:
            changes.append(("set_candidate", release.candidate, candidate, share))
    elif candidate is not None and share != release.candidate_share:
        changes.append(("set_share", candidate, candidate, share))
    if not changes:
        return release_json(release)
    started = release.experiment_started_at if candidate == release.candidate else utcnow() if candidate else None
    _apply(release, changes, by, production=production, candidate=candidate, candidate_share=share,
           experiment_started_at=started if candidate else None)
    return release_json()


def _production_stack() -> list[int]:
    """Production versions in the order they took over, replayed from the history (rollbacks pop)."""
    stack: list[int] = []
    changes = db.session.scalars(select(ReleaseChange).where(
        ReleaseChange.action.in_((*PRODUCTION_ACTIONS, "rollback"))).order_by(ReleaseChange.id))
    for change in changes:
        if change.action == "rollback":
            while stack and stack[-1] != change.to_version:
                stack.pop()
            if not stack:
                stack.append(change.to_version)
        elif change.to_version is not None:
            stack.append(change.to_version)
    production = current().production
    if production is not None and (not stack or stack[-1] != production):
        stack.append(production)
    return stack


def previous_production() -> int | None:
    """The production version before the current one that still exists, or None."""
    existing = set(db.session.scalars(select(ModelVersion.version)))
    stack = _production_stack()
    for version in reversed(stack[:-1]):
        if version in existing and version != stack[-1]:
            return version
    return None


def rollback(by: str) -> dict:
    """POST /api/release/rollback: the previous production version serves again; any experiment stops."""
    release = current()
    target = previous_production()
    if target is None:
        raise StudioError("release_conflict", "There is no previous production version to roll back to.",
                          release=_release_after_conflict())
    _warm(target, "production")
    changes = [("rollback", release.production, target, None)]
    if release.candidate is not None:
        changes.append(("stop_experiment", release.candidate, None, 0))
    _apply(release, changes, by, production=target, candidate=None, candidate_share=0, experiment_started_at=None)
    return release_json()


def on_new_version(version: int, promote: bool, by: str) -> None:
    """A version was registered: the first one ever becomes production, and so does one whose job asked."""
    for _ in range(5):
        release = current()
        if release.production is None:
            action = "first_version"
        elif promote:
            action = "promote_when_done"
        else:
            return
        try:
            _apply(release, [(action, release.production, version, None)], by, production=version,
                   candidate=None if release.candidate == version else release.candidate)
            return
        except StudioError as exc:
            if exc.code != "release_conflict":
                raise
    log.error("version %d could not be released after repeated conflicts", version)


def check_deletable(version: int) -> None:
    role = role_of(version)
    if role is not None:
        if role == "production":
            raise StudioError("model_in_use", "Model version %(version)s serves as production; promote another "
                                              "version before deleting it.", {"version": version}, field="version")
        raise StudioError("model_in_use", "Model version %(version)s serves as candidate; stop the experiment "
                                          "before deleting it.", {"version": version}, field="version")


def _apply(release: Release, changes: list[tuple], by: str, **values) -> None:
    seen = release.revision
    revision = seen + 1
    result = db.session.execute(update(Release).where(Release.id == RELEASE_ID, Release.revision == seen)
                                .values(revision=revision, **values).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise StudioError("release_conflict", "Someone else changed the release at the same moment; look at the "
                                              "current state and try again.", release=_release_after_conflict())
    for action, before, after, share in changes:
        db.session.add(ReleaseChange(action=action, from_version=before, to_version=after, share=share, by=by,
                                     revision=revision))
        audit.record(f"release.{action}", "release", revision, {"from": before, "to": after, "share": share},
                     by=by)
    webhooks.emit("release.changed", {"revision": revision, "by": by, "changes": [
        {"action": action, "from": before, "to": after, "share": share} for action, before, after, share in changes]})
    db.session.commit()
    db.session.expire_all()
    for action, before, after, share in changes:
        log.info("release revision %d: %s %s -> %s%s by %s", revision, action, before, after,
                 f" ({share}%)" if share else "", by)
    catalog_changed()


def catalog_changed() -> None:
    """Touch the models folder: every web process reads the catalog again on its next request."""
    try:
        os.utime(data_dir().models)
    except OSError:
        pass
    server = current_app.extensions.get("model_server")
    if server is not None:
        server.invalidate()
