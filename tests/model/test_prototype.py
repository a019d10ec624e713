"""The prototype read-out against a hand-computed Prototypical Network (Snell et al. 2017, eq. 1-2)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from matchnet.errors import MatchnetError
from matchnet.model import Conv4, MatchingNetwork, class_means


def test_class_means_are_per_class_averages() -> None:
    g = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [5.0, 6.0]])
    y = torch.tensor([0, 0, 1, 2])
    expected = torch.tensor([[2.0, 1.0], [0.0, 4.0], [5.0, 6.0]])
    torch.testing.assert_close(class_means(g, y, 3), expected)


def test_prototype_readout_equals_hand_computed_protonet(make_episode: Callable[..., tuple]) -> None:
    torch.manual_seed(0)
    support_x, support_y, query_x, _ = make_episode(3, 2, 2)
    net = MatchingNetwork(Conv4(), fce=False, distance="euclidean", temperature=1.0, readout="prototype")
    net.eval()
    with torch.no_grad():
        log_probs = net(support_x, support_y, query_x, 3)
        g = net.encoder(support_x).double().numpy()
        f = net.encoder(query_x).double().numpy()
    labels = support_y.numpy()
    prototypes = np.stack([g[labels == c].mean(0) for c in range(3)])
    distances = ((f[:, None, :] - prototypes[None, :, :]) ** 2).sum(-1)  # [Q, 3]
    logits = -distances
    expected = logits - logits.max(1, keepdims=True)
    expected = expected - np.log(np.exp(expected).sum(1, keepdims=True))
    np.testing.assert_allclose(log_probs.double().numpy(), expected, rtol=1e-4, atol=1e-4)


def test_prototype_readout_with_fce_is_normalised(make_episode: Callable[..., tuple]) -> None:
    support_x, support_y, query_x, _ = make_episode(4, 3, 2)
    net = MatchingNetwork(Conv4(), fce=True, readout="prototype", fce_initial_read="attention")
    log_probs = net(support_x, support_y, query_x, 4)
    assert log_probs.shape == (8, 4)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(8))
    log_probs.sum().backward()
    assert net.context.lstm.weight_ih_l0.grad.abs().sum() > 0


def test_one_shot_prototype_and_attention_readouts_agree(make_episode: Callable[..., tuple]) -> None:
    """With one support per class a prototype is that support, so both read-outs give the same scores."""
    support_x, support_y, query_x, _ = make_episode(5, 1, 3)
    attention = MatchingNetwork(Conv4(), fce=False, readout="attention").eval()
    prototype = MatchingNetwork(Conv4(), fce=False, readout="prototype").eval()
    prototype.load_state_dict(attention.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(
            attention(support_x, support_y, query_x, 5), prototype(support_x, support_y, query_x, 5)
        )


def test_unknown_readout_is_refused() -> None:
    with pytest.raises(MatchnetError, match=r"model.readout='mean'.*attention, prototype"):
        MatchingNetwork(Conv4(), readout="mean")
