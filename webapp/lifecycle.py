"""One life for every row that mirrors background work: training jobs, evaluations, upload checks, and
the kinds to come.

A row is the truth; the broker only carries a wake-up call. Each kind (a `Kind`) names its table, its
statuses and their moves (webapp.statuses), its task and queue, and its deadlines. Every write goes through
the functions below as one conditional UPDATE:

- `claim` takes a waiting row as a new attempt (the attempt number is the fence: a worker writes only
  while the attempt is still its own); a second delivery of the same task finds nothing to take.
- `stamp` (progress, heartbeat) and `fenced_commit` write only while the attempt owns the running row;
  `finish` ends it the same way, so a late or given-up worker changes nothing.
- `reap` (the reaper thread, never a request) gives a row whose heartbeat stopped back to the queue, or
  fails it with the reason after the kind's maximum of attempts.
- The outbox: a row records when it began to wait (`queued_at`) and when its task was last sent
  (`sent_at`). `sweep_outbox` sends the task of a row that was committed but never sent (its web process
  died in between, or Redis was down), and sends again the task of a row sent long ago but never taken,
  when a worker serving its queue has been idle for the kind's deadline: a message the broker lost. A row
  waiting behind a long training is never sent twice, since that training's worker is not idle.
- A kind with a due time (`due_column`, webhook deliveries) has rows that wait until a given time: `wait_until`
  ends an attempt so, and `sweep_outbox` sends such a row's task only once it is due (never a delayed
  broker message).
"""
from __future__ import annotations

import logging
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Callable, Iterator

from flask import current_app
from sqlalchemy import ColumnElement, and_, or_, select, update

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp.extensions import db
from webapp.messages import stored
from webapp.models import utcnow
from webapp.statuses import sources_of

log = logging.getLogger(__name__)
NEVER_SENT = Message(N_("The job queue (Redis) could not be reached, so this was never started; the server's log "
                        "says why."))


class Superseded(Exception):
    """This worker was given up on (its heartbeat stopped for too long): the row went on without it."""


@dataclass(frozen=True)
class Kind:
    """One kind of background work and the columns of its rows (`attempt`, `heartbeat_at`, `worker`,
    `retries`, `queued_at`, `sent_at`, `error`, and optionally `progress`, `phase`,
    `finished_at`, `traceback`, `task_id`)."""

    name: str
    model: type
    task: str
    transitions: dict
    waiting: StrEnum  # the status of a row that waits for a worker
    running: StrEnum  # the status of a row a worker holds
    failed: StrEnum
    finished: frozenset  # the statuses of a row whose work ended
    queue: Callable[[object], str]  # the queue a row's task goes to
    stale_setting: str  # the config key of the seconds without a heartbeat after which a worker is lost
    attempts_setting: str  # the config key of the attempts before a lost row fails
    gave_up: Callable[[int], Message]
    # When waiting and running share a status (an upload check), the row's `worker` tells them apart.
    held_by_worker: bool = False
    attempt_column: str = "attempt"
    heartbeat_column: str = "heartbeat_at"
    claimed: Callable[[datetime], dict] = lambda now: {}  # more values a claim writes
    requeued: dict = field(default_factory=dict)  # more values of a row that waits again
    on_moved: Callable[[object], None] | None = None  # told of every status change (live pages)
    on_failed: Callable[[object], None] | None = None  # after a row failed (files to remove)
    never_sent: Message = NEVER_SENT  # the error of a row whose task could not be sent when it was queued
    # writes more in the move's own transaction (the outbox rows of the events a move is told to others)
    in_move: Callable[[object], None] | None = None
    due_column: str | None = None  # the column of the time before which a waiting row's task is not sent

    def column(self, name: str):
        return getattr(self.model, {"attempt": self.attempt_column, "heartbeat_at": self.heartbeat_column}.get(
            name, name))

    def has(self, name: str) -> bool:
        return hasattr(self.model, name)

    def is_waiting(self) -> ColumnElement:
        status = self.model.status == self.waiting
        return and_(status, self.model.worker.is_(None)) if self.held_by_worker else status

    def is_running(self) -> ColumnElement:
        status = self.model.status == self.running
        return and_(status, self.model.worker.is_not(None)) if self.held_by_worker else status

    def owned(self, row_id: int, attempt: int) -> tuple:
        """The conditions under which `attempt` still holds the running row."""
        return self.model.id == row_id, self.column("attempt") == attempt, self.is_running()

    def stale_seconds(self) -> float:
        return float(current_app.config[self.stale_setting])

    def max_attempts(self) -> int:
        return int(current_app.config[self.attempts_setting])


