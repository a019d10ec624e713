"""Shared helpers for the model tests: small random episodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

Episode = tuple[Tensor, Tensor, Tensor, Tensor]


@pytest.fixture
def make_episode() -> Callable[..., Episode]:
    """``make_episode(n_way, k_shot, n_query, image_size=28, channels=1, dtype=float32, seed=0)``.

    Returns ``(support_x [n_way*k_shot, C, H, W], support_y, query_x [n_way*n_query, C, H, W], query_y)``
    with random images, the support shuffled so classes are interleaved.
    """

    def make(
        n_way: int,
        k_shot: int,
        n_query: int,
        image_size: int = 28,
        channels: int = 1,
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
    ) -> Episode:
        gen = torch.Generator().manual_seed(seed)
        shuffle = torch.randperm(n_way * k_shot, generator=gen)
        support_y = torch.arange(n_way).repeat_interleave(k_shot)[shuffle]
        query_y = torch.arange(n_way).repeat_interleave(n_query)
        support_x = torch.randn(n_way * k_shot, channels, image_size, image_size, generator=gen, dtype=dtype)
        query_x = torch.randn(n_way * n_query, channels, image_size, image_size, generator=gen, dtype=dtype)
        return support_x, support_y, query_x, query_y

    return make
