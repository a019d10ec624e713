"""The sweep summary: one row per job, failures listed; comparisons, seeds, grid and curves of grid sweeps."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from matchnet.comparisons import describe, paired_difference
from matchnet.errors import MatchnetError
from matchnet.summary import SweepSummary, read_curve


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
    (tmp_path / "10").mkdir()  # numbered jobs in number order
    (tmp_path / "5w1s").mkdir()  # a job folder named by hydra.sweep.subdir
    (tmp_path / "5w1s" / "result.json").write_text(json.dumps(ok))
    (tmp_path / "notes").mkdir()  # not a job: no number, no result
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [r["job"] for r in rows] == ["0", "1", "2", "10", "5w1s"]
    assert rows[0]["test_acc"] == "98.12" and rows[0]["test_acc_ci95"] == "0.31"
    assert rows[1]["status"] == "failed: data.shot=0 must be >= 1"
    assert rows[2]["status"] == "failed: no result.json"
    markdown = (tmp_path / "summary.md").read_text()
    assert "| 0 | data.shot=1 | ok | 98.12 | 0.31 | 1000 | 5000 |" in markdown


def test_search_summary_sorts_by_validation_and_tests_only_the_best(tmp_path: Path) -> None:
    def ok(lr: str, value: float, test: float) -> dict:
        return {
            "status": "ok",
            "overrides": [f"optimizer.lr={lr}", "data.shot=2", "debug=limit"],
            "optimized_metric": "val/acc_best",
            "optimized_value": value,
            "test_acc": test,
            "test_acc_ci95": 0.01,
            "episodes": 20,
        }

    results = {
        "0": ok("0.001", 0.70, 0.99),  # the best test accuracy, but not the best on validation
        "1": ok("0.002", 0.80, 0.60),
        "2": {"status": "failed", "overrides": ["optimizer.lr=0.003", "data.shot=1"], "error": "boom"},
    }
    for job, payload in results.items():
        (tmp_path / job).mkdir()
        (tmp_path / job / "result.json").write_text(json.dumps(payload))
    config = {
        "hydra": {
            "sweep": {"dir": str(tmp_path)},
            "sweeper": {"direction": "maximize", "params": {"optimizer.lr": "interval(0.001, 0.01)"}},
            "overrides": {"task": ["data.shot=choice(1,2)", "debug=limit"]},
        }
    }
    SweepSummary().on_multirun_end(OmegaConf.create(config))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert [(r["rank"], r["job"], r["best"]) for r in rows] == [
        ("1", "1", "best"),
        ("2", "0", ""),
        ("", "2", ""),
    ]
    assert [r["parameters"] for r in rows] == [
        "optimizer.lr=0.002 data.shot=2",
        "optimizer.lr=0.001 data.shot=2",
        "optimizer.lr=0.003 data.shot=1",
    ]
    assert [r["optimized_value"] for r in rows] == ["0.8000", "0.7000", ""]
    assert [r["test_acc"] for r in rows] == ["60.00", "", ""]
    assert rows[2]["status"] == "failed: boom"
    markdown = (tmp_path / "summary.md").read_text()
    assert "Best trial: job 1 (val/acc_best = 0.8000)" in markdown
    assert "Test accuracy of the best trial only: 60.00% ± 1.00" in markdown and "99.00" not in markdown


def test_search_parameters_are_every_sweep_of_the_command_line(tmp_path: Path) -> None:
    """A plain comma list is searched by the sweeper as choice(...) is, so it is a parameter too; the
    keys come from Hydra's parser (quoted values with '=' inside, prefixes)."""
    (tmp_path / "0").mkdir()
    overrides = ["model.fce=true", "optimizer.lr=0.002", "+tag='a=b'", "debug=limit"]
    payload = {
        "status": "ok",
        "overrides": overrides,
        "optimized_metric": "val/acc_best",
        "optimized_value": 0.5,
        "test_acc": 0.9,
        "test_acc_ci95": 0.01,
        "episodes": 20,
    }
    (tmp_path / "0" / "result.json").write_text(json.dumps(payload))
    config = {
        "hydra": {
            "sweep": {"dir": str(tmp_path)},
            "sweeper": {"direction": "maximize", "params": {"optimizer.lr": "interval(0.001, 0.01)"}},
            "overrides": {"task": ["model.fce=true,false", "+tag='a=b'", "debug=limit"]},
        }
    }
    SweepSummary().on_multirun_end(OmegaConf.create(config))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text())))
    assert rows[0]["parameters"] == "model.fce=true optimizer.lr=0.002"


