"""The prototype read-out of Prototypical Networks (Snell et al., 2017), on Matching Network embeddings.

Each class c is represented by the mean of its support embeddings,

    p_c = 1 / |S_c| sum_{i: y_i = c} g(x_i)

and a query is classified by the same kernel over the prototypes instead of the support images,

    log P(y^ = c | x^, S) = log_softmax_c(c(f(x^), p_c) / temperature)

With ``distance="euclidean"``, no FCE and temperature 1 this is exactly Prototypical Networks (their
eq. 2, squared euclidean distance); with ``distance="cosine"`` it is a cosine-prototype classifier.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def class_means(g: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """Prototypes p_c: ``g [S, D], support_y [S] (labels 0..n_way-1) -> [n_way, D]``.

    A class without supports gets the zero vector (its count is clamped to 1).
    """
    one_hot = F.one_hot(support_y, n_way).to(g.dtype)  # [S, n_way]
    counts = one_hot.sum(0).clamp_min(1).unsqueeze(-1)  # [n_way, 1]
    return one_hot.T @ g / counts
