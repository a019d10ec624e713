"""The running Hydra job as the rest of matchnet asks about it: its output folder, its command-line
overrides, and whether it is one job of a sweep.

Each answer is Hydra's runtime config (``HydraConfig``), with a plain default outside a Hydra app
(tests, ``OneShotClassifier`` from Python), so the entry points, the trackers and ``predict`` ask
here instead of importing the training pipeline for a path.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def output_dir() -> Path:
    """This job's Hydra output directory (the working directory outside a Hydra app)."""
    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()


def job_overrides() -> list[str]:
    """The command-line overrides of this job (empty outside a Hydra app); inside a sweep, the job's
    own values (``model.fce=true``), not the sweep's (``model.fce=true,false``)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def in_multirun() -> bool:
    """Whether this job is one of a sweep (``-m``), where a failed job must not end the others."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
