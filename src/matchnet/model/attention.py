"""The attention kernel a(x^, x_i) = softmax_i c(f(x^), g(x_i)) / temperature, and its distances c.

A distance maps query embeddings ``f [Q, D]`` and support embeddings ``g [S, D]`` to similarity
logits ``[Q, S]`` (larger = closer). To add one, write the function and add it to ``DISTANCES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matchnet.errors import MatchnetError

Distance = Callable[[Tensor, Tensor], Tensor]


def cosine(f: Tensor, g: Tensor) -> Tensor:
    """Cosine similarity, both sides L2-normalised (the paper's choice): ``[Q, D], [S, D] -> [Q, S]``."""
    return F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).T


def euclidean(f: Tensor, g: Tensor) -> Tensor:
    """Negative squared euclidean distance ``-||f - g||^2``: ``[Q, D], [S, D] -> [Q, S]``."""
    squared = f.pow(2).sum(-1, keepdim=True) + g.pow(2).sum(-1) - 2 * f @ g.T
    return -squared.clamp_min(0)


def dot(f: Tensor, g: Tensor) -> Tensor:
    """Dot product ``f . g``: ``[Q, D], [S, D] -> [Q, S]``."""
    return f @ g.T


DISTANCES: dict[str, Distance] = {"cosine": cosine, "euclidean": euclidean, "dot": dot}


def get_distance(name: str) -> Distance:
    """The distance registered as ``name``; a MatchnetError naming ``model.distance`` otherwise."""
    if name not in DISTANCES:
        raise MatchnetError(
            f"model.distance={name!r} is not a known distance; choose one of: {', '.join(sorted(DISTANCES))}."
        )
    return DISTANCES[name]


class AttentionKernel(nn.Module):
    """``log a(x^, x_i) = log_softmax_i(c(f(x^), g(x_i)) / temperature)``: ``f [Q, D], g [S, D] -> [Q, S]``.

    The temperature is stored as its log (a parameter when ``learn_temperature``, else a buffer), so a
    learnt temperature stays positive and checkpoints have the same keys either way.
    """

    def __init__(
        self, distance: str = "cosine", temperature: float = 1.0, learn_temperature: bool = False
    ) -> None:
        super().__init__()
        self.distance_name = distance
        self.distance = get_distance(distance)
        if not (isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0):
            raise MatchnetError(f"model.temperature={temperature!r} must be a positive finite number.")
        log_temperature = torch.tensor(math.log(temperature))
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            self.register_buffer("log_temperature", log_temperature)

    @property
    def temperature(self) -> Tensor:
        """The current temperature (a 0-dim tensor)."""
        return self.log_temperature.exp()

    def forward(self, f: Tensor, g: Tensor) -> Tensor:
        """Log attention weights ``[Q, S]``; each row's exp sums to 1 over the support."""
        logits = self.distance(f, g) * torch.exp(-self.log_temperature).to(f.dtype)
        return logits.log_softmax(dim=-1)

    def extra_repr(self) -> str:
        learnt = isinstance(self.log_temperature, nn.Parameter)
        return f"distance={self.distance_name!r}, learn_temperature={learnt}"
