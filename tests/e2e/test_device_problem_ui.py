"""The Workers page in the browser says why a worker's GPU failed its probe, under the device it trains on
instead, and in Chinese on a Chinese page (the details stay as the probe wrote them)."""
from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from worker.beacon import WorkerBeacon

pytestmark = pytest.mark.e2e
CUDNN = "gpu:0 failed its check: RuntimeError: (PreconditionNotMet) Cannot load cudnn shared library."


def test_a_gpu_that_failed_its_probe_is_shown_in_words(page, live_server, stack):
    name = f"gpu-{uuid.uuid4().hex[:6]}@broken-box"
    beacon = WorkerBeacon(stack["config"]["REDIS_URL"], name, ["training", "training.cpu"], "cpu")
    beacon.device_problem = CUDNN
    beacon.beat()
    try:
        page.goto(f"{live_server}/workers")
        device = page.locator(f'#workers-table tr[data-worker="{name}"] td').nth(2)
        expect(device).to_have_text(f"cpuTrains on cpu instead: {CUDNN}")
        expect(device.locator(".probe-problem")).to_be_visible()
        page.set_extra_http_headers({"Accept-Language": "zh-CN"})
        page.reload()
        expect(device.locator(".probe-problem")).to_have_text(f"改为在 cpu 上训练：{CUDNN}")
    finally:
        page.set_extra_http_headers({})
        beacon.stop()
