"""The LightningModule: a Matching Network trained and evaluated on episodes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torchmetrics import CatMetric, MaxMetric, MeanMetric

from matchnet.data import Episode
from matchnet.errors import MatchnetError
from matchnet.model import MatchingNetwork

STAGES = ("train", "val", "test")


def _plain(config: Mapping[str, Any] | DictConfig | None) -> dict[str, Any] | None:
    """A resolved, plain-``dict`` copy of a config node (what checkpoints store)."""
    if config is None:
        return None
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)  # type: ignore[return-value]


def mean_ci95(values: Tensor) -> tuple[float, float]:
    """Mean and half-width of the normal-approximation 95% confidence interval.

    Args:
        values: per-episode accuracies, shape ``[E]``.
    """
    values = values.double().flatten()
    n = values.numel()
    if n == 0:
        return float("nan"), float("nan")
    std = values.std(unbiased=True).item() if n > 1 else 0.0
    return values.mean().item(), 1.96 * std / math.sqrt(n)


class MatchingNetModule(pl.LightningModule):
    """Trains a :class:`~matchnet.model.MatchingNetwork` by minimising -log P(y^ | x^, S).

    Every constructor argument is a plain config mapping, stored in the checkpoint, so a
    checkpoint rebuilds its network without the config that made it
    (``MatchingNetModule.load_from_checkpoint(path)``).

    Args:
        model: ``_target_`` config of the network (``conf/model/*.yaml``).
        optimizer: ``_target_`` config of the optimiser, without ``params``.
        scheduler: optional ``_target_`` config of a learning-rate scheduler, stepped per epoch.
        data: the data settings the network was trained with (image size, way, shot, split);
            kept so evaluation and prediction can default to them.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "model": _plain(model),
                "optimizer": _plain(optimizer),
                "scheduler": _plain(scheduler),
                "data": _plain(data),
            }
        )
        net = hydra.utils.instantiate(self.hparams.model)
        if not isinstance(net, MatchingNetwork):
            raise MatchnetError(
                f"model._target_ built a {type(net).__name__}, not a matchnet.model.MatchingNetwork; "
                "set model._target_ to matchnet.model.MatchingNetwork."
            )
        self.net = net
        # Per-stage mean loss and accuracy ("train" alone would clash with Module.train).
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}_{name}": MeanMetric() for stage in STAGES for name in ("loss", "acc")}
        )
        self.val_acc_best = MaxMetric()
        self.test_episode_acc = CatMetric()
        self.trained_episodes = 0

    def forward(self, episode: Episode) -> Tensor:
        """Log-probabilities of the query labels, ``[N*Q, N]``."""
        return self.net(episode.support_x, episode.support_y, episode.query_x, episode.way)

    def _step(self, episode: Episode, stage: str) -> tuple[Tensor, Tensor]:
        log_probs = self(episode)
        loss = F.nll_loss(log_probs, episode.query_y)
        acc = (log_probs.argmax(dim=1) == episode.query_y).float().mean()
        on_step = stage == "train"
        for name, value in (("loss", loss), ("acc", acc)):
            metric = self.metrics[f"{stage}_{name}"]
            metric(value)
            self.log(f"{stage}/{name}", metric, on_step=on_step, on_epoch=True, prog_bar=name == "acc" or on_step)
        return loss, acc

    def training_step(self, episode: Episode, batch_idx: int) -> Tensor:
        loss, _ = self._step(episode, "train")
        return loss

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        self._step(episode, "val")

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.metrics["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, episode: Episode, batch_idx: int) -> None:
        _, acc = self._step(episode, "test")
        self.test_episode_acc.update(acc)

    def on_test_epoch_start(self) -> None:
        self.test_episode_acc.reset()

    def on_test_epoch_end(self) -> None:
        per_episode = self.test_episode_acc.compute()
        mean, ci95 = mean_ci95(per_episode)
        self.log("test/acc_ci95", ci95)
        self.test_summary = {"test_acc": mean, "test_acc_ci95": ci95, "episodes": per_episode.numel()}

    def on_train_end(self) -> None:
        self.trained_episodes = self.global_step

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # One optimiser step per training episode: the step count is the episode count.
        self.trained_episodes = int(checkpoint.get("global_step", 0))

    def configure_optimizers(self) -> Any:
        optimizer = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = hydra.utils.instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
