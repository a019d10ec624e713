"""The ``debug=`` options: each composes with any experiment, leaves W&B off unless asked, and runs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from scripts import last_json, run_main

ROOT = Path(__file__).resolve().parents[1]
DEBUG = ("fdr", "limit", "overfit", "profiler")
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("debug", DEBUG)
def test_debug_composes_with_every_experiment_without_wandb(debug: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for experiment in EXPERIMENTS:
            cfg = compose("train", overrides=[f"experiment={experiment}", f"debug={debug}"])
            assert "wandb" not in cfg.logger and "csv" in cfg.logger, experiment
            assert cfg.trainer.accelerator == "cpu" and cfg.data.num_workers == 0
            assert cfg.task_name == experiment  # the experiment stays what it was
            asked = compose("train", overrides=[f"experiment={experiment}", f"debug={debug}", "logger=wandb"])
            assert asked.logger.wandb._target_.endswith("WandbLogger"), experiment


def metrics(run: Path) -> list[dict[str, str]]:
    (log,) = (run / "csv").glob("version_*/metrics.csv")  # one start of the run: version_0
    return list(csv.DictReader(log.open()))


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("debug", DEBUG)
def test_debug_option_runs(omniglot_root: Path, tmp_path: Path, debug: str) -> None:
    run = tmp_path / "run"
    proc = run_main("train.py", f"debug={debug}", f"hydra.run.dir={run}", cwd=tmp_path)
    result = last_json(proc)
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
    else:
        report = (run / "fit-profile.txt").read_text()
        assert "Profiler Report" in report and "run_training_epoch" in report
        assert result["train_episodes"] == 20
