"""benchmarks/omniglot_table.py on a tiny budget: the results files have the right rows and columns."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "benchmarks" / "omniglot_table.py"
# One training episode per model, two test episodes per setting: seconds, not hours.
TINY = [
    "--max-epochs",
    "1",
    "--episodes-per-epoch",
    "1",
    "--val-episodes",
    "1",
    "--test-episodes",
    "2",
    "--launcher",
    "inprocess",
]
VINYALS = {"5w1s": (5, 1), "5w5s": (5, 5), "20w1s": (20, 1), "20w5s": (20, 5)}


def run_runner(*args: str, data_root: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    if data_root is not None:
        env["MATCHNET_DATA_ROOT"] = str(data_root)
    return subprocess.run(
        [sys.executable, str(RUNNER), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_tiny_table(omniglot_root: Path, tmp_path: Path) -> None:
    proc = run_runner("--out-dir", str(tmp_path), *TINY, data_root=omniglot_root)
    assert proc.returncode == 0, proc.stderr[-4000:]

    with (tmp_path / "omniglot.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = set(rows[0])
    for column in (
        "setting",
        "way",
        "shot",
        "query",
        "test_episodes",
        "fce",
        "train_way",
        "train_shot",
        "train_episodes",
        "acc",
        "acc_ci95",
        "published_matching_networks",
        "published_prototypical_networks",
        "train_wall_s",
        "machine",
        "threads",
        "train_command",
        "eval_command",
    ):
        assert column in columns, column
    # Every Vinyals setting with FCE off and on (one row per training), plus the Lake protocol.
    main = [r for r in rows if r["part"] == "main"]
    assert {(r["setting"], r["fce"]) for r in main} == {
        (name, fce) for name in VINYALS for fce in ("False", "True")
    } | {("lake-20w1s", "True")}
    trainings = {r["training"] for r in main if r["setting"] in VINYALS}
    assert {"vinyals-fce", "vinyals-nofce"} <= trainings
    assert sum(r["setting"] in VINYALS for r in main) == len(VINYALS) * len(trainings)
    for row in rows:
        assert row["test_episodes"] == "2" and row["train_episodes"] == "1"
        assert 0.0 <= float(row["acc"]) <= 100.0 and float(row["acc_ci95"]) >= 0.0
        assert row["train_way"] == "20" and row["train_shot"] == "1"
        if row["setting"] in VINYALS:
            assert (int(row["way"]), int(row["shot"])) == VINYALS[row["setting"]]
            assert row["split"] == "vinyals" and row["published_matching_networks"]
        else:
            assert row["split"] == "lake" and row["within_alphabet"] == "True" and row["way"] == "20"
        assert row["eval_command"].startswith("python src/eval.py ckpt_path=")

    page = (tmp_path / "omniglot.md").read_text()
    for published in ("98.1", "98.9", "93.8", "98.5", "98.8", "99.7", "96.0", "4.5", "3.3", "8.0"):
        assert published in page
    assert "Lake et al. (2015) protocol" in page
    for training in ("vinyals-fce", "vinyals-nofce", "lake-fce"):
        assert (tmp_path / f"omniglot_curve_{training}.png").stat().st_size > 1000

    checkpoints = tmp_path / "checkpoints"
    for name in ("omniglot-vinyals-5w1s.ckpt", "omniglot-vinyals-20w1s.ckpt", "omniglot-lake-20w1s.ckpt"):
        assert (checkpoints / name).is_file()
        assert name in (checkpoints / "README.md").read_text()
    # With --out-dir, run folders and checkpoints go under it, not to outputs/ and checkpoints/.
    assert (tmp_path / "runs" / "vinyals-fce" / "result.json").is_file()


def test_bad_flags_are_explained(tmp_path: Path) -> None:
    proc = run_runner("--out-dir", str(tmp_path), "--only", "7w3s")
    assert proc.returncode == 2
    assert "unknown settings" in proc.stderr and "5w1s" in proc.stderr
    proc = run_runner("--out-dir", str(tmp_path), "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "does not exist" in proc.stderr
