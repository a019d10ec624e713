"""End to end: src/train.py, src/eval.py and a sweep, run as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers.scripts import last_json, run_in, run_main, run_sweep
from helpers.wandb_records import read_run

pytestmark = [pytest.mark.data, pytest.mark.slow]


def test_train_then_eval_same_accuracy(omniglot_root: Path, tmp_path: Path) -> None:
    result = last_json(run_in(tmp_path / "run", "train.py", "debug=tiny"))
    for key in ("test_acc", "test_acc_ci95", "episodes", "way", "shot", "fce", "distance", "split"):
        assert key in result
    assert result["episodes"] == 6 and result["way"] == 5 and result["shot"] == 1
    assert result["fce"] is True and result["distance"] == "cosine" and result["split"] == "vinyals"
    assert 0.0 <= result["test_acc"] <= 1.0 and result["test_acc_ci95"] >= 0.0
    ckpt = Path(result["ckpt_path"])
    assert ckpt.is_file() and ckpt.parent == tmp_path / "run" / "checkpoints"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test_acc"] == result["test_acc"]

    evaluated = last_json(run_in(tmp_path / "eval", "eval.py", f"ckpt_path={ckpt}"))
    assert evaluated["test_acc"] == result["test_acc"]
    assert evaluated["test_acc_ci95"] == result["test_acc_ci95"]
    assert evaluated["episodes"] == 6 and evaluated["train_episodes"] == result["train_episodes"]

    more = run_in(tmp_path / "eval9", "eval.py", f"ckpt_path={ckpt}", "data.test_episodes=9")
    assert last_json(more)["episodes"] == 9


@pytest.mark.e2e
def test_sweep_writes_jobs_wandb_runs_and_summary(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, proc = run_sweep(
        "train.py",
        "model.fce=true,false",
        "data.shot=1,5",
        "trainer.fast_dev_run=true",
        "data.test_episodes=4",
        cwd=tmp_path,
    )
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        result = json.loads((job / "result.json").read_text())
        assert result["status"] == "ok"
        seen.add((result["fce"], result["shot"]))
        runs = list(job.glob("wandb/offline-run-*/run-*.wandb"))
        assert len(runs) == 1, f"expected one W&B run in {job}, found {runs}"
        logged = read_run(runs[0])
        assert logged["summary"]["test_acc"] == pytest.approx(result["test_acc"])
        assert any("test/acc_final" in row for row in logged["history"])
    assert seen == {(True, 1), (True, 5), (False, 1), (False, 5)}
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)
    assert {row["overrides"].lower() for row in rows} == {
        f"model.fce={f} data.shot={s} trainer.fast_dev_run=true data.test_episodes=4"
        for f in ("true", "false")
        for s in (1, 5)
    }
    markdown = (sweep / "summary.md").read_text()
    assert sum(line.startswith("| ") and "| ok |" in line for line in markdown.splitlines()) == 4  # the jobs
    assert "## model.fce × data.shot" in markdown  # and the two swept keys as a grid
    assert "| ok |" in markdown and "| ok |" in proc.stdout


@pytest.mark.e2e
def test_distance_sweep(omniglot_root: Path, tmp_path: Path) -> None:
    sweep, _ = run_sweep(
        "train.py", "model.distance=cosine,euclidean,dot", "debug=fdr", "logger=none", cwd=tmp_path
    )
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["status"] for row in rows] == ["ok"] * 3
    distances = [json.loads((sweep / str(i) / "result.json").read_text())["distance"] for i in range(3)]
    assert distances == ["cosine", "euclidean", "dot"]


@pytest.mark.parametrize(
    ("script", "overrides", "needle"),
    [
        ("train.py", ["model.distance=manhattan"], "model.distance"),
        ("train.py", ["model.fce_steps=-1"], "model.fce_steps"),
        ("eval.py", ["ckpt_path=/nonexistent/best.ckpt"], "ckpt_path=/nonexistent/best.ckpt"),
        ("eval.py", [], "ckpt_path"),
    ],
)
def test_bad_settings_fail_cleanly(
    omniglot_root: Path, tmp_path: Path, script: str, overrides: list[str], needle: str
) -> None:
    proc = run_main(
        script, *overrides, "logger=none", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path, check=False
    )
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
