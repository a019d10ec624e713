"""A Hydra callback that summarises a sweep in its folder: ``summary.md``, ``summary.csv`` and more.

A grid sweep (``src/train.py -m model.fce=true,false data.shot=1,5``) gets

- one row per job with its test accuracy and 95% CI (``summary.csv``; failed jobs named with their error);
- for every swept key with several values and every combination of the other swept keys, the
  difference between its levels on the test episodes both jobs met: mean difference in points, a
  paired 95% CI and the p-value of a paired t-test (:mod:`matchnet.comparisons`; ``comparisons.csv``).
  Jobs that met other episodes (another shot, way...) are not paired, and the summary says why;
- when ``seed`` is swept, the jobs that differ only in their seed grouped: per-seed accuracies, their
  mean and standard deviation, and the comparisons also made over seeds (training randomness included);
- when exactly two keys (besides ``seed``) are swept, the grid as a table, one key per axis;
- ``summary.png``: validation accuracy against training episodes, a line per job (or per arm, the
  mean over seeds with their range as a band), read from the jobs' CSV logs;
- with the W&B logger, the tables and the figure in a run of the sweep's W&B group.

A search (a sweeper that optimises the value ``src/train.py`` returns, e.g.
``hparams_search=omniglot_optuna``) lists every trial with its parameters and validation value
(``optimized_metric``), sorted by it, marks the best trial and reports the test accuracy of that trial
only. See docs/sweeps.md.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from matchnet.comparisons import (
    CONFIDENCE,
    Difference,
    TestEpisodes,
    describe,
    has_test_episodes,
    paired_difference,
    points,
    read_test_episodes,
    shared,
    unpairable,
)
from matchnet.errors import MatchnetError
from matchnet.io import RESULT_FILE, atomic_open, write_text_atomic
from matchnet.overrides import override_keys, override_values, parse

log = logging.getLogger(__name__)
COLUMNS = (
    "job",
    "overrides",
    "status",
    "test_acc",
    "test_acc_ci95",
    "episodes",
    "train_episodes",
    "output_dir",
)


def _row(job: str, result: dict[str, Any]) -> dict[str, Any]:
    ok = result.get("status") == "ok"
    return {
        "job": job,
        "overrides": " ".join(result.get("overrides", [])),
        "status": "ok" if ok else f"failed: {result.get('error', 'no result')}",
        "test_acc": f"{100 * result['test_acc']:.2f}" if ok else "",
        "test_acc_ci95": f"{100 * result['test_acc_ci95']:.2f}" if ok else "",
        "episodes": result.get("episodes", ""),
        "train_episodes": result.get("train_episodes", ""),
        "output_dir": result.get("output_dir", ""),
    }


def _is_job(folder: Path) -> bool:
    """A job's folder: Hydra's numbered default, or one named by ``hydra.sweep.subdir`` holding a result."""
    return folder.is_dir() and (folder.name.isdigit() or (folder / RESULT_FILE).is_file())


def _job_folders(sweep_dir: Path) -> list[Path]:
    """The job folders of a sweep: numbered ones in number order, then named ones."""
    return sorted(
        (p for p in sweep_dir.iterdir() if _is_job(p)),
        key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name),
    )


def _read_result(job: Path) -> dict[str, Any]:
    """A job's ``result.json``; a job that died before writing it is failed, with the overrides Hydra
    saved for it (``.hydra/overrides.yaml``) when there are any."""
    path = job / RESULT_FILE
    if path.is_file():
        try:
            read = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            read = f"{RESULT_FILE} is unreadable ({type(err).__name__}: {err})"
        if isinstance(read, dict):
            return read
        error = read if isinstance(read, str) else f"{RESULT_FILE} does not hold a JSON object"
    else:
        error = f"no {RESULT_FILE}"
    result: dict[str, Any] = {"status": "failed", "error": error}
    saved = job / ".hydra" / "overrides.yaml"
    if saved.is_file():
        result["overrides"] = [str(o) for o in OmegaConf.load(saved)]
    return result


def _results(sweep_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    return [(job.name, _read_result(job)) for job in _job_folders(sweep_dir)]


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder of ``sweep_dir`` (numbered folders, failed or missing results included, then
    named ones), in job order."""
    return [_row(job, result) for job, result in _results(sweep_dir)]


