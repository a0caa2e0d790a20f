"""The Workers page in the browser: the live stack's workers with their devices, and a worker that
announces itself, takes a job and signs off, followed without a reload."""
from __future__ import annotations

import re
import socket
import uuid

import pytest
from playwright.sync_api import expect

from webapp.extensions import db
from webapp.models import Job, utcnow
from worker.beacon import WorkerBeacon

pytestmark = pytest.mark.e2e
PROBE_SECONDS = 90  # a training worker probes its device in a child process as it starts


def cells(page, name: str):
    return page.locator(f'#workers-table tr[data-worker="{name}"] td')


def test_the_page_lists_the_stack_and_follows_a_worker_that_comes_works_and_goes(page, live_server, stack,
                                                                                 stack_app):
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{live_server}/workers")
    expect(page.locator("nav a.active")).to_have_text("Workers")
    trainer = page.locator("#workers-table tbody tr", has=page.locator("td", has_text=re.compile(r"^training")))
    expect(trainer).to_have_count(1)  # the stack's training worker; its ingest worker is the other row
    expect(trainer.locator("td").nth(2)).to_have_text("cpu", timeout=PROBE_SECONDS * 1000)
    expect(trainer.locator("td").nth(0)).to_have_text(re.compile(r"^test\d+@"))
    expect(trainer.locator("td").nth(1)).to_have_text(socket.gethostname())
    expect(trainer.locator("td").nth(5)).to_have_text(re.compile(r"^(now|\d+ seconds? ago)$"))
    ingest = page.locator("#workers-table tbody tr", has=page.locator("td", has_text=re.compile(r"^ingest, webhooks$")))
    expect(ingest.locator("td").nth(0)).to_have_text(re.compile(r"^ingest-test\d+@"))
    expect(ingest.locator("td").nth(2)).to_have_text("–")
    expect(ingest.locator("td").nth(4)).to_have_text("checks uploads, sends webhooks")
    summary = re.compile(r"^1 training worker · \d+ busy · \d+ jobs? waiting$")
    expect(page.locator("#workers-summary")).to_have_text(summary)
    expect(page.locator("#workers-empty")).to_be_hidden()
    page.evaluate("window.notReloaded = true")

    name = f"gpu-{uuid.uuid4().hex[:6]}@gpu-box"
    url = stack["config"]["REDIS_URL"]
    # one beat lasts 31 s, which a slow run of all the checks below can outlast: it beats again before each
    # part, as a live worker beats on (by hand, so no beat of a thread can land after it signs off)
    beacon = WorkerBeacon(url, name, ["training", "training.gpu"], "gpu:0")
    beacon.beat()
    job_id = None
    try:
        expect(cells(page, name).nth(2)).to_have_text("gpu:0")
        expect(cells(page, name).nth(3)).to_have_text("training, training.gpu")
        expect(cells(page, name).nth(4)).to_have_text("idle")
        expect(page.locator("#workers-summary")).to_contain_text("2 training workers")

        beacon.beat()
        with stack_app.app_context():  # the fake worker takes a job (the reaper leaves it alone: it beats)
            job = Job(dataset_name="flowers", status="running", worker=name, config={"epochs": 1},
                      heartbeat_at=utcnow())
            db.session.add(job)
            db.session.commit()
            job_id = job.id
        link = cells(page, name).nth(4).locator("a")
        expect(link).to_have_text(f"Job {job_id}")
        expect(link).to_have_attribute("href", f"/jobs/{job_id}")
        expect(page.locator(f'#workers-table tr[data-worker="{name}"]')).to_have_class("busy")

        beacon.stop()  # it signs off
        expect(page.locator(f'#workers-table tr[data-worker="{name}"]')).to_have_count(0)
        expect(page.locator("#workers-summary")).to_contain_text("1 training worker ·")
    finally:
        beacon.stop()
        if job_id is not None:
            with stack_app.app_context():
                db.session.delete(db.session.get(Job, job_id))
                db.session.commit()
    assert page.evaluate("window.notReloaded") is True
    assert page.js_errors == [] and blocked == []
