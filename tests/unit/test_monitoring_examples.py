"""The monitoring examples in deploy/monitoring: Prometheus's own checker accepts the configuration and the
alert rules, the rules fire on the series they watch, and the dashboard and the rules read only figures the
studio serves."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="Debian's prometheus package is not installed")


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_accepts_the_rules_and_the_configuration():
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr
    config = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


@needs_promtool
def test_the_rules_fire_on_a_failed_job_a_missing_worker_and_slow_predictions(tmp_path):
    shutil.copy(MONITORING / "alerts.yml", tmp_path)
    slow = " ".join(f"{n * 60}" for n in range(40))  # every prediction in the 1 s bucket: p95 near 1 s
    cases = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'studio_background_work{kind="job",status="failed"}', "values": "0 0 0 1 1 1"},
            {"series": 'studio_workers{queue="training"}', "values": "1 0 0 0 0 0 0 0 0"},
            {"series": 'studio_prediction_seconds_bucket{le="0.5"}', "values": "0x40"},
            {"series": 'studio_prediction_seconds_bucket{le="1.0"}', "values": slow},
            {"series": 'studio_prediction_seconds_bucket{le="+Inf"}', "values": slow},
            {"series": 'studio_worker_device_problem{worker="trainer-gpu0@box",device="cpu"}', "values": "0 0 1 1 1"}],
        "alert_rule_test": [
            {"eval_time": "4m", "alertname": "StudioJobFailed", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "kind": "job", "status": "failed"},
                "exp_annotations": {"summary": "A training job failed in the last 10 minutes",
                                    "description": "The Jobs page says why. Failed jobs kept: 1."}}]},
            {"eval_time": "7m", "alertname": "StudioNoTrainingWorker", "exp_alerts": [{
                "exp_labels": {"severity": "critical", "queue": "training"},
                "exp_annotations": {"summary": "No worker takes training jobs: jobs and evaluations wait"}}]},
            {"eval_time": "2m", "alertname": "StudioNoTrainingWorker", "exp_alerts": []},
            {"eval_time": "4m", "alertname": "StudioWorkerDeviceFailed", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "worker": "trainer-gpu0@box", "device": "cpu"},
                "exp_annotations": {
                    "summary": "Worker trainer-gpu0@box's GPU failed its check: it trains on cpu instead",
                    "description": "The Workers page says why (a missing cuDNN, a driver that does not match...)."}}]},
            {"eval_time": "2m", "alertname": "StudioWorkerDeviceFailed", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "StudioPredictionLatencyHigh", "exp_alerts": [{
                "exp_labels": {"severity": "warning"},
                "exp_annotations": {"summary": "95% of predictions take up to 975ms (over 0.5 s)"}}]}]}]}
    (tmp_path / "alerts_test.yml").write_text(json.dumps(cases))  # YAML reads JSON
    tested = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def served_names(tmp_path, redis_url: str) -> set[str]:
    """Every series name GET /metrics declares (histograms with their _bucket, _sum and _count)."""
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url))
    upgrade_schema(app)
    text = app.test_client().get("/metrics").get_data(as_text=True)
    names = set()
    for family in text_string_to_metric_families(text):
        suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",)}.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_the_dashboard_and_the_rules_read_only_figures_the_studio_serves(tmp_path, redis_url_empty):
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set(re.findall(r"studio_[a-z0-9_]+", " ".join(expressions) + (MONITORING / "alerts.yml").read_text()))
    worker_only = {"studio_worker_tasks_total", "studio_training_epoch_seconds_bucket"}  # served by workers too
    assert used - served_names(tmp_path, redis_url_empty) == set()
    assert worker_only <= used and len(dashboard["panels"]) >= 10