def _markdown_row(cells: list[Any]) -> str:
    """One Markdown table row; a ``|`` inside a cell is escaped."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows; accuracy columns in percent."""
    header = ["job", "overrides", "status", "test acc (%)", "95% CI (±)", "test episodes", "train episodes"]
    lines = [_markdown_row(header), "|" + "---|" * len(header)]
    lines += [_markdown_row([row[c] for c in COLUMNS[:-1]]) for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    return _csv(rows, COLUMNS)


SEARCH_COLUMNS = (
    "rank",
    "job",
    "parameters",
    "status",
    "optimized_metric",
    "optimized_value",
    "best",
    "test_acc",
    "test_acc_ci95",
    "episodes",
    "output_dir",
)


def collect_search(sweep_dir: Path, params: list[str], direction: str) -> list[dict[str, Any]]:
    """Trials of a search, best first by ``optimized_value`` (``direction``: maximize or minimize);
    failed trials last. Only the best trial carries its test accuracy."""
    rows = []
    for job, result in _results(sweep_dir):
        value = result.get("optimized_value")
        ok = result.get("status") == "ok" and isinstance(value, (int, float))
        overrides = result.get("overrides", [])
        chosen = (
            [o for o, key in zip(overrides, override_keys(overrides), strict=True) if key in params]
            if params
            else overrides
        )
        error = result.get("error") or (f"{result.get('optimized_metric')} was not logged" if not ok else "")
        rows.append(
            {
                "job": job,
                "parameters": " ".join(chosen),
                "status": "ok" if ok else f"failed: {error}",
                "optimized_metric": result.get("optimized_metric", ""),
                "optimized_value": float(value) if ok else None,
                "best": "",
                "test_acc": result.get("test_acc"),
                "test_acc_ci95": result.get("test_acc_ci95"),
                "episodes": result.get("episodes", ""),
                "output_dir": result.get("output_dir", ""),
            }
        )
    sign = -1.0 if direction.lower().endswith("maximize") else 1.0
    rows.sort(
        key=lambda r: (r["optimized_value"] is None, sign * (r["optimized_value"] or 0.0), int(r["job"]))
    )
    for rank, row in enumerate(rows, start=1):
        best = rank == 1 and row["optimized_value"] is not None
        row["rank"] = rank if row["optimized_value"] is not None else ""
        row["best"] = "best" if best else ""
        if not best:  # the test set judges the chosen trial only
            row["test_acc"] = row["test_acc_ci95"] = row["episodes"] = ""
        else:
            row["test_acc"] = f"{100 * row['test_acc']:.2f}"
            row["test_acc_ci95"] = f"{100 * row['test_acc_ci95']:.2f}"
        if row["optimized_value"] is not None:
            row["optimized_value"] = f"{row['optimized_value']:.4f}"
        else:
            row["optimized_value"] = ""
    return rows


def search_markdown(rows: list[dict[str, Any]], direction: str) -> str:
    """The search table (best first) and a line with the best trial's test accuracy."""
    metric = next((r["optimized_metric"] for r in rows if r["optimized_metric"]), "optimized value")
    ok = sum(r["status"] == "ok" for r in rows)
    lines = [
        f"Search: {direction} {metric} (validation) over {len(rows)} trials, "
        f"{ok} ok, {len(rows) - ok} failed.",
        "",
        f"| rank | job | parameters | status | {metric} | |",
        "|---|---|---|---|---|---|",
    ]
    keys = ("rank", "job", "parameters", "status", "optimized_value", "best")
    lines += [_markdown_row([row[k] for k in keys]) for row in rows]
    best = next((r for r in rows if r["best"]), None)
    lines.append("")
    if best is None:
        lines.append("No trial finished: there is no best trial.")
    else:
        lines.append(
            f"Best trial: job {best['job']} ({metric} = {best['optimized_value']}). "
            f"Test accuracy of the best trial only: {best['test_acc']}% ± {best['test_acc_ci95']} "
            f"(95% CI, {best['episodes']} test episodes; {best['output_dir']})."
        )
    return "\n".join(lines) + "\n"


def search_csv(rows: list[dict[str, Any]]) -> str:
    return _csv(rows, SEARCH_COLUMNS)


def _search(config: DictConfig) -> tuple[list[str], str] | None:
    """``(swept keys, direction)`` when the sweep's sweeper optimises a single value, else None."""
    sweeper = OmegaConf.select(config, "hydra.sweeper", default=None)
    if not isinstance(sweeper, DictConfig) or "direction" not in sweeper:
        return None
    direction = sweeper.direction
    if not isinstance(direction, str):  # several objectives: not what src/train.py returns
        return None
    params = [str(k) for k in sweeper.get("params") or {}]
    # Searched settings given on the command line: every sweep (``choice(...)``, ``interval(...)``,
    # ``a,b``, ...), as the sweeper itself reads them.
    task = OmegaConf.select(config, "hydra.overrides.task", default=None) or []
    for override in parse(str(o) for o in task):
        if override.is_sweep_override() and override.key_or_group not in params:
            params.append(override.key_or_group)
    return params, direction


# ---------------------------------------------------------------------------------------------- grid sweeps

#: The key whose levels are training seeds: jobs differing only in it are replicates of one arm.
SEED_KEY = "seed"
#: The level of a key that a job does not set.
UNSET = "(not set)"
SUMMARY_FILE = "summary.md"
CURVES_FILE = "summary.png"
COMPARISONS_FILE = "comparisons.csv"
COMPARISON_COLUMNS = (
    "key",
    "level",
    "reference",
    "at",
    "over",
    "pairs",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "verdict",
)


@dataclass
class Job:
    """A job of a grid sweep: its folder, ``result.json`` and overrides (``key -> value``)."""

    name: str
    folder: Path
    result: dict[str, Any]
    settings: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.result.get("status") == "ok"

    def problem(self) -> str | None:
        """Why this job's test cannot be compared (None: it can)."""
        if not self.ok:
            return f"job {self.name} failed: {self.result.get('error', 'no result')}"
        if not has_test_episodes(self.folder):
            return f"job {self.name} kept no per-episode test results (test_episodes.csv)"
        return None

    def accuracy(self) -> str:
        """``92.10 ± 0.31``: test accuracy and the half-width of its 95% CI, in percent."""
        return f"{100 * self.result['test_acc']:.2f} ± {100 * self.result['test_acc_ci95']:.2f}"


def read_jobs(sweep_dir: Path) -> list[Job]:
    """The jobs of ``sweep_dir`` in job order (see :func:`collect`)."""
    return [
        Job(folder.name, folder, result, override_values(result.get("overrides", [])))
        for folder, result in ((f, _read_result(f)) for f in _job_folders(sweep_dir))
    ]


@dataclass
class Design:
    """What a grid sweep varied: ``levels`` of each swept key (several values, in job order),
    ``factors`` (the swept keys but ``seed``) and ``seeds`` (the seeds, when ``seed`` is swept)."""

    levels: dict[str, list[str]]
    factors: list[str]
    seeds: list[str]

    @classmethod
    def of(cls, jobs: Sequence[Job]) -> Design:
        keys = list(dict.fromkeys(key for job in jobs for key in job.settings))
        levels = {}
        for key in keys:
            values = list(dict.fromkeys(job.settings.get(key, UNSET) for job in jobs))
            if len(values) > 1:
                levels[key] = values
        return cls(levels, [k for k in levels if k != SEED_KEY], levels.get(SEED_KEY, []))

    def arm(self, job: Job) -> tuple[str, ...]:
        """The job's levels of the factors (its arm: the jobs that differ only in their seed)."""
        return tuple(job.settings.get(key, UNSET) for key in self.factors)

    def arms(self) -> list[tuple[str, ...]]:
        """Every combination of the factors' levels."""
        return list(itertools.product(*(self.levels[key] for key in self.factors)))

    def label(self, arm: Sequence[str], keys: Sequence[str] | None = None) -> str:
        """``model.fce=true data.shot=1``: the arm's levels of ``keys`` (default: every factor)."""
        keys = self.factors if keys is None else keys
        chosen = [f"{key}={value}" for key, value in zip(self.factors, arm, strict=True) if key in keys]
        return " ".join(chosen)


def reference_level(levels: Sequence[str]) -> str:
    """The level the others are compared with: ``false`` for a flag, else the first one swept."""
    return next((level for level in levels if level.lower() == "false"), levels[0])


@dataclass
class Comparison:
    """One line of the comparisons: ``key=level`` minus ``key=reference`` with the other factors at
    ``at``, over ``over`` (``episodes`` or ``seeds``); ``difference`` is None when none was computed."""

    key: str
    level: str
    reference: str
    at: str
    over: str
    difference: Difference | None
    text: str

    def sentence(self) -> str:
        where = f" at {self.at}" if self.at else ""
        return f"{self.key}: {self.level} − {self.reference}{where}: {self.text}"

    def row(self) -> dict[str, Any]:
        """The ``comparisons.csv`` row: differences in points, blank where none was computed."""
        d = self.difference
        row = {"key": self.key, "level": self.level, "reference": self.reference, "at": self.at}
        row |= {"over": self.over, "verdict": self.text}
        if d is None:
            return row | dict.fromkeys(("pairs", "difference", "ci_low", "ci_high", "p_value"), "")
        figures = {"difference": d.mean, "ci_low": d.low, "ci_high": d.high}
        return (
            row
            | {name: f"{100 * value:.4f}" for name, value in figures.items()}
            | {
                "pairs": d.n,
                "p_value": f"{d.p_value:.6g}",
                "verdict": "difference" if d.detected else "no difference detected",
            }
        )


def _unpaired(a: Sequence[Job], b: Sequence[Job]) -> str:
    """What can be said without pairing: each side's accuracy, and the difference of the means."""
    if len(a) == 1 and len(b) == 1:
        mean_a, mean_b = a[0].result["test_acc"], b[0].result["test_acc"]
        sides = f"{a[0].accuracy()} vs {b[0].accuracy()} (each job's own 95% CI)"
    else:
        values_a = [job.result["test_acc"] for job in a]
        values_b = [job.result["test_acc"] for job in b]
        mean_a, mean_b = float(np.mean(values_a)), float(np.mean(values_b))
        sides = f"{_mean_sd(values_a)} vs {_mean_sd(values_b)} (mean ± sd over seeds)"
    return f"unpaired, {sides}: difference {points(mean_a - mean_b)} points"


def _seeds(count: int) -> str:
    """``1 seed``, ``3 seeds``."""
    return f"{count} seed" if count == 1 else f"{count} seeds"


def _mean_sd(values: Sequence[float]) -> str:
    sd = f"{100 * float(np.std(values, ddof=1)):.2f}" if len(values) > 1 else "—"
    return f"{100 * float(np.mean(values)):.2f} ± {sd}"


def _shared_accuracies(a: Sequence[Job], b: Sequence[Job]) -> np.ndarray | str:
    """Each job's accuracies (rows: the jobs of ``a``, then of ``b``) on the test episodes every one of
    them met, or why they cannot be paired."""
    jobs = (*a, *b)
    try:
        runs: list[TestEpisodes] = [read_test_episodes(job.folder) for job in jobs]
    except MatchnetError as err:
        return f"cannot compare: {err}"
    for job, run in zip(jobs[1:], runs[1:], strict=True):
        reason = unpairable(runs[0], run)
        if reason is not None:
            return f"not paired: {reason} (jobs {jobs[0].name} and {job.name}); {_unpaired(a, b)}"
    numbers, accuracies = shared(runs)
    if numbers.size < 2:
        shared_count = f"{numbers.size} shared test episode" + ("" if numbers.size == 1 else "s")
        return f"cannot test: {shared_count} (a paired test needs two)"
    return np.stack(accuracies)


def _compare_cells(
    key: str, level: str, reference: str, at: str, cell_a: dict[str, Job], cell_b: dict[str, Job], seeds: bool
) -> list[Comparison]:
    """``cell_a`` (the jobs of ``key=level``, by seed) against ``cell_b`` (``key=reference``): over the
    test episodes (with seeds: each side's mean over its seeds per episode) and, with seeds, over the
    seeds both sides finished (each job's mean over the shared episodes, paired by seed)."""

    def line(over: str, difference: Difference | None, text: str) -> Comparison:
        return Comparison(key, level, reference, at, over, difference, text)

    if not cell_a or not cell_b:  # not in the grid (a job that failed is in it, with its overrides)
        return []
    common = [seed for seed in cell_a if seed in cell_b]
    problems = [p for s in common for p in (cell_a[s].problem(), cell_b[s].problem()) if p is not None]
    usable = [s for s in common if cell_a[s].problem() is None and cell_b[s].problem() is None]
    if not usable:
        reason = "; ".join(problems) or "no seed ran on both sides"
        return [line("", None, f"cannot compare: {reason}")]
    left_out = f" Left out: {'; '.join(problems)}." if problems else ""
    a, b = [cell_a[s] for s in usable], [cell_b[s] for s in usable]
    accuracies = _shared_accuracies(a, b)
    if isinstance(accuracies, str):
        return [line("", None, accuracies + left_out)]
    side_a, side_b = accuracies[: len(a)], accuracies[len(a) :]
    difference = paired_difference(side_a.mean(0), side_b.mean(0))
    what = "shared episodes" if not seeds else f"shared episodes, each the mean over {_seeds(len(a))}"
    lines = [line("episodes", difference, describe(difference, what) + left_out)]
    if seeds:
        if len(a) < 2:
            text = f"cannot test over seeds: {_seeds(len(a))} finished on both sides (a test needs two)"
            lines.append(line("seeds", None, text + left_out))
        else:
            difference = paired_difference(side_a.mean(1), side_b.mean(1))
            lines.append(line("seeds", difference, describe(difference, "seeds, paired by seed") + left_out))
    return lines


def _cell_jobs(jobs: Sequence[Job], design: Design, arm: tuple[str, ...]) -> dict[str, Job]:
    """``seed -> job`` of an arm (the one key ``""`` when seeds are not swept); a finished job wins over
    a failed one with the same settings."""
    cell: dict[str, Job] = {}
    for job in jobs:
        if job.settings and design.arm(job) == arm:
            seed = job.settings.get(SEED_KEY, UNSET) if design.seeds else ""
            if seed not in cell or (job.ok and not cell[seed].ok):
                cell[seed] = job
    return cell


def compare(jobs: Sequence[Job], design: Design) -> list[Comparison]:
    """For every factor, each of its levels against its reference level (:func:`reference_level`), at
    every combination of the other factors: paired over test episodes and, with seeds, over seeds."""
    out = []
    for index, key in enumerate(design.factors):
        reference = reference_level(design.levels[key])
        others = [k for k in design.factors if k != key]
        for level in (v for v in design.levels[key] if v != reference):
            for arm in (arm for arm in design.arms() if arm[index] == reference):
                other = (*arm[:index], level, *arm[index + 1 :])
                cell_a, cell_b = _cell_jobs(jobs, design, other), _cell_jobs(jobs, design, arm)
                at = design.label(arm, others)
                out += _compare_cells(key, level, reference, at, cell_a, cell_b, bool(design.seeds))
    return out


def seed_table(jobs: Sequence[Job], design: Design) -> list[str]:
    """Markdown: per arm, each seed's test accuracy, their mean and standard deviation (percent)."""
    header = ["arm", *(f"seed={seed}" for seed in design.seeds), "mean (%)", "sd"]
    lines = [_markdown_row(header), "|" + "---|" * len(header)]
    for arm in design.arms():
        cell = _cell_jobs(jobs, design, arm)
        values = [cell[s].result["test_acc"] for s in design.seeds if s in cell and cell[s].ok]
        per_seed = [
            f"{100 * cell[s].result['test_acc']:.2f}" if s in cell and cell[s].ok else _missing(cell.get(s))
            for s in design.seeds
        ]
        mean = f"{100 * float(np.mean(values)):.2f}" if values else "—"
        sd = f"{100 * float(np.std(values, ddof=1)):.2f}" if len(values) > 1 else "—"
        lines.append(_markdown_row([design.label(arm) or "all jobs", *per_seed, mean, sd]))
    return lines


def _missing(job: Job | None) -> str:
    return "no job" if job is None else f"failed (job {job.name})"


def grid_table(jobs: Sequence[Job], design: Design) -> list[str]:
    """Markdown: the two factors as rows and columns, each cell the test accuracy (%) ± its 95% CI, or
    with seeds the mean ± standard deviation over the seeds."""
    rows_key, columns_key = design.factors
    header = [f"{rows_key} \\ {columns_key}", *design.levels[columns_key]]
    lines = [_markdown_row(header), "|" + "---|" * len(header)]
    for row in design.levels[rows_key]:
        cells = []
        for column in design.levels[columns_key]:
            cell = _cell_jobs(jobs, design, (row, column))
            finished = [job for job in cell.values() if job.ok]
            if not finished:
                cells.append(_missing(next(iter(cell.values()), None)))
            elif not design.seeds:
                cells.append(finished[0].accuracy())
            else:
                failed = f", {len(cell) - len(finished)} failed" if len(cell) > len(finished) else ""
                values = [job.result["test_acc"] for job in finished]
                cells.append(f"{_mean_sd(values)} ({_seeds(len(finished))}{failed})")
        lines.append(_markdown_row([row, *cells]))
    return lines


# ------------------------------------------------------------------------------------ learning curves


def read_curve(folder: Path, processes: int = 1) -> list[tuple[int, float]]:
    """``(training episodes, val/acc)`` per validation from a job's CSV logs (``<name>/version_N/
    metrics.csv``, one per start of the run: a resumed run continues in the next version).

    Lightning logs a validation at optimiser step ``s`` (0-based, per process) after ``s + 1`` steps,
    each of which trained one episode in each of ``processes`` (the run's ``world_size``).
    """
    points_at: dict[int, float] = {}
    logs = sorted(folder.glob("*/version_*/metrics.csv"), key=lambda p: _version(p.parent.name))
    for path in logs:
        with path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("step") and row.get("val/acc"):
                    points_at[int(float(row["step"]))] = float(row["val/acc"])
    return [((step + 1) * processes, accuracy) for step, accuracy in sorted(points_at.items())]


def _version(name: str) -> int:
    number = name.rpartition("_")[2]
    return int(number) if number.isdigit() else -1


@dataclass
class Curve:
    """A line of ``summary.png``: ``x`` training episodes, ``y`` validation accuracy (fractions) and, for
    an arm of several seeds, their range ``low``/``high`` at each x."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)


def curves(jobs: Sequence[Job], design: Design) -> list[Curve]:
    """One curve per finished job; with seeds swept, one per arm: the mean over its seeds at the
    training episodes every seed validated at."""
    read = {job.name: read_curve(job.folder, int(job.result.get("world_size", 1))) for job in jobs if job.ok}
    if not design.seeds:
        out = []
        for job in (job for job in jobs if read.get(job.name)):
            label = " ".join(f"{k}={job.settings[k]}" for k in design.levels if k in job.settings)
            x, y = zip(*read[job.name], strict=True)
            out.append(Curve(label or f"job {job.name}", list(x), list(y)))
        return out
    out = []
    for arm in design.arms():
        found = [dict(read[job.name]) for job in _cell_jobs(jobs, design, arm).values() if read.get(job.name)]
        if not found:
            continue
        xs = sorted(set.intersection(*(set(curve) for curve in found)))
        if not xs:  # the seeds validated at no common point (e.g. other val_check_interval)
            continue
        values = np.array([[curve[x] for x in xs] for curve in found]).reshape(len(found), len(xs))
        label = f"{design.label(arm) or 'all jobs'} ({_seeds(len(found))})"
        out.append(Curve(label, xs, values.mean(0).tolist(), values.min(0).tolist(), values.max(0).tolist()))
    return out


def plot_curves(lines: Sequence[Curve], path: Path) -> None:
    """``summary.png``: validation accuracy (%) against training episodes, one labelled line per curve."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for curve in lines:
        (drawn,) = axes.plot(curve.x, [100 * y for y in curve.y], marker="o", markersize=3, label=curve.label)
        if curve.low:
            low, high = [100 * y for y in curve.low], [100 * y for y in curve.high]
            axes.fill_between(curve.x, low, high, color=drawn.get_color(), alpha=0.2, linewidth=0)
    axes.set_xlabel("training episodes")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("validation accuracy (%)")
    banded = any(curve.low for curve in lines)
    axes.set_title("Validation accuracy" + (" (mean over seeds, their range shaded)" if banded else ""))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110)


