"""Multi-process training (Lightning DDP) under Hydra: one run directory per job, whatever the launcher.

Why this is hand-written: Lightning's ``ddp`` strategy starts ranks ``1..N-1`` of a node by running
the entry script again (its subprocess launcher). Under Hydra, Lightning's own child command
(``lightning_fabric``'s ``_hydra_subprocess_cmd``: ``sys.argv`` plus ``hydra.run.dir`` set to the
*run* directory pattern) suits a single run only: inside a multirun the child sees ``-m`` and starts
a sweep of its own, its run directory is the ``hydra.run.dir`` pattern instead of the job's sweep
sub-directory, and under the joblib or submitit launchers ``sys.argv`` is not even the user's script.
Upstream this is a known, open limitation: Hydra's "Improving Hydra + PL + DDP experience"
(facebookresearch/hydra#2070, open); Lightning's multirun fix (Lightning-AI/pytorch-lightning#11617)
was reverted (#15737), the request to use the job's output directory (#16694) was closed as won't
fix, and the pull request that would redo it (#18175) is still open. Drop this module's launcher
once Lightning builds the child command from the job's Hydra config itself.

``matchnet.lightning_internals.HydraDDPStrategy`` (``trainer=ddp``) is Lightning's ``DDPStrategy``
with a launcher that builds the child command from the *job's* Hydra config instead
(:func:`child_command`): the entry script (recorded by the
:class:`EntryPoint` Hydra callback when the app starts), the job's task overrides (one value each, no
``-m``) and ``hydra.run.dir=<this job's output dir> hydra.output_subdir=null``. Every rank of a job
therefore works in the same directory, a child never starts a sweep, and only rank 0 writes
``.hydra/``. Where a cluster starts the processes itself (SLURM ``srun``, ``torchrun``), Lightning
detects it and nothing is launched.

:func:`job_scope` wraps one job: on its way out it waits for (or, on error, stops) the children,
destroys the process group and restores the ``MASTER_*``/``*_RANK``/``WORLD_SIZE`` variables, so the
next job of a sequential sweep starts a fresh process group. :func:`is_global_zero` tells the entry
points whether to write ``result.json`` and print the result line; :func:`instantiate_trainer` and
:func:`check_episodes` turn bad device or episode settings into a :class:`~matchnet.errors.MatchnetError`
before any process is started.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import hydra
import pytorch_lightning as pl
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.experimental.callback import Callback
from lightning_fabric.utilities.exceptions import MisconfigurationException
from lightning_utilities.core.rank_zero import rank_zero_only
from omegaconf import DictConfig
from pytorch_lightning.accelerators import CPUAccelerator

from matchnet.errors import MatchnetError
from matchnet.overrides import override_keys

ENTRY_POINT_ENV = "MATCHNET_ENTRY_POINT"
"""Environment variable holding the JSON command (``[python, script]``) that started the Hydra app."""

DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
"""What the subprocess launcher sets in the launching process's environment."""

# Hydra overrides that describe the launch, not the job: a child rank must not inherit them.
_LAUNCH_KEYS = (
    "hydra.run.",
    "hydra.sweep.",
    "hydra.launcher",
    "hydra/launcher",
    "hydra.sweeper",
    "hydra/sweeper",
    "hydra.mode",
    "hydra.output_subdir",
    "hydra.job.name",
    "hydra.job.num",
    "hydra.job.id",
)
_launches: list[Callable[[bool], None]] = []


