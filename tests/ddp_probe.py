"""A test-only Lightning callback: which episodes each DDP rank trained, validated and tested on.

Used by ``tests/test_ddp.py`` through ``+callbacks.probe._target_=ddp_probe.EpisodeProbe`` with
``tests/`` on ``PYTHONPATH``; it never runs outside the tests.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from matchnet.data import Episode


def episode_hash(episode: Episode) -> str:
    """A fingerprint of an episode's images and labels."""
    digest = hashlib.sha1()
    for tensor in (episode.support_x, episode.support_y, episode.query_x, episode.query_y):
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class EpisodeProbe(pl.Callback):
    """Writes ``<out_dir>/rank<global rank>.json``.

    Its content: ``{"train": [[epoch, hash], ...], "val": [[epoch, hash], ...], "test": [hash, ...]}``.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.seen: dict[str, list[Any]] = {"train": [], "val": [], "test": []}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: Any, batch: Episode, batch_idx: int
    ) -> None:
        self.seen["train"].append([trainer.current_epoch, episode_hash(batch)])

    def on_validation_batch_start(
        self, trainer: pl.Trainer, pl_module: Any, batch: Episode, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not trainer.sanity_checking:
            self.seen["val"].append([trainer.current_epoch, episode_hash(batch)])

    def on_test_batch_start(
        self, trainer: pl.Trainer, pl_module: Any, batch: Episode, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self.seen["test"].append(episode_hash(batch))

    def teardown(self, trainer: pl.Trainer, pl_module: Any, stage: str) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))