# ------------------------------------------------------------------------------------ the grid summary


@dataclass
class GridSummary:
    """Everything a grid sweep's summary shows (:func:`summarise`)."""

    rows: list[dict[str, Any]]
    jobs: list[Job]
    design: Design
    comparisons: list[Comparison]
    curves: list[Curve]

    def markdown(self, figure: str | None) -> str:
        """``summary.md``; ``figure``: the file name of the learning curves (None: there are none)."""
        design, failed = self.design, [job for job in self.jobs if not job.ok]
        swept = ", ".join(f"{key} ({', '.join(values)})" for key, values in design.levels.items())
        ok = len(self.jobs) - len(failed)
        lines = [f"Sweep: {len(self.jobs)} jobs, {ok} ok, {len(failed)} failed. Swept: {swept or 'nothing'}."]
        for job in failed:
            overrides = " ".join(job.result.get("overrides", [])) or "overrides unknown"
            lines.append(f"Failed: job {job.name} ({overrides}): {job.result.get('error', 'no result')}.")
        lines += ["", to_markdown(self.rows).rstrip("\n")]
        if len(design.factors) == 2:
            what = "mean ± sd over seeds" if design.seeds else f"± {round(100 * CONFIDENCE)}% CI"
            title = f"## {design.factors[0]} × {design.factors[1]}"
            lines += ["", title, "", f"Test accuracy (%), {what}.", ""]
            lines += grid_table(self.jobs, design)
        if design.seeds:
            note = "Test accuracy (%) per seed; mean and standard deviation over the seeds."
            lines += ["", "## Seeds", "", note, ""]
            lines += seed_table(self.jobs, design)
        if self.comparisons:
            lines += ["", "## Comparisons", "", COMPARISONS_NOTE.strip(), ""]
            lines += [f"- {comparison.sentence()}" for comparison in self.comparisons]
        lines += ["", "## Learning curves", ""]
        if figure:
            lines.append(f"![Validation accuracy against training episodes]({figure})")
        else:
            lines.append(NO_CURVES)
        return "\n".join(lines) + "\n"

    def comparisons_csv(self) -> str:
        return _csv([c.row() for c in self.comparisons], COMPARISON_COLUMNS)


