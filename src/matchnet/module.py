"""The LightningModule: a Matching Network trained and evaluated on episodes."""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

STAGES = ("train", "val", "test")
NAN_POLICIES = ("stop", "skip")
#: The model setting that starts the encoder from another checkpoint's encoder weights
#: (``model.encoder_init=PATH``); it is the module's, not the network constructor's.
ENCODER_INIT = "encoder_init"


class NonFiniteLossError(MatchnetError):
    """A training episode gave a NaN or infinite loss and ``nan_policy`` is ``stop``."""


def _plain(config: Mapping[str, Any] | DictConfig | None) -> dict[str, Any] | None:
    """A resolved, plain-``dict`` copy of a config node (what checkpoints store)."""
    if config is None:
        return None
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    return OmegaConf.to_container(OmegaConf.create(dict(config)), resolve=True)  # type: ignore[return-value]


def network_config(model: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the network is built from: the model config without ``encoder_init``."""
    return {key: value for key, value in model.items() if key != ENCODER_INIT}


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


def _episode_numbers(loaders: Any) -> list[int] | None:
    """The episode numbers this process's test DataLoader yields, in order (its sampler's indices; one
    item is one episode), or None when they are not known up front (the batch index is the number)."""
    loader = loaders[0] if isinstance(loaders, (list, tuple)) and len(loaders) == 1 else loaders
    sampler = getattr(loader, "sampler", None)
    if getattr(loader, "batch_size", 1) is not None or sampler is None or not hasattr(sampler, "__len__"):
        return None
    return [int(n) for n in sampler]


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
        nan_policy: what a NaN or infinite training loss does: ``stop`` raises
            :class:`NonFiniteLossError` before the optimiser step (so the weights and the last
            checkpoint stay good), ``skip`` drops the episode (no optimiser step) and counts it in
            ``skipped_episodes``.
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        nan_policy: str = "stop",
    ) -> None:
        super().__init__()
        if nan_policy not in NAN_POLICIES:
            allowed = ", ".join(NAN_POLICIES)
            raise MatchnetError(f"nan_policy={nan_policy!r} is invalid: it must be one of {allowed}.")
        self.save_hyperparameters(
            {
                "model": _plain(model),
                "optimizer": _plain(optimizer),
                "scheduler": _plain(scheduler),
                "data": _plain(data),
                "nan_policy": nan_policy,
            }
        )
        self.nan_policy = nan_policy
        self.skipped_episodes = 0
        net = hydra.utils.instantiate(network_config(self.hparams.model))
        if not isinstance(net, MatchingNetwork):
            raise MatchnetError(
                f"model._target_ built a {type(net).__name__}, not a matchnet.model.MatchingNetwork; "
                "set model._target_ to matchnet.model.MatchingNetwork."
            )
        self.net = net
        # Per-stage mean loss and accuracy ("train" alone would clash with Module.train).
        # nan_strategy="disable": no NaN check, whose `if nans.any()` would wait for the device every step.
        # Accuracies are never NaN, and a non-finite training loss never reaches its metric (nan_policy).
        self.metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{name}": MeanMetric(
                    nan_strategy="disable" if stage == "train" or name == "acc" else "warn"
                )
                for stage in STAGES
                for name in ("loss", "acc")
            }
        )
        self.val_acc_best = MaxMetric()
        self.test_episode_acc = CatMetric()
        # Which episode each accuracy belongs to (under DDP each rank tests its share; gathered alike).
        self.test_episode_number = CatMetric(nan_strategy="disable")
        self._test_numbers: list[int] | None = None
        self.trained_episodes = 0

    def init_encoder(self, path: str) -> None:
        """Start the encoder from the encoder weights of the checkpoint at ``path`` (``model.encoder_init``).

        For a fresh run only (``src/train.py`` calls it before fitting, not when resuming); a missing,
        foreign or differently shaped checkpoint raises a MatchnetError naming ``model.encoder_init``.
        """
        from matchnet.checkpoints import load_encoder  # checkpoints imports this module

        load_encoder(self.net.encoder, path)

    def forward(self, episode: Episode) -> Tensor:
        """Log-probabilities of the query labels, ``[N*Q, N]``."""
        return self.net(episode.support_x, episode.support_y, episode.query_x, episode.way)

    def _step(self, episode: Episode, stage: str) -> tuple[Tensor, Tensor]:
        log_probs = self(episode)
        loss = F.nll_loss(log_probs, episode.query_y)
        acc = (log_probs.argmax(dim=1) == episode.query_y).float().mean()
        self._log_step(stage, loss, acc)
        return loss, acc

    def _log_step(self, stage: str, loss: Tensor, acc: Tensor) -> None:
        on_step = stage == "train"
        for name, value in (("loss", loss), ("acc", acc)):
            metric = self.metrics[f"{stage}_{name}"]
            metric(value)
            prog_bar = name == "acc" or on_step
            self.log(f"{stage}/{name}", metric, on_step=on_step, on_epoch=True, prog_bar=prog_bar)

    def training_step(self, episode: Episode, batch_idx: int) -> Tensor | None:
        # The forward pass updates the BatchNorm running statistics; keep a copy (a few KB, no sync)
        # to put back when the episode turns out non-finite, so no NaN reaches the buffers.
        buffers = {name: buffer.clone() for name, buffer in self.named_buffers() if name.startswith("net.")}
        log_probs = self(episode)
        loss = F.nll_loss(log_probs, episode.query_y)
        # One host read per episode; the step metrics below synchronise anyway (torchmetrics' NaN check).
        if not bool(torch.isfinite(loss)):
            with torch.no_grad():
                for name, buffer in self.named_buffers():
                    if name in buffers:
                        buffer.copy_(buffers[name])
            return self._non_finite(loss, batch_idx)
        acc = (log_probs.argmax(dim=1) == episode.query_y).float().mean()
        self._log_step("train", loss, acc)
        return loss

    def _non_finite(self, loss: Tensor, batch_idx: int) -> None:
        """Apply ``nan_policy`` to an episode whose loss is NaN or infinite."""
        where = f"epoch {self.current_epoch}, episode {batch_idx}, global step {self.global_step}"
        if self.nan_policy == "skip":
            self.skipped_episodes += 1
            log.warning("Skipped a training episode with loss %s (%s; nan_policy=skip)", loss.item(), where)
            return None  # Lightning then skips backward and the optimiser step
        folder = getattr(self.trainer.checkpoint_callback, "dirpath", None) if self._trainer else None
        kept = f" The checkpoints in {folder} hold the last good weights." if folder else ""
        raise NonFiniteLossError(
            f"The training loss became {loss.item()} at {where}; training stopped before the optimiser "
            f"step, so the weights are still finite.{kept} Lower optimizer.lr, set "
            "trainer.gradient_clip_val, or set nan_policy=skip to skip such episodes."
        )

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        self._step(episode, "val")

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.metrics["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def test_step(self, episode: Episode, batch_idx: int) -> None:
        _, acc = self._step(episode, "test")
        # 1-d, not 0-d: torchmetrics can gather different counts per DDP rank only for 1-d states
        # (a rank holding a single 0-d value would mismatch the all_gather of shapes).
        self.test_episode_acc.update(acc.reshape(1))
        number = batch_idx if self._test_numbers is None else self._test_numbers[batch_idx]
        self.test_episode_number.update(torch.tensor([number], device=acc.device))

    def on_test_epoch_start(self) -> None:
        self.test_episode_acc.reset()
        self.test_episode_number.reset()
        self._test_numbers = _episode_numbers(self.trainer.test_dataloaders)

    def on_test_epoch_end(self) -> None:
        # reshape: with a single episode, CatMetric.compute returns a 0-d tensor
        per_episode = self.test_episode_acc.compute().reshape(-1)
        numbers = self.test_episode_number.compute().reshape(-1)
        order = torch.argsort(numbers, stable=True)  # episode order, whatever rank tested each
        per_episode, numbers = per_episode[order], numbers[order]
        mean, ci95 = mean_ci95(per_episode)
        self.log("test/acc_ci95", ci95)
        self.test_summary = {
            "test_acc": mean,
            "test_acc_ci95": ci95,
            "episodes": per_episode.numel(),
            # per test episode, in episode order: its number in the test set and its accuracy
            "episode_numbers": [int(n) for n in numbers.tolist()],
            "episode_accuracies": per_episode.tolist(),
        }

    def _episodes_per_step(self) -> int:
        """Training episodes per optimiser step: one per process (``trainer.world_size`` under DDP)."""
        return self.trainer.world_size if self._trainer is not None else 1

    def on_train_end(self) -> None:
        self.trained_episodes = self.global_step * self._episodes_per_step()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # torchmetrics states are not in the state_dict; keep the best validation accuracy for resumes.
        if self.val_acc_best.update_called:
            checkpoint["val_acc_best"] = float(self.val_acc_best.compute())
        checkpoint["skipped_episodes"] = self.skipped_episodes
        checkpoint["trained_episodes"] = self.global_step * self._episodes_per_step()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # One optimiser step per training episode and process; older checkpoints: one process.
        self.trained_episodes = int(checkpoint.get("trained_episodes", checkpoint.get("global_step", 0)))
        self.skipped_episodes = int(checkpoint.get("skipped_episodes", 0))
        self.val_acc_best.reset()
        if "val_acc_best" in checkpoint:
            self.val_acc_best.update(torch.tensor(checkpoint["val_acc_best"], device=self.device))

    def configure_optimizers(self) -> Any:
        optimizer = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        scheduler = hydra.utils.instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
