"""Shared behaviour of the entry points: clean errors, a result file, a final JSON line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from matchnet.distributed import is_global_zero, job_scope
from matchnet.errors import MatchnetError
from matchnet.hydra_job import in_multirun, job_overrides, output_dir
from matchnet.io import RESULT_FILE, write_json_atomic
from matchnet.preemption import RunInterrupted

log = logging.getLogger(__name__)


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


def run_task(task: Callable[[DictConfig], dict[str, Any]], cfg: DictConfig) -> dict[str, Any] | None:
    """Run ``task``, write ``result.json`` to the job folder and print the result as the last stdout line.

    A :class:`MatchnetError` is printed without a traceback. A single run then exits with status 2;
    inside a sweep the job is recorded as failed and the sweep goes on. A run stopped by SIGTERM or
    SIGINT (:class:`RunInterrupted`, after saving ``last.ckpt``) is recorded as interrupted and the
    process exits with status 128 + the signal number, a sweep included.

    Under DDP every rank runs the task (see ``matchnet.distributed``); only global rank 0 writes
    ``result.json`` and prints the result line.
    """
    record: dict[str, Any] = {"overrides": job_overrides(), "output_dir": str(output_dir())}
    try:
        with job_scope():
            result = task(cfg)
    except RunInterrupted as stop:
        resume = "resume it with the same overrides plus ckpt_path=last" + (
            "" if in_multirun() else f" hydra.run.dir={output_dir()}"
        )
        message = f"{stop} To continue, {resume}." if stop.ckpt_path else str(stop)
        if not is_global_zero():
            sys.exit(stop.exit_code)
        write_json_atomic(
            output_dir() / RESULT_FILE,
            record | {"status": "interrupted", "error": message, "ckpt_path": stop.ckpt_path},
        )
        log.warning("%s", message)
        print(f"interrupted: {message}", file=sys.stderr, flush=True)
        sys.exit(stop.exit_code)
    except Exception as raised:
        err = user_error(raised)
        if err is None:
            raise
        log.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        if not in_multirun():
            sys.exit(2)
        if is_global_zero():
            write_json_atomic(output_dir() / RESULT_FILE, record | {"status": "failed", "error": str(err)})
        return None
    if not is_global_zero():
        return result
    write_json_atomic(output_dir() / RESULT_FILE, record | {"status": "ok"} | result)
    print(json.dumps(result | {"output_dir": record["output_dir"]}), flush=True)
    return result
