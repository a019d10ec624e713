"""The baseline classifier of Vinyals et al. (2016), Table 1, and Baseline++ (Chen et al. 2019).

The embedding (any ``model/encoder``, Conv4 by default) is trained with a classification head over all
training classes (the 4,112 rotated characters of the Vinyals split) on shuffled mini-batches of
training images (``data.train_batch_size``), with the usual cross-entropy. The head is ``linear``
(the paper's baseline) or ``cosine`` (Baseline++: scaled cosine similarity to one weight vector per
class). New classes are then classified by the network's kernel on the embedding: the module's
``net`` is a :class:`~matchnet.model.MatchingNetwork` without FCE (cosine attention by default), and
validation and test run on the same fixed episodes as the Matching Network's, so the best checkpoint
is chosen the same way (``val/acc``).

Checkpoints hold the head too (for resuming), but everything that reads a checkpoint uses ``net``:
``src/eval.py``, ``src/predict.py``, :class:`~matchnet.classifier.OneShotClassifier` and the demo load
it as a Matching Network, and ``model.encoder_init=PATH`` starts a Matching Network's encoder from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matchnet.baselines.common import BaselineModule, trained_only_encoder
from matchnet.data import ImageBatch
from matchnet.errors import MatchnetError
from matchnet.rules import choice, integer, number

#: The classification heads: ``linear`` (the paper's baseline), ``cosine`` (Baseline++).
HEADS = ("linear", "cosine")
SETTING_RULES = {
    "head": choice(HEADS),
    "head_scale": number(0, inclusive=False),
    "num_classes": integer(2, optional=True),
}


class CosineHead(nn.Module):
    """Baseline++'s head: ``logits_c = scale * cos(f, w_c)``, one weight vector ``w_c`` per class.

    Shapes: ``f [B, dim] -> [B, num_classes]``.
    """

    def __init__(self, dim: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation

    def forward(self, f: Tensor) -> Tensor:
        return self.scale * F.normalize(f, dim=-1) @ F.normalize(self.weight, dim=-1).T

    def extra_repr(self) -> str:
        return f"dim={self.weight.shape[1]}, num_classes={self.weight.shape[0]}, scale={self.scale}"


def make_head(kind: str, dim: int, num_classes: int, scale: float) -> nn.Module:
    """The classification head ``kind`` (one of ``HEADS``) from ``dim`` features to ``num_classes``."""
    return nn.Linear(dim, num_classes) if kind == "linear" else CosineHead(dim, num_classes, scale)


class BaselineClassifierModule(BaselineModule):
    """Trains ``net.encoder`` as a classifier of all training classes; validates and tests ``net`` on
    episodes.

    Args:
        model, optimizer, scheduler, data, nan_policy: as :class:`~matchnet.module.MatchingNetModule`;
            ``model`` must have no trainable part besides the encoder (``fce=false``,
            ``learn_temperature=false``), since only the encoder and the head are trained.
        head: ``linear`` or ``cosine`` (Baseline++).
        head_scale: the cosine head's scale (its logits are ``head_scale * cos``); unused by ``linear``.
        num_classes: the number of training classes; None: taken from the data module when fitting
            starts (``configure_model``), then stored with the checkpoint.
    """

    #: What the training DataLoader must give: ``ImageBatch`` es (``data.train_batch_size``).
    TRAINS_ON: ClassVar[str] = "images"
    #: Hyperparameters besides the shared ones that a checkpoint rebuilds the module with.
    STORED_SETTINGS: ClassVar[tuple[str, ...]] = ("head", "head_scale", "num_classes")

    def __init__(
        self,
        model: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        nan_policy: str = "stop",
        head: str = "linear",
        head_scale: float = 10.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__(model, optimizer, scheduler, data, nan_policy)
        self.check_settings(
            {"head": head, "head_scale": head_scale, "num_classes": num_classes}, self.hparams.model
        )
        self.hparams.update({"head": head, "head_scale": float(head_scale), "num_classes": num_classes})
        self.head: nn.Module | None = None
        if num_classes is not None:
            self.head = make_head(head, int(self.net.encoder.embedding_dim), num_classes, head_scale)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], model: Mapping[str, Any]) -> None:
        """MatchnetError naming the first bad ``method.*`` setting, or a model with parts this training
        would leave untrained."""
        for key, rule in SETTING_RULES.items():
            if key in settings:
                rule.validate(f"method.{key}", settings[key])
        trained_only_encoder(model, "the baseline classifier")

    def configure_model(self) -> None:
        """The head, sized by the training classes of the data module (once; a checkpoint stores it)."""
        if self.head is not None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "num_classes"):
            raise MatchnetError(
                "The baseline classifier needs the data module to know its training classes; fit it with "
                "datamodule=... (src/train.py does), or pass method.num_classes."
            )
        num_classes = datamodule.num_classes("train")
        self.hparams["num_classes"] = num_classes
        dim = int(self.net.encoder.embedding_dim)
        self.head = make_head(self.hparams.head, dim, num_classes, self.hparams.head_scale)

    def training_step(self, batch: ImageBatch, batch_idx: int) -> Tensor | None:
        if not isinstance(batch, ImageBatch):
            raise MatchnetError(
                f"The baseline classifier trains on image batches but got a {type(batch).__name__}; set "
                "data.train_batch_size (e.g. 128)."
            )
        assert self.head is not None, "configure_model builds the head before training"

        def step() -> tuple[Tensor, Tensor]:
            g, _ = self.net.embed(batch.x, batch.x[:0])  # the encoder alone (no FCE)
            logits = self.head(g)
            loss = F.cross_entropy(logits, batch.y)
            return loss, logits

        loss, logits = self._guarded(step, batch_idx)
        if loss is None:
            return None
        acc = (logits.argmax(dim=1) == batch.y).float().mean()
        self._log_step("train", loss, acc)
        return loss

    def trained_images(self) -> int:
        """Training images behind the current weights: batches (over all processes) x batch size."""
        return self.trained_episodes * int((self.hparams.data or {}).get("train_batch_size") or 0)

    def result_fields(self) -> dict[str, Any]:
        """What the result line adds for this method: its training budget in batches and images."""
        return {
            "method": "baseline",
            "head": self.hparams.head,
            "train_episodes": 0,
            "train_batches": self.trained_episodes,
            "train_images": self.trained_images(),
        }