# ------------------------------------------------------------------ grid sweeps: comparisons, seeds, curves

EPISODE_SETTINGS = {"data_module": "matchnet.data.omniglot.OmniglotDataModule", "way": 5, "shot": 1}


def write_job(
    sweep: Path,
    name: str,
    overrides: list[str],
    accuracies: list[float] | None,
    settings: dict | None = None,
    curve: list[tuple[int, float]] = (),
) -> Path:
    """A job folder as a finished test leaves it (``accuracies`` None: a failed job): ``result.json``,
    the per-episode results and, when ``curve`` is given, a CSV log with validations at those steps."""
    from matchnet.comparisons import write_test_episodes

    folder = sweep / name
    folder.mkdir(parents=True)
    if accuracies is None:
        result = {"status": "failed", "overrides": overrides, "error": "the loss became nan"}
    else:
        values = np.asarray(accuracies)
        ci = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
        result = {"status": "ok", "overrides": overrides, "test_acc": values.mean(), "test_acc_ci95": ci}
        result |= {"episodes": values.size, "train_episodes": 40, "world_size": 2}
        write_test_episodes(folder, range(values.size), accuracies, settings or EPISODE_SETTINGS)
    (folder / "result.json").write_text(json.dumps(result))
    if curve:
        log = folder / "csv" / "version_0"
        log.mkdir(parents=True)
        rows = ["epoch,step,train/loss_epoch,val/acc"]
        rows += [f"0,{step},,{acc}" for step, acc in curve]
        rows.append(f"0,{curve[-1][0]},1.5,")  # the last training epoch's row
        (log / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def summarise_sweep(sweep: Path, config: dict | None = None) -> str:
    """Run the summary callback on ``sweep``; its ``summary.md``."""
    SweepSummary().on_multirun_end(OmegaConf.create(config or {"hydra": {"sweep": {"dir": str(sweep)}}}))
    return (sweep / "summary.md").read_text()


def comparison_rows(sweep: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((sweep / "comparisons.csv").read_text())))


RNG = np.random.default_rng(0)
GOOD = np.clip(0.9 + 0.05 * RNG.standard_normal(40), 0, 1).round(2).tolist()
BAD = np.clip(0.5 + 0.1 * RNG.standard_normal(40), 0, 1).round(2).tolist()


def test_paired_difference_is_scipys_paired_t_test() -> None:
    a = np.array([0.92, 0.88, 0.96, 0.84, 0.9, 0.94, 0.86, 0.98])
    b = np.array([0.9, 0.86, 0.9, 0.86, 0.84, 0.92, 0.8, 0.94])
    difference = paired_difference(a, b)
    reference = stats.ttest_rel(a, b)
    assert difference.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    d = a - b  # the t interval of the mean difference, from its definition
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    assert (difference.low, difference.high) == pytest.approx((d.mean() - half, d.mean() + half), rel=1e-9)
    assert difference.mean == pytest.approx(d.mean()) and difference.n == 8 and difference.detected
    assert "+3.25 points (95% CI 0.90 to 5.60, p = 0.014; 8 shared episodes)" in describe(
        difference, "shared episodes"
    )


