"""Resuming an interrupted training run: which checkpoint, is it compatible, where the episodes continue.

``src/train.py ckpt_path=...`` accepts

- ``last``: ``<run dir>/checkpoints/last.ckpt`` of this run folder; pass the interrupted run's folder
  as ``hydra.run.dir=...`` (in a sweep, the same ``hydra.sweep.dir``). It must exist.
- ``auto``: the same file when it exists, else a fresh start (for jobs that may be requeued).
- a path: that checkpoint.

For ``last`` and ``auto`` Lightning finds the file (``trainer.fit(ckpt_path="last")``: the newest
``last*.ckpt`` of the ModelCheckpoint folder; matchnet's ``callbacks.last`` writes only ``last.ckpt``).
What this module adds: ``last`` without a checkpoint is an error (Lightning would start fresh), the
checkpoint's model settings are checked against the run's before anything starts, and
:class:`ResumeEpisodes` makes a run resumed mid-epoch skip the episodes of that epoch it has already
trained on. The training episode stream is a pure function of ``(seed, epoch, index)``, so the resumed
run sees exactly the episodes of an uninterrupted one.

Why :class:`ResumeEpisodes` is written here: Lightning restores the loop's step counters from a
mid-epoch checkpoint but restarts the epoch's DataLoader from its first batch (Lightning-AI/
pytorch-lightning#19764, "Resume from mid steps inside an epoch", open), so without it a resumed run
would train on the epoch's first episodes twice. Lightning's stateful-dataloader support
(``torchdata.stateful_dataloader``) is the way to drop it once the episode sampler is made stateful.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from matchnet.checkpoints import read_checkpoint
from matchnet.errors import MatchnetError
from matchnet.lightning_internals import episodes_done_this_epoch, restart_training_iterator

log = logging.getLogger(__name__)
LAST = "last.ckpt"
#: ckpt_path values of src/train.py that name the run folder's own last checkpoint.
RESUME_KEYWORDS = ("last", "auto")


def checkpoint_dir(cfg: DictConfig, output_dir: Path) -> Path:
    """Where this run's ModelCheckpoints write (``callbacks.last.dirpath``)."""
    dirpath = OmegaConf.select(cfg, "callbacks.last.dirpath", default=None) or OmegaConf.select(
        cfg, "callbacks.checkpoint.dirpath", default=None
    )
    return Path(dirpath) if dirpath else output_dir / "checkpoints"


def resolve_ckpt_path(ckpt_path: str | None, checkpoints: Path) -> str | None:
    """What to pass to ``trainer.fit(ckpt_path=...)``: ``"last"``, a file, or None for a fresh start."""
    if ckpt_path is None:
        return None
    if ckpt_path in RESUME_KEYWORDS:
        last = checkpoints / LAST
        if last.is_file():
            log.info("Resuming from %s", last)
            return "last"
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


def check_compatible(path: str | Path, model: Mapping[str, Any], data: Mapping[str, Any] | None) -> None:
    """MatchnetError naming every model setting in which the checkpoint differs from this run's config.

    Data settings that differ (another way, shot or episode count) are allowed but logged: the
    resumed run continues with the new ones.
    """
    hparams = read_checkpoint(path, mmap=True)["hyper_parameters"]
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


def _samplers(loaders: Any) -> list[Any]:
    if isinstance(loaders, Mapping):
        return [s for loader in loaders.values() for s in _samplers(loader)]
    if isinstance(loaders, list | tuple):
        return [s for loader in loaders for s in _samplers(loader)]
    sampler = getattr(loaders, "sampler", None)
    return [sampler] if sampler is not None else []


class ResumeEpisodes(pl.Callback):
    """A run resumed mid-epoch continues with the epoch's next episode, not its first.

    Lightning restores the loop's progress but restarts a map-style DataLoader at the beginning of
    the epoch; this tells the training sampler (``EpisodeSampler.start``) how many of its indices to
    skip, then has the epoch's iterator made again. ``on_train_start`` is the first hook after the
    training DataLoader is built (``FitLoop.setup_data``, which also creates that iterator), once per
    ``fit``; Lightning does not call ``on_train_epoch_start`` for an epoch it resumes in the middle.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = episodes_done_this_epoch(trainer)
        samplers = [s for s in _samplers(trainer.train_dataloader) if hasattr(s, "start")]
        if done and samplers:
            for sampler in samplers:
                sampler.start = done
            restart_training_iterator(trainer)
