"""What reaches the W&B dashboard, read back from the offline run files: one group per sweep, the
entry point as job type, the experiment's tags, the whole config and parameter counts from the start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.scripts import fresh_environment, pythonpath_with_tests, run_sweep
from helpers.wandb_records import read_run

ROOT = Path(__file__).resolve().parents[1]
# A few real episodes (not debug=fdr, which gives Lightning's callbacks placeholder loggers), logged to W&B.
QUICK = ["experiment=omniglot_5w1s", "debug=tiny", "logger=wandb"]

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.e2e]


def wandb_run(folder: Path) -> dict:
    runs = list(folder.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1, f"expected one W&B run in {folder}, found {runs}"
    return read_run(runs[0])


def test_two_sweeps_of_a_task_land_in_two_groups(omniglot_root: Path, tmp_path: Path) -> None:
    groups = []
    for folder, seeds, jobs in (("sweep_a", "seed=0,1", ("0", "1")), ("sweep_b", "seed=0", ("0",))):
        sweep, proc = run_sweep("train.py", *QUICK, seeds, cwd=tmp_path, folder=folder)
        runs = [wandb_run(sweep / job) for job in jobs]
        assert len({run["run"]["group"] for run in runs}) == 1  # the jobs of a sweep share a group
        groups.append(runs[0]["run"]["group"])
        for job, logged in enumerate(runs):
            assert logged["run"]["job_type"] == "train"
            assert logged["run"]["tags"] == ["omniglot", "5w1s", "fce"]
            # task, job number and the overrides short enough to join (the experiment and seed left out)
            assert logged["run"]["name"] == f"omniglot_5w1s#{job} debug=tiny,logger=wandb"
            assert logged["config"]["seed"] == job and logged["config"]["tags"] == ["omniglot", "5w1s", "fce"]
            assert any("lr-Adam" in row for row in logged["history"])  # the learning-rate monitor
        assert proc.stdout.count("W&B run: ") == len(jobs)  # once per job
    assert groups[0] != groups[1] and all(g.startswith("omniglot_5w1s-") for g in groups)

    explicit, _ = run_sweep("train.py", *QUICK, "logger.wandb.group=mine", cwd=tmp_path, folder="explicit")
    assert wandb_run(explicit / "0")["run"]["group"] == "mine"


def test_interrupted_run_has_its_whole_config(omniglot_root: Path, tmp_path: Path) -> None:
    """The config and parameter counts are logged when fitting starts, so a run stopped by SIGTERM
    after its second episode shows them."""
    run = tmp_path / "run"
    marker = tmp_path / "step"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            "experiment=omniglot_20w1s",
            "data.train_episodes_per_epoch=50",
            "trainer.max_epochs=1",
            "data.val_episodes=2",
            f"hydra.run.dir={run}",
            "+callbacks.slow._target_=helpers.callbacks.SlowDown",
            f"+callbacks.slow.marker={marker}",
        ],
        cwd=tmp_path,
        env=fresh_environment(pythonpath_with_tests()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not (marker.is_file() and marker.read_text() == "2"):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    logged = wandb_run(run)
    config = logged["config"]
    for key in (
        "data",
        "model",
        "optimizer",
        "trainer",
        "callbacks",
        "logger",
        "tags",
        "seed",
        "optimized_metric",
    ):
        assert key in config, f"{key} missing from the W&B config of an interrupted run"
    assert config["data"]["way"] == 20 and config["trainer"]["max_epochs"] == 1
    params = config["params"]
    assert params["encoder"] > 0 and params["fce"] > 0
    assert params["encoder"] + params["fce"] <= params["total"] <= params["encoder"] + params["fce"] + 1
    assert logged["run"]["job_type"] == "train" and logged["run"]["group"] == "omniglot_20w1s"
    assert "test/acc_final" not in logged["summary"]
    tree = (run / "config_tree.log").read_text()
    assert "CONFIG" in tree and "optimized_metric" in tree and f"Run folder: {run}" in out