def _stored(kind: Kind, target: StrEnum, values: dict) -> dict:
    """The values of a move: a finished row gets its end time (and phase); an `error` (a Message, a
    StudioError or an exception's words) is kept in its stored form (webapp.messages.stored)."""
    if target in kind.finished:
        finished = {"finished_at": utcnow(), "phase": target.value, "traceback": None, "error": None}
        values = {**{name: value for name, value in finished.items() if kind.has(name)}, **values}
    if "error" in values:
        values["error"] = stored(values["error"])
    return values


def move(kind: Kind, row, target: StrEnum, *conditions, **values) -> bool:
    """Move `row` to `target` if its status allows it (and `conditions` hold), in one conditional UPDATE;
    a move that is not allowed changes nothing and returns False."""
    values = _stored(kind, target, values)
    moved = db.session.execute(
        update(kind.model).where(kind.model.id == row.id, kind.model.status.in_(
            sorted(sources_of(target, kind.transitions))), *conditions)
        .values(status=target, **values).execution_options(synchronize_session=False)).rowcount
    if moved and kind.in_move is not None:
        db.session.refresh(row)
        kind.in_move(row)
    db.session.commit()
    db.session.refresh(row)
    if not moved:
        log.warning("%s %s is %s; not moving it to %s", kind.name, row.id, row.status, target)
        return False
    if kind.on_moved is not None:
        kind.on_moved(row)
    if target == kind.failed and kind.on_failed is not None:
        kind.on_failed(row)
    return True


