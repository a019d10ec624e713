"""Lightning callbacks of matchnet."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

from matchnet.data import Episode
from matchnet.plots import figure_to_array, plot_attention, plot_episode


class EpisodePlotter(pl.Callback):
    """Logs the first validation episode of each validation run to W&B: images with predicted
    and true labels, and the attention heatmap ``a(x^, x_i)``."""

    def __init__(self, max_queries: int = 10) -> None:
        self.max_queries = max_queries

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Episode,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if batch_idx != 0 or trainer.sanity_checking or not loggers or not trainer.is_global_zero:
            return
        with torch.no_grad():
            predicted = pl_module(batch).argmax(dim=1)
            weights = pl_module.net.attention(batch.support_x, batch.query_x)
        episode = figure_to_array(
            plot_episode(
                batch.support_x, batch.support_y, batch.query_x, batch.query_y, predicted, self.max_queries
            )
        )
        attention = figure_to_array(plot_attention(weights, batch.support_y, batch.query_y))
        for logger in loggers:
            logger.log_image(key="val/episode", images=[episode], step=trainer.global_step)
            logger.log_image(key="val/attention", images=[attention], step=trainer.global_step)
