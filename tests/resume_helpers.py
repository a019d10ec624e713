"""Test-only Lightning callback, importable by the entry points when ``tests/`` is on PYTHONPATH."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


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
