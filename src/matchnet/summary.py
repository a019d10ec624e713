"""A Hydra callback that tabulates a sweep: one row per job, Markdown and CSV."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from matchnet.cli import RESULT_FILE
from matchnet.io import write_text_atomic

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


def collect(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder of ``sweep_dir`` (numbered folders), failed or missing results included."""
    rows = []
    jobs = sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
    )
    for job in jobs:
        path = job / RESULT_FILE
        result = (
            json.loads(path.read_text())
            if path.is_file()
            else {"status": "failed", "error": "no result.json"}
        )
        rows.append(_row(job.name, result))
    return rows


def to_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of the rows; accuracy columns in percent."""
    header = ["job", "overrides", "status", "test acc (%)", "95% CI (±)", "test episodes", "train episodes"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row[c] for c in COLUMNS[:-1]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


class SweepSummary(Callback):
    """Writes ``summary.md`` and ``summary.csv`` into the sweep folder when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = collect(sweep_dir)
        markdown = to_markdown(rows)
        write_text_atomic(sweep_dir / "summary.md", markdown)
        write_text_atomic(sweep_dir / "summary.csv", to_csv(rows))
        log.info("Sweep summary (%s):\n%s", sweep_dir / "summary.md", markdown)
        print(markdown, flush=True)
