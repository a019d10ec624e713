"""The only module of matchnet that uses Lightning's private parts (``tests/test_pins.py`` checks them).

- :class:`HydraDDPStrategy` / :class:`HydraSubprocessLauncher`: Lightning's ``DDPStrategy`` whose
  subprocess launcher starts the child ranks with the Hydra job's command
  (:func:`matchnet.distributed.child_command`) instead of ``sys.argv``; see ``matchnet.distributed``.
- :func:`episodes_done_this_epoch` and :func:`restart_training_iterator`: how far into its epoch a
  resumed checkpoint was (the training loop's batch progress), and starting that epoch's episodes
  anew once the sampler knows it (``matchnet.resume.ResumeEpisodes``).

Lightning is pinned to the minor series these were written against (pyproject.toml).
"""

from __future__ import annotations

import logging
import os
import subprocess
from typing import Any

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

from matchnet import distributed
from matchnet.errors import MatchnetError

log = logging.getLogger(__name__)

CHILD_EXIT_TIMEOUT_S = 300.0
"""How long the launching process waits for its child ranks once its own job is done."""


def episodes_done_this_epoch(trainer: pl.Trainer) -> int:
    """Training episodes of the current epoch that the checkpoint being resumed had already trained on.

    0 unless ``trainer.fit`` is restoring a mid-epoch checkpoint. ``processed`` counts the episodes
    whose optimiser step is done, whether the checkpoint was written at a batch end or on a signal.
    """
    loop = trainer.fit_loop
    if not loop.restarting:
        return 0
    return int(loop.epoch_loop.batch_progress.current.processed)


def restart_training_iterator(trainer: pl.Trainer) -> None:
    """Create the training DataLoader's iterator again, e.g. after its sampler changed.

    ``FitLoop.setup_data`` creates the first epoch's iterator (and prefetches one batch) before any
    callback hook of ``fit`` runs; the epoch loop re-creates it only for later epochs.
    """
    fetcher = trainer.fit_loop._data_fetcher
    if fetcher is not None:
        iter(fetcher)


class _StoppableObserver(_ChildProcessObserver):
    """Lightning's child-process watchdog (a crashed rank takes the job down), which can be stopped."""

    stopped = False

    def _run(self) -> bool:
        return True if self.stopped else super()._run()


class HydraSubprocessLauncher(_SubprocessScriptLauncher):
    """Lightning's subprocess launcher; under Hydra, children run ``distributed.child_command``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._observer: _StoppableObserver | None = None

    def launch(self, function: Any, *args: Any, trainer: pl.Trainer | None = None, **kwargs: Any) -> Any:
        if not HydraConfig.initialized():
            return super().launch(function, *args, trainer=trainer, **kwargs)
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            self._observer = _StoppableObserver(main_pid=os.getpid(), child_processes=self.procs)
            self._observer.start()
            distributed.register_launch(self.finish)
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self.procs = []
        os.environ["MASTER_ADDR"] = self.cluster_environment.main_address
        os.environ["MASTER_PORT"] = str(self.cluster_environment.main_port)
        os.environ["NODE_RANK"] = str(self.cluster_environment.node_rank())
        os.environ["LOCAL_RANK"] = str(self.cluster_environment.local_rank())
        os.environ["WORLD_SIZE"] = f"{self.num_processes * self.num_nodes}"
        for local_rank in range(1, self.num_processes):
            env = os.environ.copy()
            env["LOCAL_RANK"] = str(local_rank)
            if os.environ.get("PL_GLOBAL_SEED") is None:
                env.pop("PL_GLOBAL_SEED", None)
            command, cwd = distributed.child_command(local_rank)
            log.info("Starting DDP rank %d: %s", local_rank, " ".join(command))
            self.procs.append(subprocess.Popen(command, env=env, cwd=cwd))

    def finish(self, failed: bool) -> None:
        """Stop watching the children, then wait for them (or, when the job ``failed``, kill them)."""
        if self._observer is not None:
            self._observer.stopped = True
        for proc in self.procs:
            if not failed:
                try:
                    proc.wait(timeout=CHILD_EXIT_TIMEOUT_S)
                    continue
                except subprocess.TimeoutExpired:
                    log.warning("DDP child process %d did not exit; killing it.", proc.pid)
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class HydraDDPStrategy(DDPStrategy):
    """Lightning's ``DDPStrategy`` whose child ranks re-enter the current Hydra job (``trainer=ddp``).

    Takes ``DDPStrategy``'s arguments (``process_group_backend``: ``None`` picks NCCL on GPUs and
    Gloo on CPUs; ``find_unused_parameters``, ``timeout``, ...). ``start_method`` must stay
    ``"popen"``: with ``spawn``/``fork`` (``ddp_spawn``) Lightning hands only the weights and logged
    metrics back to the launching process, not the test episodes' accuracies that the result is made of.
    """

    def _configure_launcher(self) -> None:
        if self._start_method != "popen":
            raise MatchnetError(
                f"trainer.strategy.start_method={self._start_method!r} is not supported: matchnet's DDP "
                "runs every rank as its own process (start_method=popen, the default); remove the setting."
            )
        assert self.cluster_environment is not None
        self._launcher = HydraSubprocessLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
