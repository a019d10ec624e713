"""Running the entry points (``src/*.py``) from tests the way a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("MATCHNET_DATA_ROOT", ROOT / "data" / "omniglot")).resolve()


def run_script(
    script: str,
    *overrides: str,
    cwd: Path,
    check: bool = True,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """``src/<script> overrides...`` in a fresh process from ``cwd``: one thread, W&B quiet, the test
    data root, ``env`` on top (``None`` removes a variable); with ``check``, a non-zero exit fails
    the test and shows the output's end."""
    full_env = os.environ | {
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "0",
        "OMP_NUM_THREADS": "1",
        "MATCHNET_DATA_ROOT": str(DATA_ROOT),
    }
    full_env |= dict(env or {})
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / script), *overrides],
        cwd=cwd,
        env={key: value for key, value in full_env.items() if value is not None},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{script} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


def last_json(output: str | subprocess.CompletedProcess[str]) -> Any:
    """The JSON object or list on the last line of an entry point's standard output."""
    stdout = output.stdout if isinstance(output, subprocess.CompletedProcess) else output
    return json.loads(stdout.strip().splitlines()[-1])
