"""The ``debug=`` options: each composes with any experiment, leaves W&B off unless asked, and runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from helpers.fixture_types import ComposeConfig
from helpers.paths import CONF
from helpers.scripts import last_json, run_in

DEBUG = ("fdr", "limit", "overfit", "profiler", "tiny")
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_composes_with_every_experiment_without_wandb(
    compose_config: ComposeConfig, debug: str
) -> None:
    for experiment in EXPERIMENTS:
        cfg = compose_config("train", [f"experiment={experiment}", f"debug={debug}"])
        assert "wandb" not in cfg.logger and "csv" in cfg.logger, experiment
        assert cfg.trainer.accelerator == "cpu" and cfg.data.num_workers == 0
        assert cfg.task_name == experiment  # the experiment stays what it was
        asked = compose_config("train", [f"experiment={experiment}", f"debug={debug}", "logger=wandb"])
        assert asked.logger.wandb._target_.endswith("WandbLogger"), experiment


def metrics(run: Path) -> list[dict[str, str]]:
    (log,) = (run / "csv").glob("version_*/metrics.csv")  # one start of the run: version_0
    return list(csv.DictReader(log.open()))


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("debug", DEBUG)
def test_debug_option_runs(omniglot_root: Path, tmp_path: Path, debug: str) -> None:
    run = tmp_path / "run"
    result = last_json(run_in(run, "train.py", f"debug={debug}"))
    assert not (run / "wandb").exists()
    assert result["episodes"] >= 1
    if debug == "fdr":
        assert result["train_episodes"] == 1 and result["ckpt_path"] is None
    elif debug == "limit":
        # The tested (best validation) checkpoint's episodes: after epoch 1 or 2 of 5 episodes each.
        assert result["train_episodes"] in {5, 10} and result["episodes"] == 5
        assert Path(result["ckpt_path"]).is_file()
    elif debug == "overfit":
        losses = [float(row["train/loss_step"]) for row in metrics(run) if row.get("train/loss_step")]
        # 60 steps logged; the tested checkpoint is the best of the validations after 20, 40 and 60 steps.
        assert len(losses) == 60 and result["train_episodes"] in {20, 40, 60}
        assert sum(losses[-5:]) / 5 < 0.2 * sum(losses[:5]) / 5, f"the loss did not fall: {losses}"
    elif debug == "tiny":
        # Every episode of the data set's own counts; the tested checkpoint is after epoch 1 or 2.
        assert result["train_episodes"] in {3, 6} and result["episodes"] == 6
        assert Path(result["ckpt_path"]).is_file()
    else:
        report = (run / "fit-profile.txt").read_text()
        assert "Profiler Report" in report and "run_training_epoch" in report
        assert result["train_episodes"] == 20
