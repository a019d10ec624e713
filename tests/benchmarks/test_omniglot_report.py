"""The results pipeline on a tiny budget: train a two-job sweep, choose on validation, test, report, ship."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.scripts import ROOT, fresh_environment, run_main

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.e2e]
TINY = ["debug=tiny", "data.test_episodes=3", "model.fce_steps=1", "data.augment=0.0,0.5"]


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        command, cwd=ROOT, env=fresh_environment(env), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_sweep_choice_test_report_and_ship(omniglot_root: Path, tmp_path: Path) -> None:
    runs, out, shipped = tmp_path / "runs", tmp_path / "results", tmp_path / "checkpoints"
    env = {"RUNS": str(runs), "TEST_EPISODES": "3", "PYTHON": sys.executable}
    proc = run("bash", "benchmarks/omniglot_results.sh", "vinyals_fce", *TINY, env=env)
    sweep = runs / "vinyals_fce"

    # The choice is the job with the highest validation accuracy in its own CSV log.
    best = {}
    for job in ("0", "1"):
        (log,) = (sweep / job / "csv").glob("version_*/metrics.csv")
        with log.open() as handle:
            best[job] = max(float(r["val/acc"]) for r in csv.DictReader(handle) if r.get("val/acc"))
        stored = torch.load(sweep / job / "checkpoints" / "best.ckpt", weights_only=False)["val_acc_best"]
        assert stored == pytest.approx(best[job])
    expected = max(best, key=lambda j: (best[j], -int(j)))
    assert f"chosen on validation: {sweep / expected / 'checkpoints' / 'best.ckpt'}" in proc.stdout
    settings = ["20w1s", "20w5s", "5w1s", "5w5s"]
    assert sorted(p.name for p in (sweep / "test").iterdir() if p.is_dir()) == settings
    summary = (sweep / "test" / "summary.csv").read_text()  # both evaluation sweeps, one row a setting
    assert [line.split(",")[0] for line in summary.splitlines()[1:]] == settings

    run_main(
        "benchmarks/omniglot_report.py",
        "--runs",
        str(runs),
        "--out",
        str(out),
        "--ship",
        str(shipped),
        cwd=ROOT,
    )
    table = (out / "omniglot.md").read_text()
    for setting in ("5-way 1-shot", "5-way 5-shot", "20-way 1-shot", "20-way 5-shot"):
        assert f"| {setting} |" in table
    chosen_rows = [line for line in table.splitlines() if line.startswith("| vinyals_fce |")]
    assert len(chosen_rows) == 2
    assert [row.rstrip(" |").endswith("yes") for row in chosen_rows] == [expected == "0", expected == "1"]
    assert f"{100 * best[expected]:.2f}" in next(r for r in chosen_rows if r.rstrip(" |").endswith("yes"))
    with (out / "omniglot.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["way"], r["shot"]) for r in rows} == {("5", "1"), ("5", "5"), ("20", "1"), ("20", "5")}
    assert all(r["episodes"] == "3" for r in rows)
    assert (out / "omniglot_curves.png").stat().st_size > 1000

    # The shipped copy is the tested checkpoint without optimiser state, and evaluates to the same number.
    ship_readme = (shipped / "README.md").read_text()
    assert "omniglot-lake-20w1s.ckpt" in ship_readme and "has no tested checkpoint yet" in ship_readme
    copy = torch.load(shipped / "omniglot-vinyals-5w1s.ckpt", weights_only=False)
    assert "optimizer_states" not in copy and copy["hyper_parameters"]["data"]["root"] == "data/omniglot"
    # A file named for a setting stores it: `src/eval.py ckpt_path=<file>` alone evaluates at it.
    for setting, (way, shot) in (("5w1s", ("5", "1")), ("20w1s", ("20", "1"))):
        stored = torch.load(shipped / f"omniglot-vinyals-{setting}.ckpt", weights_only=False)
        row = next(r for r in rows if (r["way"], r["shot"]) == (way, shot))
        data = stored["hyper_parameters"]["data"]
        assert (data["way"], data["shot"], data["test_episodes"]) == (int(way), int(shot), 3)
        evaluated = run_main(
            "eval.py",
            f"ckpt_path={shipped / f'omniglot-vinyals-{setting}.ckpt'}",
            f"hydra.run.dir={tmp_path / 'eval' / setting}",
            cwd=ROOT,
        )
        assert f'"test_acc": {float(row["test_acc"])}' in evaluated.stdout.splitlines()[-1]
        assert f"ckpt_path=checkpoints/omniglot-vinyals-{setting}.ckpt` (the file stores" in ship_readme