def _main_command() -> list[str]:
    """How this interpreter's ``__main__`` was started (as Lightning's subprocess launcher sees it)."""
    import __main__

    spec = getattr(__main__, "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name]
    return [sys.executable, os.path.abspath(sys.argv[0])]


class EntryPoint(Callback):
    """Hydra callback: records the command that started the app in ``$MATCHNET_ENTRY_POINT``.

    It runs in the launching process before any job, so the job processes of the joblib and
    submitit launchers (whose ``sys.argv`` is the launcher's) inherit it and can start DDP ranks.
    Each app start records its own command (an app started from inside a job must not inherit
    the outer app's).
    """

    def _record(self) -> None:
        os.environ[ENTRY_POINT_ENV] = json.dumps(_main_command())

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._record()


def entry_command() -> list[str]:
    """The command that started the Hydra app: ``$MATCHNET_ENTRY_POINT``, else this process's own."""
    recorded = os.environ.get(ENTRY_POINT_ENV)
    return list(json.loads(recorded)) if recorded else _main_command()


def _quote(value: str) -> str:
    """``value`` as a quoted Hydra override value."""
    if "'" not in value:
        return f"'{value}'"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def child_command(local_rank: int) -> tuple[list[str], str]:
    """The command and working directory that run local rank ``local_rank`` of the current Hydra job.

    One run (never ``-m``) of the same entry script and config with the job's task overrides,
    its non-launch Hydra overrides, and the job's output directory as ``hydra.run.dir``.
    """
    hydra_cfg = HydraConfig.get()
    command = entry_command()
    if hydra_cfg.job.config_name:
        command.append(f"--config-name={hydra_cfg.job.config_name}")
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            command.append(f"--config-dir={source.path}")
    command += list(hydra_cfg.overrides.task)
    hydra_overrides = list(hydra_cfg.overrides.hydra)
    command += [
        o
        for o, key in zip(hydra_overrides, override_keys(hydra_overrides), strict=True)
        if not key.startswith(_LAUNCH_KEYS)
    ]
    command += [
        f"hydra.run.dir={_quote(str(hydra_cfg.runtime.output_dir))}",
        "hydra.output_subdir=null",
        f"hydra.job.name={hydra_cfg.job.name}_rank{local_rank}",
    ]
    return command, str(hydra_cfg.runtime.cwd)


def register_launch(finish: Callable[[bool], None]) -> None:
    """Record a launch of child ranks: :func:`job_scope` calls ``finish(failed)`` when the job ends."""
    _launches.append(finish)


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (always true outside distributed runs).

    Lightning sets the rank once the processes are up; before that it comes from ``RANK``,
    ``LOCAL_RANK`` or ``SLURM_PROCID``.
    """
    return int(getattr(rank_zero_only, "rank", 0)) == 0


@contextmanager
def job_scope() -> Iterator[None]:
    """Run one job; then end the child ranks and process group it started and restore the environment."""
    saved = {name: os.environ.get(name) for name in DDP_ENV}
    first = len(_launches)
    failed = True
    try:
        yield
        failed = False
    finally:
        launched = _launches[first:]
        del _launches[first:]
        for finish in launched:
            finish(failed)
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if launched:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def instantiate_trainer(trainer_cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """``hydra.utils.instantiate(trainer_cfg, **kwargs)``, with device settings checked.

    Raises:
        MatchnetError: more devices than the machine has (GPUs, or CPU cores for
            ``accelerator=cpu`` processes), or another device setting Lightning rejects.
    """
    try:
        trainer: pl.Trainer = hydra.utils.instantiate(trainer_cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if not isinstance(cause, MisconfigurationException):
            raise
        raise MatchnetError(
            f"Lightning rejected the trainer settings (trainer.accelerator="
            f"{trainer_cfg.get('accelerator')!r}, trainer.devices={trainer_cfg.get('devices')!r}, "
            f"trainer.num_nodes={trainer_cfg.get('num_nodes')!r}): {cause} Ask for devices this machine "
            "has (fewer trainer.devices, or trainer.accelerator=cpu)."
        ) from err
    cpus = _available_cpus()
    if isinstance(trainer.accelerator, CPUAccelerator) and trainer.num_devices > cpus:
        raise MatchnetError(
            f"trainer.devices={trainer.num_devices} CPU processes but this machine has only {cpus} "
            f"CPU cores; set trainer.devices to at most {cpus}."
        )
    return trainer


_EPISODE_KEYS = {"train": "train_episodes_per_epoch", "val": "val_episodes", "test": "test_episodes"}


def check_episodes(trainer: pl.Trainer, datamodule: Any, stages: Sequence[str]) -> None:
    """Every process must get at least one episode of each of ``stages``.

    Training episodes per epoch are split evenly over the ``W = trainer.world_size`` processes
    (``floor(E / W)`` each, one optimiser step per ``W`` episodes); validation and test episodes
    are split without padding, so each is counted exactly once.

    Raises:
        MatchnetError: a stage has fewer episodes than processes.
    """
    world = trainer.world_size
    episodes = getattr(datamodule, "episodes", {})
    for stage in stages:
        count = episodes.get(stage)
        if world > 1 and count is not None and count < world:
            key = _EPISODE_KEYS[stage]
            raise MatchnetError(
                f"data.{key}={count} is fewer than the {world} DDP processes (trainer.devices x "
                f"trainer.num_nodes), so a process would get no {stage} episode; set data.{key} to at "
                f"least {world} or use fewer devices."
            )
