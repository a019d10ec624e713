"""ResNet12 and the input normalisation shared by the encoders."""

from __future__ import annotations

import inspect

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.model_configs import load_model_config
from matchnet.errors import MatchnetError
from matchnet.model import Conv4, MatchingNetwork, Normalize, ResNet12
from matchnet.module import ENCODER_INIT


def test_shapes_and_embedding_dim() -> None:
    encoder = ResNet12(in_channels=3, channels=(8, 16, 16, 32), image_size=84)
    assert encoder.embedding_dim == 32
    assert encoder(torch.rand(2, 3, 84, 84)).shape == (2, 32)
    small = ResNet12(in_channels=1, channels=(4, 4, 4, 4), image_size=28)
    assert small(torch.rand(3, 1, 28, 28)).shape == (3, small.embedding_dim)


def test_default_widths() -> None:
    encoder = ResNet12()
    assert encoder.embedding_dim == 640 and len(encoder.features) == 6  # 4 blocks, pool, flatten
    widths = [block.body[0].out_channels for block in encoder.features[:4]]
    assert widths == [64, 160, 320, 640]


def test_in_a_matching_network() -> None:
    model = MatchingNetwork(ResNet12(3, (4, 4, 8, 8), image_size=32), fce=True, fce_steps=2)
    support_x, query_x = torch.rand(4, 3, 32, 32), torch.rand(6, 3, 32, 32)
    log_probs = model(support_x, torch.tensor([0, 0, 1, 1]), query_x, n_way=2)
    assert log_probs.shape == (6, 2) and torch.allclose(log_probs.exp().sum(1), torch.ones(6))
    log_probs.sum().backward()


def test_bad_settings_and_inputs() -> None:
    with pytest.raises(MatchnetError, match="model.encoder.image_size=8"):
        ResNet12(image_size=8)
    with pytest.raises(MatchnetError, match="model.encoder.channels"):
        ResNet12(channels=())
    with pytest.raises(MatchnetError, match="ResNet12 expects images of shape"):
        ResNet12(3, (4, 4, 4, 4), image_size=32)(torch.rand(2, 1, 32, 32))


def test_normalize() -> None:
    norm = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 1.0], channels=3)
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 1.0]).view(
        1, 3, 1, 1
    )
    assert torch.allclose(norm(x), expected)
    assert torch.equal(Normalize()(x), x)
    with pytest.raises(MatchnetError, match="one value per input channel"):
        Normalize([0.5], [0.5], channels=3)
    with pytest.raises(MatchnetError, match="together"):
        Normalize([0.5], None, channels=1)


def test_normalisation_leaves_state_dicts_alone() -> None:
    torch.manual_seed(0)
    plain = Conv4(in_channels=3, image_size=28)
    normalised = Conv4(in_channels=3, image_size=28, mean=[0.4] * 3, std=[0.2] * 3)
    assert plain.state_dict().keys() == normalised.state_dict().keys()
    normalised.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 28, 28)
    plain.eval(), normalised.eval()
    assert torch.allclose(normalised(x), plain((x - 0.4) / 0.2), atol=1e-5)


def test_encoder_configs() -> None:
    for name, cls in (("conv4", Conv4), ("resnet12", ResNet12)):
        encoder_cfg = load_model_config(name).encoder
        assert set(encoder_cfg) - {"_target_"} == set(inspect.signature(cls).parameters)
    cfg = OmegaConf.create(
        {"data": {"image_size": 32, "channels": 3}, "model": load_model_config("resnet12")}
    )
    cfg.model.encoder.channels = [4, 4, 4, 8]
    cfg.model.pop(ENCODER_INIT)  # the module's setting, not the network's
    model = instantiate(cfg.model)
    assert (
        isinstance(model.encoder, ResNet12)
        and model.encoder.in_channels == 3
        and model.encoder.embedding_dim == 8
    )