def test_paired_difference_of_equal_samples_is_exactly_zero() -> None:
    difference = paired_difference(GOOD, GOOD)
    assert (difference.mean, difference.low, difference.high, difference.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not difference.detected
    with pytest.raises(ValueError, match="at least two pairs"):
        paired_difference([0.5], [0.4])
    with pytest.raises(ValueError, match="one length"):
        paired_difference([0.5, 0.6], [0.4])


def test_identical_arms_differ_by_exactly_zero(tmp_path: Path) -> None:
    write_job(tmp_path, "0", ["ckpt_path=a.ckpt"], GOOD)
    write_job(tmp_path, "1", ["ckpt_path=b.ckpt"], GOOD)  # the same weights under another name
    markdown = summarise_sweep(tmp_path)
    line = "- ckpt_path: b.ckpt − a.ckpt: no difference detected (+0.00 points, 95% CI 0.00 to 0.00, p = 1; "
    assert line + "40 shared episodes)" in markdown
    (row,) = comparison_rows(tmp_path)
    assert float(row["difference"]) == 0.0 and float(row["ci_low"]) <= 0.0 <= float(row["ci_high"])
    assert row["verdict"] == "no difference detected"


def test_a_worse_arm_gives_a_significant_difference_of_its_sign(tmp_path: Path) -> None:
    write_job(tmp_path, "0", ["model.fce=true"], GOOD)
    write_job(tmp_path, "1", ["model.fce=false"], BAD)  # e.g. an untrained model
    markdown = summarise_sweep(tmp_path)
    expected = paired_difference(GOOD, BAD)
    assert f"- model.fce: true − false: {describe(expected, 'shared episodes')}" in markdown
    (row,) = comparison_rows(tmp_path)
    assert (row["level"], row["reference"], row["verdict"]) == ("true", "false", "difference")
    assert float(row["ci_low"]) > 30 and float(row["p_value"]) < 1e-6  # true better by ~40 points


def test_jobs_that_met_other_episodes_are_not_paired(tmp_path: Path) -> None:
    shots, seeds = tmp_path / "shots", tmp_path / "episode_seeds"
    write_job(shots, "0", ["data.shot=1"], GOOD)
    write_job(shots, "1", ["data.shot=5"], BAD, settings=EPISODE_SETTINGS | {"shot": 5})
    markdown = summarise_sweep(shots)
    not_paired = (
        "- data.shot: 5 − 1: not paired: the test episodes differ (data.shot: 5 vs 1) (jobs 1 and 0); "
    )
    bad, good = (f"{100 * np.mean(v):.2f}" for v in (BAD, GOOD))
    assert f"{not_paired}unpaired, {bad} ± " in markdown
    assert f"vs {good} ± " in markdown and "(each job's own 95% CI): difference -" in markdown
    write_job(seeds, "0", ["data.episode_seed=0"], GOOD, settings=EPISODE_SETTINGS | {"episode_seed": 0})
    write_job(seeds, "1", ["data.episode_seed=1"], GOOD, settings=EPISODE_SETTINGS | {"episode_seed": 1})
    assert "the test episodes differ (data.episode_seed: 1 vs 0)" in summarise_sweep(seeds)
    for sweep in (shots, seeds):
        (row,) = comparison_rows(sweep)
        assert row["difference"] == "" and row["verdict"].startswith("not paired")


def test_two_by_two_sweep_has_grid_comparisons_and_curves(tmp_path: Path) -> None:
    shots = {"1": EPISODE_SETTINGS, "5": EPISODE_SETTINGS | {"shot": 5}}
    grid = [("true", "1", GOOD), ("true", "5", GOOD), ("false", "1", BAD), ("false", "5", GOOD)]
    for job, (fce, shot, accuracies) in enumerate(grid):
        curve = [(9, 0.5), (19, 0.6 + 0.1 * job)]
        write_job(
            tmp_path, str(job), [f"model.fce={fce}", f"data.shot={shot}"], accuracies, shots[shot], curve
        )
    markdown = summarise_sweep(tmp_path)
    assert markdown.startswith(
        "Sweep: 4 jobs, 4 ok, 0 failed. Swept: model.fce (true, false), data.shot (1, 5)."
    )
    assert sum(line.startswith("| ") and "| ok |" in line for line in markdown.splitlines()) == 4
    assert "## model.fce × data.shot" in markdown
    good, bad = f"{100 * np.mean(GOOD):.2f} ± ", f"{100 * np.mean(BAD):.2f} ± "
    rows = [line for line in markdown.splitlines() if line.startswith(("| true |", "| false |"))]
    assert len(rows) == 2 and rows[0].count(good) == 2 and rows[1].startswith(f"| false | {bad}")
    at_one = describe(paired_difference(GOOD, BAD), "shared episodes")
    assert f"- model.fce: true − false at data.shot=1: {at_one}" in markdown
    assert "- model.fce: true − false at data.shot=5: no difference detected (+0.00 points" in markdown
    assert markdown.count("- data.shot: 5 − 1 at model.fce=") == 2 and "not paired" in markdown
    assert "![Validation accuracy against training episodes](summary.png)" in markdown
    assert (tmp_path / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert [r["at"] for r in comparison_rows(tmp_path)] == [
        "data.shot=1",
        "data.shot=5",
        "model.fce=true",
        "model.fce=false",
    ]


def test_seed_sweep_groups_jobs_by_seed(tmp_path: Path) -> None:
    # each seed shifts each arm by its own amount: training luck that differs between the arms
    shift = {
        "0": {"true": 0.0, "false": 0.01},
        "1": {"true": 0.02, "false": -0.02},
        "2": {"true": -0.03, "false": 0.04},
    }
    job = 0
    per_seed = {"true": [], "false": []}
    for seed, deltas in shift.items():
        for fce, base in (("true", GOOD), ("false", BAD)):
            accuracies = np.clip(np.array(base) + deltas[fce], 0, 1).tolist()
            per_seed[fce].append(np.mean(accuracies))
            write_job(tmp_path, str(job), [f"seed={seed}", f"model.fce={fce}"], accuracies, curve=[(9, 0.5)])
            job += 1
    markdown = summarise_sweep(tmp_path)
    assert "## Seeds" in markdown and "| arm | seed=0 | seed=1 | seed=2 | mean (%) | sd |" in markdown
    true_row = next(line for line in markdown.splitlines() if line.startswith("| model.fce=true |"))
    values = per_seed["true"]
    mean, sd = 100 * np.mean(values), 100 * np.std(values, ddof=1)
    assert true_row.endswith(f"| {mean:.2f} | {sd:.2f} |")
    over_seeds = paired_difference(per_seed["true"], per_seed["false"])
    expected = f"- model.fce: true − false: {describe(over_seeds, 'seeds, paired by seed')}"
    assert expected in markdown
    assert "shared episodes, each the mean over 3 seeds" in markdown
    rows = comparison_rows(tmp_path)
    assert [(r["over"], r["pairs"]) for r in rows] == [("episodes", "40"), ("seeds", "3")]
    assert float(rows[1]["p_value"]) == pytest.approx(
        stats.ttest_rel(per_seed["true"], per_seed["false"]).pvalue
    )
    assert (tmp_path / "summary.png").is_file()


def test_failed_job_is_named_and_the_rest_compared(tmp_path: Path) -> None:
    write_job(tmp_path, "0", ["model.fce=true", "data.shot=1"], GOOD)
    write_job(tmp_path, "1", ["model.fce=true", "data.shot=5"], GOOD)
    write_job(tmp_path, "2", ["model.fce=false", "data.shot=1"], BAD)
    write_job(tmp_path, "3", ["model.fce=false", "data.shot=5"], None)
    (tmp_path / "4").mkdir()  # died before writing anything: no overrides known
    markdown = summarise_sweep(tmp_path)
    assert "Sweep: 5 jobs, 3 ok, 2 failed." in markdown
    assert "Failed: job 3 (model.fce=false data.shot=5): the loss became nan." in markdown
    assert "Failed: job 4 (overrides unknown): no result.json." in markdown
    assert "- model.fce: true − false at data.shot=1: +" in markdown
    assert (
        "- model.fce: true − false at data.shot=5: cannot compare: job 3 failed: the loss became nan"
        in markdown
    )
    assert "| false | " in markdown and "failed (job 3)" in markdown
    assert "No job left a validation curve" in markdown and not (tmp_path / "summary.png").exists()


def test_job_without_per_episode_results_is_not_compared(tmp_path: Path) -> None:
    write_job(tmp_path, "0", ["model.fce=true"], GOOD)
    write_job(tmp_path, "1", ["model.fce=false"], BAD)
    (tmp_path / "1" / "test_episodes.csv").unlink()
    markdown = summarise_sweep(tmp_path)
    assert "cannot compare: job 1 kept no per-episode test results (test_episodes.csv)" in markdown


def test_read_test_episodes_names_bad_files(tmp_path: Path) -> None:
    from matchnet.comparisons import read_test_episodes, write_test_episodes

    write_test_episodes(tmp_path, [0, 1, 2], [0.5, 0.75, 1.0], EPISODE_SETTINGS)
    episodes = read_test_episodes(tmp_path)
    assert episodes.numbers.tolist() == [0, 1, 2] and episodes.accuracies.tolist() == [0.5, 0.75, 1.0]
    assert episodes.settings == EPISODE_SETTINGS
    (tmp_path / "test_episodes.csv").write_text("episode,accuracy\n0,0.5\n1,lots\n")
    with pytest.raises(MatchnetError, match="malformed per-episode test results"):
        read_test_episodes(tmp_path)
    (tmp_path / "test_episodes.csv").write_text("episode,accuracy\n0,0.5\n")
    with pytest.raises(MatchnetError, match="has 1 episodes but test_episodes.json says 3"):
        read_test_episodes(tmp_path)
    (tmp_path / "test_episodes.json").unlink()
    with pytest.raises(MatchnetError, match="test_episodes.json does not exist"):
        read_test_episodes(tmp_path)


def test_learning_curve_counts_training_episodes(tmp_path: Path) -> None:
    log = tmp_path / "csv"
    (log / "version_0").mkdir(parents=True)
    (log / "version_1").mkdir()  # a resumed run's log continues the first
    (log / "version_0" / "metrics.csv").write_text("step,train/loss_epoch,val/acc\n4,,0.5\n4,2.0,\n")
    (log / "version_1" / "metrics.csv").write_text("step,train/loss_epoch,val/acc\n9,,0.7\n9,1.5,\n9,,\n")
    assert read_curve(tmp_path) == [(5, 0.5), (10, 0.7)]
    assert read_curve(tmp_path, processes=2) == [(10, 0.5), (20, 0.7)]  # DDP: an episode per process


def test_seed_sweep_with_a_failed_seed_compares_the_seeds_both_arms_finished(tmp_path: Path) -> None:
    per_seed = {"true": [], "false": []}
    for job, (seed, fce, base, delta) in enumerate(
        [("0", "true", GOOD, 0.0), ("0", "false", BAD, 0.01), ("1", "true", GOOD, 0.02)]
        + [("1", "false", BAD, -0.03), ("2", "true", GOOD, -0.01), ("2", "false", None, 0.0)]
    ):
        accuracies = None if base is None else np.clip(np.array(base) + delta, 0, 1).tolist()
        if accuracies is not None and seed != "2":
            per_seed[fce].append(np.mean(accuracies))
        write_job(tmp_path, str(job), [f"seed={seed}", f"model.fce={fce}"], accuracies)
    markdown = summarise_sweep(tmp_path)
    assert "Failed: job 5 (seed=2 model.fce=false): the loss became nan." in markdown
    false_row = next(line for line in markdown.splitlines() if line.startswith("| model.fce=false |"))
    assert "| failed (job 5) |" in false_row
    over_seeds = paired_difference(per_seed["true"], per_seed["false"])
    left_out = " Left out: job 5 failed: the loss became nan."
    expected = f"- model.fce: true − false: {describe(over_seeds, 'seeds, paired by seed')}{left_out}"
    assert expected in markdown
    assert "shared episodes, each the mean over 2 seeds)" in markdown
    assert [(r["over"], r["pairs"]) for r in comparison_rows(tmp_path)] == [
        ("episodes", "40"),
        ("seeds", "2"),
    ]


def test_a_job_with_an_unreadable_result_is_failed_and_the_rest_summarised(tmp_path: Path) -> None:
    write_job(tmp_path, "0", ["model.fce=true"], GOOD)
    write_job(tmp_path, "1", ["model.fce=false"], BAD)
    (tmp_path / "1" / "result.json").write_text('{"status": "ok", "test_a')  # cut short
    (tmp_path / "1" / ".hydra").mkdir()
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- model.fce=false\n")
    markdown = summarise_sweep(tmp_path)
    assert "Sweep: 2 jobs, 1 ok, 1 failed." in markdown
    assert "Failed: job 1 (model.fce=false): result.json is unreadable (JSONDecodeError: " in markdown
    assert "- model.fce: true − false: cannot compare: job 1 failed: result.json is unreadable" in markdown
