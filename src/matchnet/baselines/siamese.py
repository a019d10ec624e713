"""The convolutional Siamese network of Koch et al. (2015), the Table 1 row of Vinyals et al. (2016).

Two images go through the same embedding (any ``model/encoder``, Conv4 by default); their
similarity is the weighted L1 distance of the embeddings passed through a sigmoid,

    p(same | x1, x2) = sigmoid(b + sum_j alpha_j |e(x1)_j - e(x2)_j|)

trained with the binary cross-entropy on same / different pairs. Here the pairs are every (query,
support) pair of a training episode (same class or not), the two kinds weighted equally as Koch et
al. drew them in equal numbers. A query is classified as the class of the support image with the
highest "same" probability (``readout="nearest"``).

``SiameseNetwork`` is a :class:`~matchnet.model.MatchingNetwork` without FCE whose kernel is the
weighted L1 one, so its checkpoints are evaluated and used for prediction like any other. Koch et
al.'s fine-tuned variant (further training on the support set of each test task) is not implemented.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import get_object
from torch import Tensor, nn

from matchnet.baselines.common import BaselineModule
from matchnet.data import Episode
from matchnet.errors import MatchnetError
from matchnet.model import MatchingNetwork


class WeightedL1Kernel(nn.Module):
    """Koch et al.'s similarity, the logits ``b + sum_j alpha_j |f_j - g_j|`` of p(same):
    ``[Q, D], [S, D] -> [Q, S]``.

    ``alpha`` starts at ``-1 / dim`` (so the first logits are minus the mean absolute difference: closer
    pairs are more alike) and ``b`` at 0. Called like the attention kernel it returns the log-softmax
    of the logits over the support, so the network's read-outs apply to it unchanged.
    """

    distance_name = "weighted_l1"

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((dim,), -1.0 / dim))
        self.bias = nn.Parameter(torch.zeros(()))

    def logits(self, f: Tensor, g: Tensor) -> Tensor:
        """The "same" logits of every (query, support) pair: ``f [Q, D], g [S, D] -> [Q, S]``."""
        return self.bias + (f.unsqueeze(1) - g.unsqueeze(0)).abs() @ self.alpha

    def forward(self, f: Tensor, g: Tensor) -> Tensor:
        """Log-softmax of the logits over the support, ``[Q, S]``."""
        return self.logits(f, g).log_softmax(dim=-1)


class SiameseNetwork(MatchingNetwork):
    """The embedding ``encoder`` with the weighted L1 kernel; ``readout`` (default ``nearest``: Koch et
    al.'s rule, the support image with the highest "same" probability decides) as in MatchingNetwork.

    Shapes as :class:`~matchnet.model.MatchingNetwork`; :meth:`same_probability` gives p(same) of
    every (query, support) pair.
    """

    def __init__(
        self,
        encoder: nn.Module,
        readout: str = "nearest",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__(
            encoder, fce=False, fce_steps=0, readout=readout, channels_last=channels_last, compile=compile
        )
        self.kernel = WeightedL1Kernel(int(encoder.embedding_dim))

    def same_logits(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """Logits of p(same) for every (query, support) pair, ``[Q, S]``."""
        g, f = self.embed(support_x, query_x)
        return self.kernel.logits(f, g)

    def same_probability(self, support_x: Tensor, query_x: Tensor) -> Tensor:
        """p(same | query, support) for every pair, ``[Q, S]``."""
        return torch.sigmoid(self.same_logits(support_x, query_x))


def pair_loss(logits: Tensor, same: Tensor) -> Tensor:
    """Binary cross-entropy of the "same" logits ``[Q, S]`` against the 0/1 targets ``same`` ``[Q, S]``,
    same and different pairs weighted equally: the mean of the two kinds' mean losses."""
    same = same.to(logits.dtype)
    positives = same.sum().clamp_min(1)
    negatives = (1 - same).sum().clamp_min(1)
    weight = same / (2 * positives) + (1 - same) / (2 * negatives)
    return F.binary_cross_entropy_with_logits(logits, same, weight=weight, reduction="sum")


class SiameseModule(BaselineModule):
    """Trains a :class:`SiameseNetwork` on the (query, support) pairs of training episodes; validates and
    tests it on the same fixed episodes as the Matching Network (``val/acc`` chooses the checkpoint).

    Arguments as :class:`~matchnet.module.MatchingNetModule`; ``model._target_`` must be
    ``matchnet.baselines.SiameseNetwork`` (``model=siamese``).
    """

    def __init__(
        self,
        model: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        nan_policy: str = "stop",
    ) -> None:
        self.check_settings({}, model)
        super().__init__(model, optimizer, scheduler, data, nan_policy)

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], model: Mapping[str, Any]) -> None:
        """MatchnetError unless the model is a Siamese network."""
        target = model.get("_target_")
        try:
            network = get_object(str(target))
        except Exception:  # an unknown target: the model check names it
            network = None
        if not (isinstance(network, type) and issubclass(network, SiameseNetwork)):
            raise MatchnetError(
                f"The Siamese training (method._target_=matchnet.baselines.SiameseModule) needs a Siamese "
                f"network, but model._target_={target!r}; choose model=siamese (as "
                "conf/experiment/results_siamese.yaml does)."
            )

    def training_step(self, episode: Episode, batch_idx: int) -> Tensor | None:
        net = self.net
        assert isinstance(net, SiameseNetwork)

        def step() -> tuple[Tensor, Tensor]:
            logits = net.same_logits(episode.support_x, episode.query_x)
            same = episode.query_y.unsqueeze(1) == episode.support_y.unsqueeze(0)
            return pair_loss(logits, same), logits

        loss, logits = self._guarded(step, batch_idx)
        if loss is None:
            return None
        # Koch et al.'s decision: the class of the support image most likely to be the same.
        acc = (episode.support_y[logits.argmax(dim=1)] == episode.query_y).float().mean()
        self._log_step("train", loss, acc)
        return loss

    def result_fields(self) -> dict[str, Any]:
        return {"method": "siamese"}