NO_CURVES = "No job left a validation curve in a CSV log (logger=none, fast_dev_run, or no validation)."
COMPARISONS_NOTE = """
Test accuracy of each level minus the reference level (`false` for a flag, else the first value
swept), in points, the other swept keys fixed. Over episodes: paired on the test episodes both jobs
met (paired t-test, scipy.stats.ttest_rel, with its 95% CI). Over training seeds: paired by seed, so
the interval also holds the randomness of training; trust that one for a claim about the method
(docs/sweeps.md).
"""


def summarise(sweep_dir: Path) -> GridSummary:
    """The summary of the grid sweep in ``sweep_dir``."""
    jobs = read_jobs(sweep_dir)
    design = Design.of([job for job in jobs if job.settings])
    rows = [_row(job.name, job.result) for job in jobs]
    return GridSummary(rows, jobs, design, compare(jobs, design), curves(jobs, design))


@contextmanager
def _hydra_config(config: DictConfig) -> Iterator[None]:
    """``config`` (the sweep's) as Hydra's config for the block, the previous one back afterwards."""
    instance = HydraConfig.instance()
    saved = instance.cfg
    instance.set_config(config)
    try:
        yield
    finally:
        instance.cfg = saved


def log_to_wandb(config: DictConfig, sweep_dir: Path, summary: GridSummary, figure: Path | None) -> None:
    """With the W&B logger, a run ``summary`` (job type ``summary``) in the sweep's W&B group holding the
    job table, the comparisons (``wandb.Table``) and the learning curves (``wandb.Image``); its files go
    to ``<sweep>/wandb/``."""
    node = OmegaConf.select(config, "logger.wandb", default=None)
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    import wandb

    from matchnet.tracking import wandb_group  # Lightning: only for a sweep that logs to W&B

    group = OmegaConf.select(config, "logger.wandb.group", default=None)
    if group is None:
        with _hydra_config(config):
            group = wandb_group(config)
    tags = OmegaConf.select(config, "logger.wandb.tags", default=None)
    try:
        run = wandb.init(
            project=OmegaConf.select(config, "logger.wandb.project", default=None),
            entity=OmegaConf.select(config, "logger.wandb.entity", default=None),
            group=str(group),
            job_type="summary",
            name=f"{group} summary",
            tags=list(tags) if tags else None,
            mode=OmegaConf.select(config, "logger.wandb.mode", default=None),
            dir=str(sweep_dir),
        )
        comparisons = [c.row() for c in summary.comparisons]
        payload: dict[str, Any] = {
            "sweep/jobs": wandb.Table(
                columns=list(COLUMNS), data=[[str(row[c]) for c in COLUMNS] for row in summary.rows]
            ),
            "sweep/comparisons": wandb.Table(
                columns=list(COMPARISON_COLUMNS),
                data=[[str(row[c]) for c in COMPARISON_COLUMNS] for row in comparisons],
            ),
        }
        if figure is not None:
            payload["sweep/learning_curves"] = wandb.Image(str(figure))
        run.log(payload)
        run.finish()
    except wandb.Error as err:
        log.warning(
            "The sweep summary was written to %s but not logged to W&B (%s). Log in (wandb login) or set "
            "logger.mode=offline.",
            sweep_dir,
            err,
        )


