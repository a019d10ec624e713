"""What the baseline training modules share: a guarded training step (``nan_policy``), the checkpoint
entry that names their class, and the check that nothing but the encoder is left to train."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import Tensor

from matchnet.checkpoints import MODULE_CLASS
from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule

T = TypeVar("T")


def trained_only_encoder(model: Mapping[str, Any], method: str) -> None:
    """MatchnetError when ``model`` has trainable parts that ``method`` never trains (it trains the
    encoder, and its own head or kernel): FCE's LSTMs or a learnt temperature would stay at their
    initial values in the checkpoint."""
    for key, why in (
        ("fce", "its LSTMs would keep their random initial weights"),
        ("learn_temperature", "the temperature would never change"),
    ):
        if model.get(key):
            raise MatchnetError(
                f"model.{key}=true with {method}, which trains the encoder only: {why}. "
                f"Set model.{key}=false (as conf/experiment/results_baseline.yaml does)."
            )


class BaselineModule(MatchingNetModule):
    """A training method other than episodic Matching Network training; ``net`` stays a MatchingNetwork,
    so validation, test, prediction and the demo use the inherited episode code unchanged."""

    def _guarded(self, step: Callable[[], tuple[Tensor, T]], batch_idx: int) -> tuple[Tensor | None, T]:
        """``step()`` -> ``(loss, extra)``; a NaN or infinite loss puts the network's buffers (BatchNorm
        statistics) back as they were and follows ``nan_policy`` (raise, or a None loss: no step)."""
        buffers = {name: b.clone() for name, b in self.named_buffers() if name.startswith("net.")}
        loss, extra = step()
        if bool(torch.isfinite(loss)):  # one host read per step, as in episodic training
            return loss, extra
        with torch.no_grad():
            for name, buffer in self.named_buffers():
                if name in buffers:
                    buffer.copy_(buffers[name])
        return self._non_finite(loss, batch_idx), extra

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        cls = type(self)
        checkpoint[MODULE_CLASS] = f"{cls.__module__}.{cls.__qualname__}"
