"""Sweeps that answer their question, end to end: checkpoints compared on the test episodes they share, a
seed sweep grouped by seed, with its learning curves and its summary on the W&B dashboard, and a sweep
with a failed job that names it and compares the others."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from helpers.scripts import ROOT, run_sweep
from helpers.wandb_records import read_run
from matchnet.checkpoints import read_checkpoint
from matchnet.module import MatchingNetModule

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.e2e]


def comparisons(sweep: Path) -> list[dict]:
    return list(csv.DictReader((sweep / "comparisons.csv").open()))


def test_eval_sweep_compares_checkpoints_on_shared_episodes(omniglot_root: Path, tmp_path: Path) -> None:
    """The same weights under two names differ by exactly 0; untrained weights are clearly worse."""
    good = ROOT / "checkpoints" / "omniglot-vinyals-20w1s.ckpt"
    copy, untrained = tmp_path / "copy.ckpt", tmp_path / "untrained.ckpt"
    shutil.copy(good, copy)
    checkpoint = read_checkpoint(good)
    torch.manual_seed(0)
    settings = {
        key: checkpoint["hyper_parameters"][key] for key in ("model", "optimizer", "scheduler", "data")
    }
    checkpoint["state_dict"] = MatchingNetModule(**settings).state_dict()
    torch.save(checkpoint, untrained)
    sweep, _ = run_sweep(
        "eval.py", f"ckpt_path={good},{copy},{untrained}", "data.test_episodes=10", cwd=tmp_path
    )
    assert (sweep / "0" / "test_episodes.csv").read_text() == (sweep / "1" / "test_episodes.csv").read_text()
    markdown = (sweep / "summary.md").read_text()
    same = f"- ckpt_path: {copy} − {good}: no difference detected (+0.00 points, 95% CI 0.00 to 0.00, p = 1; "
    assert same + "10 shared episodes)" in markdown
    worse = comparisons(sweep)[1]
    assert (worse["level"], worse["reference"], worse["verdict"]) == (str(untrained), str(good), "difference")
    assert float(worse["ci_high"]) < 0 and float(worse["p_value"]) < 0.001 and worse["pairs"] == "10"
    assert f"- ckpt_path: {untrained} − {good}: -" in markdown


def test_seed_sweep_groups_by_seed_with_curves_and_dashboard(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, _ = run_sweep(
        "train.py",
        *("seed=0,1", "model.fce=true,false", "experiment=omniglot_5w1s"),
        # Not debug=tiny: this test checks the W&B groups that the default logger settings give.
        *("trainer.max_epochs=2", "data.train_episodes_per_epoch=2", "data.val_episodes=2"),
        "data.test_episodes=3",
        cwd=tmp_path,
    )
    results = [json.loads((sweep / str(job) / "result.json").read_text()) for job in range(4)]
    assert [(r["seed"], r["fce"], r["episode_seed"]) for r in results] == [
        (0, True, 0),
        (0, False, 0),
        (1, True, 0),
        (1, False, 0),
    ]
    # every seed met the same test episodes
    identities = {(sweep / str(job) / "test_episodes.json").read_text() for job in range(4)}
    assert len(identities) == 1
    markdown = (sweep / "summary.md").read_text()
    assert "| arm | seed=0 | seed=1 | mean (%) | sd |" in markdown
    true_row = next(line for line in markdown.splitlines() if line.startswith("| model.fce=True |"))
    per_seed = [f"{100 * results[job]['test_acc']:.2f}" for job in (0, 2)]
    assert true_row.startswith(f"| model.fce=True | {per_seed[0]} | {per_seed[1]} | ")
    rows = comparisons(sweep)
    assert [(r["key"], r["level"], r["reference"], r["over"], r["pairs"]) for r in rows] == [
        ("model.fce", "True", "False", "episodes", "3"),  # Hydra writes the flags so
        ("model.fce", "True", "False", "seeds", "2"),
    ]
    assert (
        "3 shared episodes, each the mean over 2 seeds)" in markdown
        and "2 seeds, paired by seed)" in markdown
    )
    assert "![Validation accuracy against training episodes](summary.png)" in markdown
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"

    (job_run,) = (sweep / "0").glob("wandb/offline-run-*/run-*.wandb")
    (summary_run,) = sweep.glob("wandb/offline-run-*/run-*.wandb")
    logged = read_run(summary_run)
    assert logged["run"]["group"] == read_run(job_run)["run"]["group"]
    assert logged["run"]["job_type"] == "summary"
    (history,) = logged["history"]  # nested keys flattened: sweep/jobs/_type, ...
    assert history["sweep/jobs/_type"] == history["sweep/comparisons/_type"] == "table-file"
    assert history["sweep/learning_curves/_type"] == "image-file"
    files = summary_run.parent / "files"
    table = json.loads((files / history["sweep/jobs/path"]).read_text())
    assert [row[0] for row in table["data"]] == ["0", "1", "2", "3"]
    assert (files / history["sweep/learning_curves/path"]).read_bytes()[:4] == b"\x89PNG"


def test_sweep_with_a_failed_job_names_it_and_compares_the_rest(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, _ = run_sweep(
        "train.py",
        "model.distance=cosine,bogus,euclidean",
        "debug=tiny",
        "data.test_episodes=4",
        cwd=tmp_path,
    )
    markdown = (sweep / "summary.md").read_text()
    assert markdown.startswith(
        "Sweep: 3 jobs, 2 ok, 1 failed. Swept: model.distance (cosine, bogus, euclidean)."
    )
    error = "model.distance='bogus' is not a known distance"
    assert "Failed: job 1 (model.distance=bogus " in markdown and error in markdown
    assert f"- model.distance: bogus − cosine: cannot compare: job 1 failed: {error}" in markdown
    rows = comparisons(sweep)
    assert [(r["level"], r["reference"], r["over"], r["pairs"]) for r in rows] == [
        ("bogus", "cosine", "", ""),
        ("euclidean", "cosine", "episodes", "4"),
    ]
    assert "- model.distance: euclidean − cosine: " in markdown and "4 shared episodes)" in markdown
    assert "![Validation accuracy against training episodes](summary.png)" in markdown
