"""Hyper-parameter search with the Optuna sweeper: tuned on validation, summarised, failures recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from helpers.scripts import run_main

# Three trials of a few episodes each (debug=limit); small test stages.
SEARCH = [
    "-m",
    "hparams_search=omniglot_optuna",
    "debug=limit",
    "hydra.sweeper.n_trials=3",
    "trainer.limit_train_batches=3",
    "trainer.limit_test_batches=3",
]

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.e2e]


def job_results(sweep: Path) -> dict[str, dict]:
    return {
        job.name: json.loads((job / "result.json").read_text())
        for job in sweep.iterdir()
        if job.is_dir() and job.name.isdigit()
    }


def best_validation(job_dir: Path) -> float:
    """The largest ``val/acc`` the job's CSV log holds (what ``val/acc_best`` tracks)."""
    (log,) = (job_dir / "csv").glob("version_*/metrics.csv")  # one start of the job: version_0
    rows = list(csv.DictReader(log.open()))
    return max(float(row["val/acc"]) for row in rows if row.get("val/acc"))


def test_optuna_search_returns_validation_metric(omniglot_root: Path, tmp_path: Path) -> None:
    import optuna

    sweep = tmp_path / "search"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    proc = run_main(
        "train.py",
        *SEARCH,
        "trainer.limit_val_batches=2",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    results = job_results(sweep)
    assert sorted(results) == ["0", "1", "2"]
    assert all(r["status"] == "ok" and r["optimized_metric"] == "val/acc_best" for r in results.values())
    for job, result in results.items():  # the job's value is its best validation accuracy ...
        assert result["optimized_value"] == pytest.approx(best_validation(sweep / job))

    # ... and that value, not the test accuracy, is what Hydra handed to Optuna for each trial.
    study = optuna.load_study(study_name="matchnet_omniglot", storage=storage)
    assert len(study.trials) == 3
    for trial in study.trials:
        job = results[str(trial.number)]
        assert trial.value == pytest.approx(job["optimized_value"])
        for key, value in trial.params.items():
            assert any(o.startswith(f"{key}=") and o.split("=", 1)[1] == str(value) for o in job["overrides"])
    best_job = max(results, key=lambda j: results[j]["optimized_value"])
    optimum = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert optimum["best_value"] == pytest.approx(results[best_job]["optimized_value"])

    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    values = [float(r["optimized_value"]) for r in rows]
    assert values == sorted(values, reverse=True) and len(rows) == 3
    assert rows[0]["best"] == "best" and rows[0]["job"] == best_job
    assert [r["best"] for r in rows[1:]] == ["", ""]
    assert rows[0]["test_acc"] == f"{100 * results[best_job]['test_acc']:.2f}"
    assert [r["test_acc"] for r in rows[1:]] == ["", ""]  # only the chosen trial meets the test set
    assert all(r["parameters"].count("=") == 9 for r in rows)  # the nine swept settings
    markdown = (sweep / "summary.md").read_text()
    assert f"Best trial: job {best_job} (val/acc_best = {rows[0]['optimized_value']})" in markdown
    assert "Test accuracy of the best trial only" in markdown and markdown in proc.stdout


def test_failed_trial_is_recorded_and_search_goes_on(omniglot_root: Path, tmp_path: Path) -> None:
    """Trials asked two at a time, no loggers; trials without validation cannot be scored and fail cleanly.
    (The joblib launcher, which runs such a batch in parallel, has its own test in test_launchers.py.)"""
    sweep = tmp_path / "search"
    run_main(
        "train.py",
        *SEARCH,
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.sampler.seed=3",
        "trainer.limit_val_batches=choice(0,2)",  # joins the search space
        "logger=none",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    results = job_results(sweep)
    assert sorted(results) == ["0", "1", "2", "3"]
    failed = [r for r in results.values() if r["status"] == "failed"]
    ok = [r for r in results.values() if r["status"] == "ok"]
    assert failed and ok, "the seed should draw both settings"
    assert all(
        "trainer.limit_val_batches=" in row["parameters"]
        for row in csv.DictReader((sweep / "summary.csv").open())
    )
    for result in failed:
        assert "trainer.limit_val_batches=0" in result["overrides"]
        assert "optimized_metric='val/acc_best' was not logged" in result["error"]
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["status"] == "ok" for r in rows] == [True] * len(ok) + [False] * len(failed)
    assert rows[0]["best"] == "best" and rows[-1]["status"].startswith("failed: optimized_metric")
    assert not any((sweep / job / "wandb").exists() for job in results)
