"""Sweeps through Hydra launcher plugins: submitit (local, SLURM config) and joblib."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers.fixture_types import ComposeConfig
from helpers.scripts import run_main, run_sweep

# Two quick jobs: a few episodes of each stage, no loggers.
SWEEP = ["model.fce=true,false", "debug=tiny", "data.test_episodes=3", "logger=none"]


def check_sweep(sweep: Path) -> None:
    """Both jobs finished with their own settings and the summary lists them."""
    fce = [json.loads((sweep / str(job) / "result.json").read_text()) for job in (0, 1)]
    assert [r["status"] for r in fce] == ["ok", "ok"]
    assert [r["fce"] for r in fce] == [True, False]
    assert all(r["episodes"] == 3 for r in fce)
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [(row["job"], row["status"]) for row in rows] == [("0", "ok"), ("1", "ok")]
    assert [row["overrides"].split()[0].lower() for row in rows] == ["model.fce=true", "model.fce=false"]
    markdown = (sweep / "summary.md").read_text()
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 3  # header + two jobs


@pytest.mark.slow
@pytest.mark.e2e
def test_submitit_local_sweep(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, _ = run_sweep(
        "train.py", *SWEEP, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", cwd=tmp_path
    )
    check_sweep(sweep)
    assert list((sweep / ".submitit").iterdir()), "submitit ran the jobs"


@pytest.mark.slow
@pytest.mark.e2e
def test_joblib_sweep(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, _ = run_sweep("train.py", *SWEEP, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", cwd=tmp_path)
    check_sweep(sweep)


@pytest.mark.slow
def test_unknown_launcher_fails_cleanly(tmp_path: Path) -> None:
    proc = run_main("train.py", "-m", "hydra/launcher=nonexistent", "logger=none", cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "hydra/launcher/nonexistent" in proc.stderr and "submitit_slurm" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_slurm_launcher_follows_the_trainer(compose_config: ComposeConfig) -> None:
    """``hydra/launcher=slurm``: one task per GPU, nodes and GPUs from the trainer, documented limits."""
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    cfg = compose_config("train", [*overrides, "hydra.launcher.partition=gpu"], hydra=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert (launcher["gpus_per_node"], launcher["tasks_per_node"], launcher["nodes"]) == (4, 4, 2)
    assert launcher["partition"] == "gpu"
    assert launcher["timeout_min"] > 0 and launcher["array_parallelism"] > 0
