"""Shared behaviour of the entry points: clean errors, a result file, a final JSON line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from matchnet.errors import MatchnetError
from matchnet.io import write_json_atomic
from matchnet.pipeline import job_overrides, output_dir

log = logging.getLogger(__name__)
RESULT_FILE = "result.json"


def user_error(err: BaseException) -> MatchnetError | None:
    """The :class:`MatchnetError` behind ``err``, also when Hydra's instantiate wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, MatchnetError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``task``, write ``result.json`` to the job folder and print the result as the last stdout line.

    A :class:`MatchnetError` is printed without a traceback. A single run then exits with status 2;
    inside a sweep the job is recorded as failed and the sweep goes on.
    """
    record: dict[str, Any] = {"overrides": job_overrides(), "output_dir": str(output_dir())}
    try:
        result = task(cfg)
    except Exception as raised:
        err = user_error(raised)
        if err is None:
            raise
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        if not _in_multirun():
            sys.exit(2)
        write_json_atomic(output_dir() / RESULT_FILE, record | {"status": "failed", "error": str(err)})
        return None
    write_json_atomic(output_dir() / RESULT_FILE, record | {"status": "ok"} | result)
    print(json.dumps(result | {"output_dir": record["output_dir"]}), flush=True)
    return result
