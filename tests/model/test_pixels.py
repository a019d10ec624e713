"""The pixel baseline: a parameter-free encoder, and cosine nearest neighbour through the MatchingNetwork."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.model_configs import MODEL_CONF
from matchnet.errors import MatchnetError
from matchnet.model import MatchingNetwork
from matchnet.model.pixels import Pixels

MakeEpisode = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def pixels_model(image_size: int = 28, channels: int = 1) -> MatchingNetwork:
    """``conf/model/pixels.yaml`` with its encoder, for ``image_size`` x ``image_size`` images."""
    cfg = OmegaConf.load(MODEL_CONF / "pixels.yaml")
    cfg.pop("defaults")
    cfg.encoder = OmegaConf.load(MODEL_CONF / "encoder" / "pixels.yaml")
    cfg.encoder.image_size, cfg.encoder.in_channels = image_size, channels
    cfg.encoder.mean = cfg.encoder.std = None
    return instantiate(cfg)


def hand_nearest_neighbour(
    support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor
) -> list[int]:
    """The label of each query's support image with the highest cosine similarity, in numpy loops."""
    support = support_x.reshape(len(support_x), -1).double().numpy()
    queries = query_x.reshape(len(query_x), -1).double().numpy()
    labels = []
    for q in queries:
        cosines = [float(q @ s / (np.linalg.norm(q) * np.linalg.norm(s))) for s in support]
        labels.append(int(support_y[int(np.argmax(cosines))]))
    return labels


def test_pixels_is_the_flattened_image_and_has_nothing_to_train() -> None:
    encoder = Pixels(in_channels=3, image_size=4)
    x = torch.rand(2, 3, 4, 4)
    assert encoder.embedding_dim == 48
    torch.testing.assert_close(encoder(x), x.reshape(2, 48))
    assert list(encoder.parameters()) == [] and encoder.state_dict() == {}
    normalised = Pixels(in_channels=3, image_size=4, mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])
    expected = (x - 0.5) / torch.tensor([0.25, 0.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised(x), expected.reshape(2, 48))


def test_inverted_pixels_are_the_other_polarity_and_decide_otherwise() -> None:
    x = torch.rand(2, 1, 4, 4)
    torch.testing.assert_close(Pixels(image_size=4, invert=True)(x), (1 - x).reshape(2, 16))
    # One ink pixel per image: with ink = 1 the two distinct images are orthogonal; with the background
    # at 1 they share 14 of 16 pixels, so the cosine calls them close.
    a, b = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    a[..., 0, 0], b[..., 3, 3] = 1, 1
    cosine = lambda enc: float(F.cosine_similarity(enc(a), enc(b)))  # noqa: E731
    assert cosine(Pixels(image_size=4)) == 0.0
    assert cosine(Pixels(image_size=4, invert=True)) == pytest.approx(14 / 15)


def test_pixels_refuses_images_of_another_shape() -> None:
    with pytest.raises(MatchnetError, match=r"Pixels expects images of shape \[B, 1, 28, 28\]"):
        Pixels(image_size=28)(torch.rand(2, 1, 84, 84))
    with pytest.raises(MatchnetError, match="model.encoder.image_size=0"):
        Pixels(image_size=0)


@pytest.mark.parametrize("k_shot", [1, 3])
def test_pixels_model_is_cosine_nearest_neighbour(make_episode: MakeEpisode, k_shot: int) -> None:
    support_x, support_y, query_x, _ = make_episode(n_way=4, k_shot=k_shot, n_query=6, image_size=6)
    net = pixels_model(image_size=6).eval()
    assert sum(p.numel() for p in net.parameters()) == 0
    with torch.no_grad():
        log_probs = net(support_x, support_y, query_x, n_way=4)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(len(query_x)))
    assert log_probs.argmax(-1).tolist() == hand_nearest_neighbour(support_x, support_y, query_x)


def test_nearest_readout_differs_from_summed_attention_where_it_should() -> None:
    """Class 0 has one exact copy of the query, class 1 two near copies: the nearest neighbour says 0,
    the summed attention at temperature 1 says 1."""
    query = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    near = torch.tensor([1.0, 0.3, 0.0, 0.0])
    support = torch.stack([query[0], near, near, torch.tensor([0.0, 0.0, 1.0, 0.0])])
    support_y = torch.tensor([0, 1, 1, 2])
    images = support.view(4, 1, 2, 2)
    nearest = pixels_model(image_size=2)
    attention = MatchingNetwork(Pixels(image_size=2), fce=False, temperature=1.0, readout="attention")
    assert nearest(images, support_y, query.view(1, 1, 2, 2), 3).argmax().item() == 0
    assert attention(images, support_y, query.view(1, 1, 2, 2), 3).argmax().item() == 1


def test_nearest_readout_gives_a_class_without_supports_zero_probability() -> None:
    support_x, query_x = torch.rand(4, 1, 2, 2), torch.rand(3, 1, 2, 2, requires_grad=True)
    net = pixels_model(image_size=2)
    log_probs = net(support_x, torch.tensor([0, 0, 1, 1]), query_x, n_way=3)
    assert torch.all(log_probs[:, 2].exp() == 0)
    F.nll_loss(log_probs, torch.tensor([0, 1, 0])).backward()
    assert torch.isfinite(query_x.grad).all()
