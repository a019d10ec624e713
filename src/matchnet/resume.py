"""Resuming an interrupted training run: which checkpoint, is it compatible, where the episodes continue.

``src/train.py ckpt_path=...`` accepts

- ``last``: ``<run dir>/checkpoints/last.ckpt`` of this run folder; pass the interrupted run's folder
  as ``hydra.run.dir=...`` (in a sweep, the same ``hydra.sweep.dir``). It must exist.
- ``auto``: the same file when it exists, else a fresh start (for jobs that may be requeued).
- a path: that checkpoint.

A checkpoint restores the weights, the optimiser and scheduler, the global step, the best validation
accuracy and the ModelCheckpoint state; the training episode stream is a pure function of
``(seed, epoch, index)``, and a run resumed mid-epoch skips the episodes of that epoch it has already
trained on (``episodes_done_this_epoch``), so it sees exactly the episodes of an uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from matchnet.errors import MatchnetError

log = logging.getLogger(__name__)
LAST = "last.ckpt"
#: ckpt_path values of src/train.py that name the run folder's own last checkpoint.
RESUME_KEYWORDS = ("last", "auto")


def episodes_done_this_epoch(trainer: pl.Trainer) -> int:
    """Training episodes of the current epoch that the checkpoint being resumed had already trained on.

    0 unless ``trainer.fit`` is restoring a mid-epoch checkpoint. Lightning restores its batch
    progress but restarts a map-style DataLoader from the beginning of the epoch; the sampler skips
    this many of its indices instead. ``processed`` counts the episodes whose optimiser step is done,
    whether the checkpoint was written at a batch end (every_n_train_steps) or on a signal.
    """
    loop = trainer.fit_loop
    if not loop.restarting:
        return 0
    return int(loop.epoch_loop.batch_progress.current.processed)


def checkpoint_dir(cfg: DictConfig, output_dir: Path) -> Path:
    """Where this run's ModelCheckpoint writes (``callbacks.checkpoint.dirpath``)."""
    dirpath = OmegaConf.select(cfg, "callbacks.checkpoint.dirpath", default=None)
    return Path(dirpath) if dirpath else output_dir / "checkpoints"


def resolve_ckpt_path(ckpt_path: str | None, checkpoints: Path) -> str | None:
    """The checkpoint file to resume from, or None for a fresh start (see the module docstring)."""
    if ckpt_path is None:
        return None
    if ckpt_path in RESUME_KEYWORDS:
        last = checkpoints / LAST
        if last.is_file():
            log.info("Resuming from %s", last)
            return str(last)
        if ckpt_path == "auto":
            log.info("ckpt_path=auto: no %s yet, starting a fresh run", last)
            return None
        raise MatchnetError(
            f"ckpt_path=last but {last} does not exist. 'last' means the last.ckpt of this run's folder: "
            f"pass the interrupted run's folder too (hydra.run.dir=<its folder>), or pass the file itself "
            f"(ckpt_path=<run folder>/checkpoints/last.ckpt); ckpt_path=auto starts fresh when there is none."
        )
    if not Path(ckpt_path).is_file():
        raise MatchnetError(
            f"ckpt_path={ckpt_path} does not exist or is not a file; pass a checkpoint written by "
            "src/train.py (its run folder holds checkpoints/last.ckpt), or ckpt_path=last / auto."
        )
    return ckpt_path


def _flatten(config: Any, prefix: str) -> dict[str, Any]:
    if isinstance(config, Mapping):
        flat: dict[str, Any] = {}
        for key, value in config.items():
            flat |= _flatten(value, f"{prefix}.{key}")
        return flat
    return {prefix: config}


def differences(
    stored: Mapping[str, Any] | None, requested: Mapping[str, Any] | None, prefix: str
) -> list[str]:
    """``"key: checkpoint X, now Y"`` for every setting that differs between two config mappings."""
    old, new = _flatten(stored or {}, prefix), _flatten(requested or {}, prefix)
    missing = object()
    return [
        f"{key}: checkpoint {old.get(key, '(absent)')!r}, now {new.get(key, '(absent)')!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key, missing) != new.get(key, missing)
    ]


def read_hparams(path: str | Path) -> dict[str, Any]:
    """The hyper-parameters stored in a checkpoint (MatchnetError when it is unreadable or foreign)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # truncated, not a zip, not a pickle: all mean "not a usable checkpoint"
        raise MatchnetError(
            f"ckpt_path={path} is not a readable checkpoint ({type(err).__name__}: {err}); it may be "
            "truncated or not a PyTorch file. Point ckpt_path at a .ckpt written by src/train.py."
        ) from err
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, Mapping) or "model" not in hparams:
        raise MatchnetError(
            f"ckpt_path={path} was not written by matchnet's src/train.py (no model settings in it); "
            "pass a checkpoint from a matchnet run."
        )
    return dict(hparams)


def check_compatible(path: str | Path, model: Mapping[str, Any], data: Mapping[str, Any] | None) -> None:
    """MatchnetError naming every model setting in which the checkpoint differs from this run's config.

    Data settings that differ (another way, shot or episode count) are allowed but logged: the
    resumed run continues with the new ones.
    """
    hparams = read_hparams(path)
    changed = differences(hparams["model"], model, "model")
    if changed:
        raise MatchnetError(
            f"ckpt_path={path} was trained with other model settings than this run asks for: "
            f"{'; '.join(changed)}. Resume with the checkpoint's settings (e.g. "
            f"{changed[0].split(':')[0]}=<checkpoint value>), or start a new run without ckpt_path."
        )
    changed_data = [
        d for d in differences(hparams.get("data"), data, "data") if not d.startswith("data.root")
    ]
    if changed_data:
        log.warning("Resuming %s with other data settings: %s", path, "; ".join(changed_data))
