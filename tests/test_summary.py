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
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["job"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["test_acc"] == "98.12" and rows[0]["test_acc_ci95"] == "0.31"
    assert rows[1]["status"] == "failed: data.shot=0 must be >= 1"
    assert rows[2]["status"] == "failed: no result.json"
    markdown = (tmp_path / "summary.md").read_text()
    assert "| 0 | data.shot=1 | ok | 98.12 | 0.31 | 1000 | 5000 |" in markdown
