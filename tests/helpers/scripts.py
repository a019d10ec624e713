"""Running the entry points (``src/*.py``) from tests the way a user runs them.

:func:`run_main` runs an entry point's ``main`` in this process (command line, working directory and
environment as given; standard output and error captured; the exit status from ``SystemExit``):
the default, a few seconds faster per run than a new Python. :func:`run_script` starts a fresh
process: for tests where the process is the point (signals, DDP ranks, exit codes of a real run).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.core.global_hydra import GlobalHydra

from helpers.paths import DATA_ROOT, ROOT


def _environment(env: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """The variables every entry point run gets (one thread, W&B quiet, the test data), ``env`` on top."""
    return {
        "WANDB_SILENT": "true",
        "HYDRA_FULL_ERROR": "0",
        "OMP_NUM_THREADS": "1",
        "MATCHNET_DATA_ROOT": str(DATA_ROOT),
    } | dict(env or {})


def fresh_environment(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a fresh entry-point process: this process's, then :func:`_environment`'s
    variables, ``env`` on top (``None`` removes a variable)."""
    full = os.environ | _environment(env)
    return {key: value for key, value in full.items() if value is not None}


def pythonpath_with_tests() -> dict[str, str]:
    """``PYTHONPATH`` with ``tests/`` first, so that a fresh process can import the test-only callbacks
    (``helpers.callbacks.SlowDown``, ``helpers.callbacks.EpisodeProbe``)."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))}


def _failed(script: str, proc: subprocess.CompletedProcess[str]) -> AssertionError:
    output = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return AssertionError(f"{script} failed ({proc.returncode}):\n{output}")


def _path(script: str) -> Path:
    """``src/<script>`` for an entry point (``train.py``); other scripts by their path from the repository
    root (``benchmarks/omniglot_report.py``)."""
    return ROOT / script if "/" in script else ROOT / "src" / script


@functools.cache
def _main(script: str) -> Callable[[], Any]:
    """The ``main`` of the script, imported once."""
    spec = importlib.util.spec_from_file_location(f"entry_{Path(script).stem}", _path(script))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up there
    spec.loader.exec_module(module)
    # Hydra finds conf/ relative to the file of a function defined in __main__, as under `python src/...`.
    inspect.unwrap(module.main).__module__ = "__main__"
    return module.main


@contextlib.contextmanager
def _process_state(argv: list[str], cwd: Path, env: Mapping[str, str | None]) -> Iterator[None]:
    """``argv``, ``cwd`` and ``env`` for the block; afterwards this process's own back, with the root
    logger's handlers (Hydra configures logging per run), Hydra's singleton, torch's determinism and
    thread count."""
    saved_env, saved_argv, saved_cwd = dict(os.environ), sys.argv, os.getcwd()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    os.environ.update({key: value for key, value in env.items() if value is not None})
    for key in [key for key, value in env.items() if value is None]:
        os.environ.pop(key, None)
    sys.argv = argv
    os.chdir(cwd)
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():  # what a new process would start with
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    GlobalHydra.instance().clear()
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)


def run_main(
    script: str,
    *overrides: str,
    cwd: Path,
    check: bool = True,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``src/<script> overrides...`` (or ``<script>``, a path with a folder) run in this process from ``cwd``,
    as :func:`run_script` would run it in a new one: the same environment, the output captured,
    ``returncode`` from its ``SystemExit`` (or the integer its ``main`` returns), whose message, as
    Python's would, goes to standard error."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    argv = [str(_path(script)), *overrides]
    state = _process_state(argv, cwd, _environment(env) | {"WANDB_CONSOLE": "off"})
    with state, contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            returned = _main(script)()
            code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            if isinstance(exit_.code, str):
                print(exit_.code, file=sys.stderr)
    proc = subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())
    if check and code != 0:
        raise _failed(script, proc)
    return proc


def run_in(
    run_dir: Path,
    script: str,
    *overrides: str,
    check: bool = True,
    env: Mapping[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """One run of ``script`` (:func:`run_main`) whose folder is ``run_dir`` (``hydra.run.dir``), started
    from the folder above it."""
    return run_main(script, *overrides, f"hydra.run.dir={run_dir}", cwd=run_dir.parent, check=check, env=env)


def run_sweep(
    script: str,
    *overrides: str,
    cwd: Path,
    folder: str = "multirun",
    env: Mapping[str, str | None] | None = None,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """``script -m overrides...`` (:func:`run_main`) from ``cwd`` into the sweep folder ``cwd/folder``
    (``hydra.sweep.dir``); returns that folder and the finished process."""
    sweep = cwd / folder
    proc = run_main(script, "-m", *overrides, f"hydra.sweep.dir={sweep}", cwd=cwd, env=env)
    return sweep, proc


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
    proc = subprocess.run(
        [sys.executable, str(ROOT / "src" / script), *overrides],
        cwd=cwd,
        env=fresh_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise _failed(script, proc)
    return proc


def last_json(output: str | subprocess.CompletedProcess[str]) -> Any:
    """The JSON object or list on the last line of an entry point's standard output."""
    stdout = output.stdout if isinstance(output, subprocess.CompletedProcess) else output
    return json.loads(stdout.strip().splitlines()[-1])
