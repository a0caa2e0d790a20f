"""Every benchmark still runs: each script of benchmarks/ in its tiny mode (`--tiny`: the same run end to end at
the smallest sizes), as a subprocess with the project's Python, printing the JSON figures the README quotes.
Their values measure nothing here; only that they are there, finite, and positive where a time or a rate is."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Longest first, three at a time: worker_scaling spends most of its time waiting (services starting, Celery
# pings, shutdowns) while the others keep both cores busy. The scripts start their own Redis, workers and web
# server where they need them.
BENCHMARKS = ("worker_scaling", "recipe_quality", "train_throughput", "predict_latency", "ingest_memory",
              "int8_variant", "cache_memory", "ingest_sandbox", "archive_directory", "api_contract", "label_errors",
              "data_quality", "quality_overhead", "request_cost", "class_thresholds", "review_offer", "batch_predict",
              "explanations", "audit_log", "webhook_emit", "backup_round_trip", "metrics_scrape", "augment_feed")
RUN_TIMEOUT = 300
SETTINGS_OF_A_RUNNING_STUDIO = ("DATA_DIR", "DATABASE_URL", "REDIS_URL", "PORT", "WEB_PROCESSES")


def benchmark(name: str):
    """Tie a test to the benchmark script it checks (the fixture below starts only the selected ones)."""
    def tie(test):
        test.benchmark = name
        return test
    return tie


def run_tiny(name: str) -> dict:
    """Run `benchmarks/<name>.py --tiny`; its exit code, seconds, stdout and the tail of stderr."""
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS_OF_A_RUNNING_STUDIO}
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), "--tiny"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return {"returncode": done.returncode, "seconds": round(time.monotonic() - started, 1), "stdout": done.stdout,
            "stderr": done.stderr[-3000:]}


@pytest.fixture(scope="module")
def tiny_figures(request):
    """The JSON a benchmark printed in tiny mode; every selected benchmark is started at once in the
    background (three at a time), each test waits for its own."""
    selected = {getattr(getattr(item, "function", None), "benchmark", None) for item in request.session.items}
    pool = ThreadPoolExecutor(max_workers=3)
    runs: dict[str, Future] = {name: pool.submit(run_tiny, name) for name in BENCHMARKS if name in selected}

    def figures(name: str) -> dict:
        run = runs[name].result()
        assert run["returncode"] == 0, f"benchmarks/{name}.py --tiny failed after {run['seconds']} s:\n{run['stderr']}"
        return json.loads(run["stdout"])

    yield figures
    pool.shutdown(cancel_futures=True)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def assert_positive(figures: dict, *keys: str) -> None:
    for key in keys:
        assert is_number(figures[key]) and figures[key] > 0, (key, figures)


def assert_not_negative(figures: dict, *keys: str) -> None:
    """For durations and memory rounded to a tenth or a thousandth, which a tiny run can bring to 0."""
    for key in keys:
        assert is_number(figures[key]) and figures[key] >= 0, (key, figures)


@benchmark("train_throughput")
def test_train_throughput_still_runs(tiny_figures):
    figures = tiny_figures("train_throughput")
    rows = {(row["name"].split("_")[0], row["augmentation"]): row for row in figures["datasets"]}
    assert set(rows) == {(kind, preset) for kind in ("small", "large") for preset in ("light", "strong", "none")}
    for kind in ("small", "large"):
        for preset in ("light", "strong"):
            assert_positive(rows[kind, preset], "job_images_per_s", "in_memory_images_per_s", "ratio")
        assert_positive(rows[kind, "light"], "plain_recipe_images_per_s", "speedup_vs_plain_recipe")
        assert rows[kind, "none"]["head_only_cached_features"] is True
        assert_positive(rows[kind, "none"], "job_images_per_s", "speedup_vs_full_fine_tune")
    assert_positive(figures["epoch_scaling"], "epoch_seconds_32px", "epoch_seconds_64px", "speedup_32px_vs_64px")


@pytest.mark.slow  # three jobs, each exporting its bundle with the ONNX conversion: over ten seconds
@benchmark("recipe_quality")
def test_recipe_quality_still_runs(tiny_figures):
    (digits,) = tiny_figures("recipe_quality")["datasets"]
    assert digits["dataset"] == "digits" and digits["regime"]
    recipes = digits["recipes"]
    assert set(recipes) == {"plain", "studio_default", "studio_suggested"}
    for name, row in recipes.items():
        assert is_number(row["val_acc"]) and 0 <= row["val_acc"] <= 1, (name, row)
        assert_positive(row, "seconds", "time_ratio")
        assert is_number(row["accuracy_minus_plain"]), (name, row)
        assert row["history"] and all(is_number(epoch["val_acc"]) for epoch in row["history"]), (name, row)
    for name in ("studio_default", "studio_suggested"):
        reached = recipes[name]["reached_plain_accuracy_at_seconds"]
        assert reached is None or (is_number(reached) and reached > 0), (name, recipes[name])
        assert_not_negative(recipes[name], "seconds_outside_epochs")
    assert recipes["studio_suggested"]["reasons"]


@benchmark("class_thresholds")
def test_class_thresholds_still_runs(tiny_figures):
    figures = tiny_figures("class_thresholds")
    summary = figures["summary"]
    assert figures["dataset"] == "digits" and figures["repeats"] == 2 and len(figures["first_repeat"]) == 10
    assert summary["target_met_or_explained_for_every_class"] is True
    assert summary["met_on_calibration"] == summary["with_enough_images"] > 0
    assert summary["too_few_images_with_reason"] == 2 and 0 < summary["held_out_mean_precision"] <= 1


@benchmark("explanations")
def test_explanations_still_runs(tiny_figures):
    figures = tiny_figures("explanations")
    assert figures["exact"] is True and figures["feature_size"] == [2, 2]
    assert {"paddle", "onnx"} <= set(figures["runtimes"])
    for row in figures["runtimes"].values():
        assert row["test_images"] == 16
        assert_positive(row, "ms", "ms_explained", "explained_over_plain")


@benchmark("batch_predict")
def test_batch_predict_still_runs(tiny_figures):
    figures = tiny_figures("batch_predict")
    assert figures["images"] > 0 and figures["runtime"] in ("onnx", "paddle", "onnx_int8")
    assert_positive(figures, "ratio")
    assert all(is_number(run["images_per_second"]) and run["images_per_second"] > 0
               for run in figures["batch_run"] + figures["pipeline"])


@benchmark("review_offer")
def test_review_offer_still_runs(tiny_figures):
    figures = tiny_figures("review_offer")
    times = figures["microseconds_per_call"]
    assert set(times) == {"off", "on_sure_answer", "on_doubtful_not_sampled", "on_doubtful_kept"}
    assert all(math.isfinite(value) and value > 0 for value in times.values()) and figures["kept"] >= 1


@benchmark("audit_log")
def test_audit_log_still_runs(tiny_figures):
    figures = tiny_figures("audit_log")
    assert_positive(figures, "newest", "prefix", "rare_actor", "one_day")
    assert 0 < figures["expired"] < figures["entries"]


@benchmark("webhook_emit")
def test_webhook_emit_still_runs(tiny_figures):
    figures = tiny_figures("webhook_emit")
    assert figures["endpoints"] == 1 and figures["events"] == 3
    assert_positive(figures, "commit_with_event_ms", "signatures_per_s_two_secrets")
    assert is_number(figures["event_cost_ms"]) and is_number(figures["commit_ms"])


@benchmark("backup_round_trip")
def test_backup_round_trip_still_runs(tiny_figures):
    figures = tiny_figures("backup_round_trip")
    assert figures["whole"] is True and figures["files"] > 0 and figures["archive_mb"] > 0
    assert_not_negative(figures, "create_seconds", "verify_seconds", "restore_seconds", "peak_growth_mb")


@benchmark("metrics_scrape")
def test_metrics_scrape_still_runs(tiny_figures):
    figures = tiny_figures("metrics_scrape")
    assert_positive(figures["metrics_ms"], "p50", "p95")
    assert_positive(figures["health_ms"], "p50", "p95")
    assert_positive(figures, "ratio_p50", "ratio_p95", "metrics_bytes", "predictions_sent")
    assert figures["counter_matches"] is True and figures["predictions_scraped"] == figures["predictions_sent"]


@benchmark("request_cost")
def test_request_cost_names_every_part_of_a_prediction(tiny_figures):
    figures = tiny_figures("request_cost")
    parts = figures["median_us"]
    assert_positive(parts, "whole_request_in_process", "guards", "body", "catalog_and_route", "decode", "preprocess",
                    "model", "answer", "json", "answer_check", "statistics", "feedback_hold", "server_and_client")
    assert parts["whole_request_in_process"] > parts["decode"] + parts["model"]
    assert figures["image_size"] == 32 and figures["image_bytes"] > 10_000


@benchmark("predict_latency")
def test_predict_latency_still_runs_on_a_bundle_without_int8(tiny_figures):
    (result,) = tiny_figures("predict_latency")["backbones"]
    assert result["chosen_runtime"] in ("paddle", "onnx") and result["device"] == "cpu"
    for clients in ("clients_1", "clients_8"):
        measured = result[clients]
        assert set(measured) == {"raw_paddle", "raw_onnx", "pipeline", "pipeline_batched_8", "http_endpoint"}
        for name, figures in measured.items():
            assert_positive(figures, "requests", "p50_ms", "p95_ms", "requests_per_s")
            assert figures["errors_5xx"] == 0, (clients, name, figures)
    targets = result["targets"]
    assert_positive(targets, "endpoint_p50_over_pipeline_p50_1_client", "chosen_raw_p50_over_fastest_raw_p50",
                    "endpoint_rps_over_pipeline_rps_8_clients", "batching_8_rps_gain_8_clients",
                    "batching_8_p50_ratio_1_client")
    assert targets["endpoint_5xx"] == 0


@benchmark("int8_variant")
def test_int8_variant_still_runs(tiny_figures):
    (result,) = tiny_figures("int8_variant")["results"]
    assert_positive(result, "float_ms", "int8_ms", "int8_over_float", "float_mb", "int8_mb")
    assert is_number(result["same_top_class"]) and 0 <= result["same_top_class"] <= 1
    assert isinstance(result["would_be_kept_if_accurate"], bool)


@benchmark("ingest_memory")
def test_ingest_memory_still_runs(tiny_figures):
    figures = tiny_figures("ingest_memory")
    assert figures["status"] == "ready" and figures["error"] is None
    assert figures["num_images"] == figures["images"] > 0
    assert_positive(figures, "archive_mb")
    assert_not_negative(figures, "upload_seconds", "ingest_seconds", "web_peak_growth_mb", "ingest_peak_growth_mb",
                        "growth_to_archive")


@benchmark("cache_memory")
def test_cache_memory_still_runs(tiny_figures):
    figures = tiny_figures("cache_memory")
    assert_positive(figures, "images", "decode_size", "array_mb")
    for mode, mapped in (("in_ram", False), ("memory_mapped", True)):
        assert figures[mode]["memory_mapped"] is mapped
        assert figures[mode]["hits"] == figures["images"]
        assert_not_negative(figures[mode], "seconds", "peak_rss_growth_mb", "pass_seconds")
        for moment in ("after_load", "after_pass"):
            assert_positive(figures[mode][moment], "anon_mb", "file_mb")
    assert figures["ratio"] is None or (is_number(figures["ratio"]) and figures["ratio"] >= 0)


@benchmark("ingest_sandbox")
def test_ingest_sandbox_still_runs(tiny_figures):
    figures = tiny_figures("ingest_sandbox")
    ways = {"in_process", "limits_only"} | ({"sandboxed"} if figures["sandbox_problem"] is None else set())
    for key in ("seconds", "ratio_to_in_process", "ms_per_image"):
        assert set(figures[key]) == ways, (key, figures)
        assert_not_negative(figures[key], *ways)
    assert_positive(figures["ms_per_image"], *ways)
    if "sandboxed" in ways:
        assert_positive(figures, "sandboxed_checker_start_seconds")


@benchmark("archive_directory")
def test_archive_directory_still_runs(tiny_figures):
    figures = tiny_figures("archive_directory")
    assert figures["members"] > figures["max_entries"]
    ways = ("parse_first", "end_record_first", "end_record_claiming_one_entry")
    for way in ways:
        assert figures[way]["code"] == "archive_too_large", (way, figures)
        assert_not_negative(figures[way], "seconds")
        assert_positive(figures[way], "peak_mb")
    assert_positive(figures["parse_first"], "seconds")
    for way in ways[1:]:
        assert_positive(figures[way], "seconds_ratio", "memory_ratio")


@pytest.mark.slow  # two stacks of Redis, Celery workers and real trainings: about half a minute
@benchmark("worker_scaling")
def test_worker_scaling_still_runs(tiny_figures):
    figures = tiny_figures("worker_scaling")
    assert set(figures["training_workers"]) == {"1", "2"}
    for workers, run in figures["training_workers"].items():
        assert run["all_succeeded"] is True
        assert len(run["job_seconds"]) == figures["jobs"] and sum(run["jobs_per_worker"].values()) == figures["jobs"]
        assert_positive(run, "wall_seconds", "mean_job_seconds")
    assert_positive(figures, "speedup", "job_slowdown")


@benchmark("api_contract")
def test_api_contract_still_runs(tiny_figures):
    figures = tiny_figures("api_contract")
    for name in ("list", "one"):
        assert figures[name]["path"].startswith("/api/jobs")
        assert_positive(figures[name], "checked_ms", "unchecked_ms", "ratio")


@benchmark("label_errors")
def test_label_errors_still_runs(tiny_figures):
    figures = tiny_figures("label_errors")
    assert figures["dataset"] == "digits" and figures["flipped"] == figures["k"] > 0
    assert_positive(figures, "train_images", "folds", "seconds", "estimate_seconds", "probe_seconds_per_image")
    for key in ("precision_at_k", "recall_at_k", "suggested_true_class"):
        assert is_number(figures[key]) and 0 <= figures[key] <= 1, (key, figures)
    assert set(figures["out_of_sample_accuracy"]) == {"given_labels", "true_labels"}


@benchmark("data_quality")
def test_data_quality_still_runs(tiny_figures):
    figures = tiny_figures("data_quality")
    for name in ("photo_like", "digits"):
        found = figures[name]
        for key in ("recall", "precision"):
            assert is_number(found[key]) and 0 <= found[key] <= 1, (name, key, found)
        assert found["true_pairs"] > 0 and 0 <= found["leakage_planted_found"] <= found["leakage_planted"]
        assert_not_negative(found, "false_pairs", "leakage_on_clean_split", "report_seconds")
    assert_positive(figures, "threshold", "check_ms_per_image", "signature_ms_per_image", "signature_ratio",
                    "report_items")
    assert_not_negative(figures, "report_seconds")


@benchmark("quality_overhead")
def test_quality_overhead_still_runs(tiny_figures):
    figures = tiny_figures("quality_overhead")
    assert figures["images"] > 0 and set(figures["findings"]) >= {"duplicates", "leakage", "conflicts"}
    assert_positive(figures, "ingest_seconds", "check_ms_per_image_without_signature", "report_share_of_ingest")
    assert_not_negative(figures, "report_seconds", "signature_ms_per_image")


@benchmark("augment_feed")
def test_augment_feed_still_runs(tiny_figures):
    figures = tiny_figures("augment_feed")
    assert [(row["image_size"], row["augmentation"]) for row in figures["settings"]] == [(32, "light"), (32, "strong")]
    for row in figures["settings"]:
        assert_positive(row["cpu"], "loader_images_per_s", "step_images_per_s", "ratio")
        assert all(rate > 0 for rate in row["loader_images_per_s_by_threads"].values())
        assert "skipped" in row["gpu"] or row["gpu"]["step_images_per_s"] > 0
