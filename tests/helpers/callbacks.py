"""Test-only Lightning callbacks that the entry points load by ``_target_`` (``+callbacks.<name>._target_=
helpers.callbacks.<Class>``) in a fresh process with ``tests/`` on ``PYTHONPATH``
(``helpers.scripts.pythonpath_with_tests``); they never run outside the tests.

- :class:`SlowDown` lets a test interrupt a tiny run at a known step (``tests/test_resume.py``,
  ``tests/test_dashboards.py``).
- :class:`EpisodeProbe` records which episodes each DDP rank trained, validated and tested on
  (``tests/test_ddp.py``).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from matchnet.data import Episode


class SlowDown(pl.Callback):
    """Sleep after every training episode and write the global step to ``marker``: lets a test
    interrupt a tiny run at a known point."""

    def __init__(self, seconds: float = 0.3, marker: str | None = None) -> None:
        self.seconds = seconds
        self.marker = marker

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.marker:
            Path(self.marker).write_text(str(trainer.global_step))
        time.sleep(self.seconds)


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