class SweepSummary(Callback):
    """Writes the sweep's summary into its folder when a multirun ends (see the module docstring)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        search = _search(config)
        if search is not None:
            params, direction = search
            rows = collect_search(sweep_dir, params, direction)
            markdown = search_markdown(rows, direction)
            write_text_atomic(sweep_dir / SUMMARY_FILE, markdown)
            write_text_atomic(sweep_dir / "summary.csv", search_csv(rows))
            log.info("Search summary (%s):\n%s", sweep_dir / SUMMARY_FILE, markdown)
            print(markdown, flush=True)
            return
        summary = summarise(sweep_dir)
        figure = sweep_dir / CURVES_FILE if summary.curves else None
        if figure is not None:
            plot_curves(summary.curves, figure)
        markdown = summary.markdown(CURVES_FILE if figure is not None else None)
        write_text_atomic(sweep_dir / SUMMARY_FILE, markdown)
        write_text_atomic(sweep_dir / "summary.csv", to_csv(summary.rows))
        write_text_atomic(sweep_dir / COMPARISONS_FILE, summary.comparisons_csv())
        log.info("Sweep summary (%s):\n%s", sweep_dir / SUMMARY_FILE, markdown)
        print(markdown, flush=True)
        log_to_wandb(config, sweep_dir, summary, figure)
