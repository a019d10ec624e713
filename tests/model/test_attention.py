from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from matchnet.errors import MatchnetError
from matchnet.model import DISTANCES, AttentionKernel, cosine, dot, euclidean, get_distance


@pytest.fixture
def fg() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(4, 8, generator=gen, dtype=torch.double)
    return f, torch.randn(6, 8, generator=gen, dtype=torch.double)


def test_distances_match_definitions(fg: tuple[torch.Tensor, torch.Tensor]) -> None:
    f, g = fg
    pairwise_cos = F.cosine_similarity(f[:, None, :], g[None, :, :], dim=-1)
    torch.testing.assert_close(cosine(f, g), pairwise_cos)
    torch.testing.assert_close(euclidean(f, g), -((f[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    torch.testing.assert_close(dot(f, g), (f[:, None, :] * g[None, :, :]).sum(-1))
    assert set(DISTANCES) == {"cosine", "euclidean", "dot"}


def test_euclidean_is_never_positive() -> None:
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)) * 100
    distances = euclidean(x, x)
    assert torch.all(distances <= 0)
    torch.testing.assert_close(distances.diagonal(), torch.zeros(3), atol=1e-2, rtol=0)


def test_unknown_distance() -> None:
    with pytest.raises(MatchnetError, match=r"model\.distance='manhattan'.*cosine, dot, euclidean"):
        get_distance("manhattan")


@pytest.mark.parametrize("distance", sorted(DISTANCES))
@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_kernel(fg: tuple[torch.Tensor, torch.Tensor], distance: str, temperature: float) -> None:
    f, g = fg
    kernel = AttentionKernel(distance, temperature).double()
    log_a = kernel(f, g)
    assert log_a.shape == (4, 6)
    torch.testing.assert_close(log_a.exp().sum(-1), torch.ones(4, dtype=torch.double))
    torch.testing.assert_close(log_a, torch.log_softmax(DISTANCES[distance](f, g) / temperature, dim=-1))


def test_learnt_temperature_is_a_positive_parameter(fg: tuple[torch.Tensor, torch.Tensor]) -> None:
    f, g = fg
    fixed = AttentionKernel(temperature=0.5)
    assert list(fixed.parameters()) == [] and "log_temperature" in fixed.state_dict()
    learnt = AttentionKernel(temperature=0.5, learn_temperature=True).double()
    assert [name for name, _ in learnt.named_parameters()] == ["log_temperature"]
    assert math.isclose(learnt.temperature.item(), 0.5, rel_tol=1e-6)
    learnt(f, g)[:, 0].sum().backward()
    assert learnt.log_temperature.grad is not None and learnt.log_temperature.grad != 0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf"), "hot"])
def test_bad_temperature(temperature: float) -> None:
    with pytest.raises(MatchnetError, match="model.temperature"):
        AttentionKernel(temperature=temperature)
