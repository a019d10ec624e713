"""A Hydra callback that tabulates a sweep: one row per job, Markdown and CSV.

A grid sweep lists every job with its test accuracy. A search (a sweeper that optimises the value
``src/train.py`` returns, e.g. ``hparams_search=omniglot_optuna``) lists every trial with its
parameters and validation value (``optimized_metric``), sorted by it, marks the best trial and
reports the test accuracy of that trial only.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from matchnet.io import RESULT_FILE, write_text_atomic

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


def _results(sweep_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if _is_job(p)),
        key=lambda p: (0, int(p.name), "") if p.name.isdigit() else (1, 0, p.name),
    )
    out = []
    for job in jobs:
        path = job / RESULT_FILE
        result = (
            json.loads(path.read_text())
            if path.is_file()
            else {"status": "failed", "error": "no result.json"}
        )
        out.append((job.name, result))
    return out


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
        chosen = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in params] if params else overrides
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
    sweeps = ("choice(", "range(", "interval(", "tag(")  # searched settings given on the command line
    for override in OmegaConf.select(config, "hydra.overrides.task", default=None) or []:
        key, _, value = str(override).partition("=")
        if value.startswith(sweeps) and key not in params:
            params.append(key)
    return params, direction


class SweepSummary(Callback):
    """Writes ``summary.md`` and ``summary.csv`` into the sweep folder when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        search = _search(config)
        if search is not None:
            params, direction = search
            rows = collect_search(sweep_dir, params, direction)
            markdown = search_markdown(rows, direction)
            write_text_atomic(sweep_dir / "summary.md", markdown)
            write_text_atomic(sweep_dir / "summary.csv", search_csv(rows))
            log.info("Search summary (%s):\n%s", sweep_dir / "summary.md", markdown)
            print(markdown, flush=True)
            return
        rows = collect(sweep_dir)
        markdown = to_markdown(rows)
        write_text_atomic(sweep_dir / "summary.md", markdown)
        write_text_atomic(sweep_dir / "summary.csv", to_csv(rows))
        log.info("Sweep summary (%s):\n%s", sweep_dir / "summary.md", markdown)
        print(markdown, flush=True)