def claim(kind: Kind, row_id: int, worker: str):
    """Take a waiting row as a new attempt; the row, or None when another delivery took it already (or it
    is not waiting any more)."""
    now = utcnow()
    values = {kind.attempt_column: kind.column("attempt") + 1, kind.heartbeat_column: now, "worker": worker,
              "status": kind.running, **kind.claimed(now)}
    taken = db.session.execute(update(kind.model).where(kind.model.id == row_id, kind.is_waiting())
                               .values(**values).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    if not taken:
        return None
    row = db.session.get(kind.model, row_id)
    db.session.refresh(row)
    if kind.on_moved is not None:
        kind.on_moved(row)
    return row


def _stamped(kind: Kind, row_id: int, attempt: int, **values):
    """The UPDATE that stamps the heartbeat (and writes `values`) only while `attempt` holds the running row."""
    return update(kind.model).where(*kind.owned(row_id, attempt)).values({kind.heartbeat_column: utcnow(), **values})


def hold(kind: Kind, row_id: int, attempt: int) -> None:
    """Stamp the heartbeat in the session's transaction if `attempt` still holds the running row (the row
    stays locked for the rest of the transaction); otherwise roll the session back and raise Superseded."""
    held = db.session.execute(_stamped(kind, row_id, attempt)
                              .execution_options(synchronize_session=False)).rowcount
    if not held:
        db.session.rollback()
        raise Superseded()


def fenced_commit(kind: Kind, row_id: int, attempt: int) -> None:
    """Commit the session's changes only while `attempt` still holds the running row (in one transaction
    with a conditional update of its heartbeat); otherwise roll them back and raise Superseded."""
    hold(kind, row_id, attempt)
    db.session.commit()


def stamp(kind: Kind, row_id: int, attempt: int, **values) -> bool:
    """Write progress (and the heartbeat) in a transaction of its own, only while `attempt` holds the row;
    False when it does not any more."""
    with db.engine.begin() as connection:
        return bool(connection.execute(_stamped(kind, row_id, attempt, **values)).rowcount)


def finish(kind: Kind, row, attempt: int, target: StrEnum, **values) -> bool:
    """End the running row as `target` while `attempt` still holds it; a late worker changes nothing."""
    db.session.rollback()  # whatever the worker had pending is not part of the end
    return move(kind, row, target, *kind.owned(row.id, attempt)[1:], **values)


@contextmanager
def ending(kind: Kind, row, attempt: int, unexpected: str,
           cancelled: tuple[type[BaseException], StrEnum] | None = None) -> Iterator[None]:
    """Around a worker's run of an attempt, how it ends when its work raises: a cancellation (`cancelled`: the
    exception that says so and the status it ends in) ends the row so; an attempt given up on changes nothing;
    a StudioError fails the row with its words; anything else fails it with `unexpected` (an N_ template that
    names the error's `kind`), the traceback in the log, so no row is ever left running."""
    try:
        yield
    except Superseded:
        db.session.rollback()
        log.warning("%s %s went on without attempt %s; stopping", kind.name, row.id, attempt)
    except Exception as exc:
        ended = {"finished_at": utcnow()} if kind.has("finished_at") else {}  # the kinds that record when
        if cancelled is not None and isinstance(exc, cancelled[0]):
            finish(kind, row, attempt, cancelled[1], **ended)
        elif isinstance(exc, StudioError):
            finish(kind, row, attempt, kind.failed, error=exc, **ended)
        else:
            log.error("%s %s failed:\n%s", kind.name, row.id, traceback.format_exc())
            finish(kind, row, attempt, kind.failed, error=Message(unexpected, {"kind": type(exc).__name__}),
                   **ended)


class Heartbeat(threading.Thread):
    """Stamps the row every `interval` seconds while this process lives, even inside a long step; stops
    once the attempt lost the row. A database that does not answer one beat is logged, not fatal."""

    def __init__(self, kind: Kind, row_id: int, attempt: int, interval: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{kind.name}-{row_id}")
        self.kind, self.row_id, self.attempt, self.interval = kind, row_id, attempt, interval
        self.engine = db.engine
        self.stopped, self.lost = threading.Event(), threading.Event()

    def beat(self) -> bool:
        """One stamp, on the engine taken when the thread was made (the thread has no app context)."""
        with self.engine.begin() as connection:
            return bool(connection.execute(_stamped(self.kind, self.row_id, self.attempt)).rowcount)

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                if not self.beat():
                    self.lost.set()
                    log.warning("%s %s went on without attempt %s; its heartbeat stops", self.kind.name,
                                self.row_id, self.attempt)
                    return
            except Exception:
                log.exception("heartbeat of %s %s failed", self.kind.name, self.row_id)


def wait_until(kind: Kind, row, attempt: int, due: datetime, **values) -> bool:
    """End the running attempt with the row waiting again, its task sent by the outbox once `due` (a kind
    with a `due_column`); a late worker changes nothing."""
    return finish(kind, row, attempt, kind.waiting, **{kind.due_column: due, **waits_again(kind), **values})


def waits_again(kind: Kind) -> dict:
    """The values (beside its status) of a row that waits for a worker again: its task is to be sent (the
    outbox)."""
    values = {"queued_at": utcnow(), "sent_at": None, **kind.requeued}
    if kind.held_by_worker:
        values["worker"] = None
    return values


def send(kind: Kind, row) -> None:
    """Send the row's task and record when (and, for a kind that keeps it, the task's id); raises what the
    broker raised."""
    result = current_app.extensions["celery"].send_task(kind.task, args=[row.id], queue=kind.queue(row),
                                                        ignore_result=True)
    values = {"sent_at": utcnow(), **({"task_id": result.id} if kind.has("task_id") else {})}
    db.session.execute(update(kind.model).where(kind.model.id == row.id).values(**values)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(row)


def send_or_refuse(kind: Kind, row, refusal: StudioError) -> None:
    """Send the task of a row a request just queued; a broker that cannot be reached fails the row with
    the reason (never a row waiting for a message that will not come) and raises `refusal` (503)."""
    try:
        send(kind, row)
    except Exception:
        log.exception("could not send the task of %s %s", kind.name, row.id)
        move(kind, row, kind.failed, kind.is_waiting(), error=kind.never_sent)
        raise refusal from None


def reap(kind: Kind, on_lost: Callable[[str], None] | None = None) -> list[int]:
    """Rows whose heartbeat stopped (worker killed, out of memory, host down) wait again and are sent to
    the next worker, up to the kind's maximum of attempts; then they fail with the reason. `on_lost` is told
    the name of the worker each handled row lost (its writes are committed). The ids handled."""
    limit = utcnow() - timedelta(seconds=kind.stale_seconds())
    heartbeat, attempts = kind.column("heartbeat_at"), kind.max_attempts()
    stale = db.session.scalars(select(kind.model).where(kind.is_running(), heartbeat < limit)).all()
    handled = []
    for row in stale:
        still_stale = (kind.is_running(), heartbeat < limit,
                       kind.column("attempt") == getattr(row, kind.attempt_column))
        lost_worker = row.worker
        if row.retries + 1 < attempts:
            if move(kind, row, kind.waiting, *still_stale, retries=kind.model.retries + 1, **waits_again(kind)):
                log.warning("%s %s lost its worker; it waits again (attempt %s of %s)", kind.name, row.id,
                            row.retries + 1, attempts)
                handled.append(row.id)
                _send_logged(kind, row, "sent to the next worker")  # or else by the outbox's next pass
        elif move(kind, row, kind.failed, *still_stale, error=kind.gave_up(attempts)):
            handled.append(row.id)
        if on_lost is not None and lost_worker and handled and handled[-1] == row.id:
            on_lost(lost_worker)
            db.session.commit()
    return handled


def send_or_leave(kind: Kind, row) -> bool:
    """Send the task of a committed waiting row; a broker that cannot be reached leaves it to the outbox's
    next pass (logged). Whether it was sent."""
    try:
        send(kind, row)
        return True
    except Exception as exc:
        db.session.rollback()
        log.warning("could not send the task of %s %s: %s; the outbox's next pass sends it", kind.name, row.id,
                    exc)
        return False


def _send_logged(kind: Kind, row, why: str) -> bool:
    log.warning("sending the task of %s %s (%s)", kind.name, row.id, why)
    return send_or_leave(kind, row)


def _due(kind: Kind, now: datetime) -> tuple:
    """The condition of a waiting row whose task may be sent now (its due time, for a kind that has one)."""
    if kind.due_column is None:
        return ()
    due = getattr(kind.model, kind.due_column)
    return (or_(due.is_(None), due <= now),)


def sweep_outbox(kind: Kind, idle_queues: Callable[[float], set[str]], grace: float) -> list[int]:
    """Send the tasks of this kind's waiting rows that need one: a row never sent `grace` seconds after it
    began to wait, and a row sent more than the kind's deadline ago that no worker took although a worker
    of its queue has been idle that long. The ids sent."""
    now, deadline = utcnow(), timedelta(seconds=kind.stale_seconds())
    unsent = db.session.scalars(select(kind.model).where(
        kind.is_waiting(), kind.model.sent_at.is_(None), kind.model.queued_at < now - timedelta(seconds=grace),
        *_due(kind, now)).order_by(kind.model.id)).all()
    sent = [row.id for row in unsent if _send_logged(kind, row, "committed, never sent")]
    lost = db.session.scalars(select(kind.model).where(kind.is_waiting(), kind.model.sent_at < now - deadline)
                              .order_by(kind.model.id)).all()
    if lost:
        idle = idle_queues(deadline.total_seconds())
        sent += [row.id for row in lost if kind.queue(row) in idle
                 and _send_logged(kind, row, "sent, never taken while a worker of its queue was idle")]
    db.session.rollback()
    return sent
