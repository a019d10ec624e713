"""The sweep summary: one row per job, failures listed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from omegaconf import OmegaConf

from matchnet.summary import SweepSummary


def test_summary_lists_ok_failed_and_missing_jobs(tmp_path: Path) -> None:
    ok = {
        "status": "ok",
        "overrides": ["data.shot=1"],
        "test_acc": 0.9812,
        "test_acc_ci95": 0.0031,
        "episodes": 1000,
        "train_episodes": 5000,
    }
    failed = {"status": "failed", "overrides": ["data.shot=0"], "error": "data.shot=0 must be >= 1"}
    for job, payload in (("0", ok), ("1", failed)):
        (tmp_path / job).mkdir()
        (tmp_path / job / "result.json").write_text(json.dumps(payload))
    (tmp_path / "2").mkdir()  # a job that died before writing its result
    (tmp_path / "10").mkdir()  # numbered jobs in number order
    (tmp_path / "5w1s").mkdir()  # a job folder named by hydra.sweep.subdir
    (tmp_path / "5w1s" / "result.json").write_text(json.dumps(ok))
    (tmp_path / "notes").mkdir()  # not a job: no number, no result
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["job"] for r in rows] == ["0", "1", "2", "10", "5w1s"]
    assert rows[0]["test_acc"] == "98.12" and rows[0]["test_acc_ci95"] == "0.31"
    assert rows[1]["status"] == "failed: data.shot=0 must be >= 1"
    assert rows[2]["status"] == "failed: no result.json"
    markdown = (tmp_path / "summary.md").read_text()
    assert "| 0 | data.shot=1 | ok | 98.12 | 0.31 | 1000 | 5000 |" in markdown


def test_search_summary_sorts_by_validation_and_tests_only_the_best(tmp_path: Path) -> None:
    def ok(lr: str, value: float, test: float) -> dict:
        return {
            "status": "ok",
            "overrides": [f"optimizer.lr={lr}", "data.shot=2", "debug=limit"],
            "optimized_metric": "val/acc_best",
            "optimized_value": value,
            "test_acc": test,
            "test_acc_ci95": 0.01,
            "episodes": 20,
        }

    results = {
        "0": ok("0.001", 0.70, 0.99),  # the best test accuracy, but not the best on validation
        "1": ok("0.002", 0.80, 0.60),
        "2": {"status": "failed", "overrides": ["optimizer.lr=0.003", "data.shot=1"], "error": "boom"},
    }
    for job, payload in results.items():
        (tmp_path / job).mkdir()
        (tmp_path / job / "result.json").write_text(json.dumps(payload))
    config = {
        "hydra": {
            "sweep": {"dir": str(tmp_path)},
            "sweeper": {"direction": "maximize", "params": {"optimizer.lr": "interval(0.001, 0.01)"}},
            "overrides": {"task": ["data.shot=choice(1,2)", "debug=limit"]},
        }
    }
    SweepSummary().on_multirun_end(OmegaConf.create(config))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [(r["rank"], r["job"], r["best"]) for r in rows] == [
        ("1", "1", "best"),
        ("2", "0", ""),
        ("", "2", ""),
    ]
    assert [r["parameters"] for r in rows] == [
        "optimizer.lr=0.002 data.shot=2",
        "optimizer.lr=0.001 data.shot=2",
        "optimizer.lr=0.003 data.shot=1",
    ]
    assert [r["optimized_value"] for r in rows] == ["0.8000", "0.7000", ""]
    assert [r["test_acc"] for r in rows] == ["60.00", "", ""]
    assert rows[2]["status"] == "failed: boom"
    markdown = (tmp_path / "summary.md").read_text()
    assert "Best trial: job 1 (val/acc_best = 0.8000)" in markdown
    assert "Test accuracy of the best trial only: 60.00% ± 1.00" in markdown and "99.00" not in markdown
