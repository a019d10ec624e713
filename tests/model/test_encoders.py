from __future__ import annotations

import pytest
import torch

from matchnet.errors import MatchnetError
from matchnet.model import Conv4


@pytest.mark.parametrize(
    ("in_channels", "image_size", "dim"), [(1, 28, 64), (1, 84, 1600), (3, 84, 1600), (3, 28, 64)]
)
def test_output_dim(in_channels: int, image_size: int, dim: int) -> None:
    encoder = Conv4(in_channels=in_channels, image_size=image_size)
    assert encoder.embedding_dim == dim == Conv4.output_dim(image_size, hidden=64, blocks=4)
    out = encoder(torch.randn(2, in_channels, image_size, image_size))
    assert out.shape == (2, dim)


def test_output_dim_other_widths() -> None:
    assert Conv4.output_dim(28, hidden=32, blocks=3) == 32 * 3 * 3
    encoder = Conv4(hidden=32, blocks=3, image_size=28)
    assert encoder(torch.randn(2, 1, 28, 28)).shape == (2, encoder.embedding_dim)


def test_architecture() -> None:
    kinds = [type(m) for m in Conv4().features]
    block = [torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.ReLU, torch.nn.MaxPool2d]
    assert kinds == block * 4 + [torch.nn.Flatten]


@pytest.mark.parametrize("shape", [(2, 1, 84, 84), (2, 3, 28, 28), (1, 28, 28)])
def test_wrong_input_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(MatchnetError, match="image_size"):
        Conv4(in_channels=1, image_size=28)(torch.randn(*shape))


def test_bad_settings() -> None:
    with pytest.raises(MatchnetError, match="model.encoder.image_size"):
        Conv4(image_size=8)
    with pytest.raises(MatchnetError, match="model.encoder.hidden"):
        Conv4(hidden=0)


@pytest.mark.parametrize(("image_size", "dim"), [(28, 64), (56, 576), (84, 1600), (105, 2304)])
def test_larger_omniglot_sizes_through_conv4_and_fce(image_size: int, dim: int) -> None:
    """Larger images give longer embeddings (64 x side^2 after four halvings); FCE's LSTMs follow them."""
    from matchnet.model import MatchingNetwork

    net = MatchingNetwork(Conv4(image_size=image_size), fce=True, fce_steps=2, fce_initial_read="attention")
    assert net.encoder.embedding_dim == dim
    assert net.context.lstm.hidden_size == dim and net.attention_lstm.cell.hidden_size == dim
    support_y = torch.tensor([0, 1, 2])
    support_x, query_x = torch.rand(3, 1, image_size, image_size), torch.rand(4, 1, image_size, image_size)
    log_probs = net(support_x, support_y, query_x, 3)
    assert log_probs.shape == (4, 3)
    torch.testing.assert_close(log_probs.exp().sum(1), torch.ones(4))
