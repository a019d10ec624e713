from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from helpers.model_configs import load_model_config
from matchnet.errors import MatchnetError
from matchnet.model import DISTANCES, Conv4, MatchingNetwork
from matchnet.module import ENCODER_INIT

MakeEpisode = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


def make_model(seed: int = 0, **kwargs: object) -> MatchingNetwork:
    torch.manual_seed(seed)
    return MatchingNetwork(Conv4(hidden=16), **kwargs)


@pytest.mark.parametrize("fce", [True, False])
@pytest.mark.parametrize("distance", sorted(DISTANCES))
def test_log_probs_are_normalised(make_episode: MakeEpisode, fce: bool, distance: str) -> None:
    support_x, support_y, query_x, _ = make_episode(n_way=4, k_shot=2, n_query=3)
    model = make_model(fce=fce, distance=distance, temperature=0.5)
    log_probs = model(support_x, support_y, query_x, n_way=4)
    assert log_probs.shape == (12, 4)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(12))
    attention = model.attention(support_x, query_x)
    assert attention.shape == (12, 8)
    torch.testing.assert_close(attention.sum(-1), torch.ones(12))


@pytest.mark.parametrize("fce", [True, False])
def test_log_probs_equal_log_of_attention_weighted_labels(make_episode: MakeEpisode, fce: bool) -> None:
    support_x, support_y, query_x, _ = make_episode(n_way=3, k_shot=3, n_query=2, dtype=torch.double)
    model = make_model(fce=fce, distance="euclidean", temperature=50.0).double().eval()
    with torch.no_grad():
        log_probs = model(support_x, support_y, query_x, n_way=3)
        expected = torch.log(model.attention(support_x, query_x) @ F.one_hot(support_y, 3).double())
    torch.testing.assert_close(log_probs, expected)


def test_class_without_support_gets_zero_probability_and_finite_gradients(make_episode: MakeEpisode) -> None:
    support_x, _, query_x, _ = make_episode(n_way=2, k_shot=2, n_query=2)
    support_y = torch.tensor([0, 0, 1, 1])  # class 2 of 3 has no support
    model = make_model()
    log_probs = model(support_x, support_y, query_x, n_way=3)
    assert torch.all(log_probs[:, 2].exp() == 0)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(4))
    F.nll_loss(log_probs, torch.tensor([0, 1, 0, 1])).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_gradients_reach_every_parameter(make_episode: MakeEpisode) -> None:
    support_x, support_y, query_x, query_y = make_episode(n_way=3, k_shot=2, n_query=2)
    model = make_model(fce=True, fce_steps=3, learn_temperature=True)
    F.nll_loss(model(support_x, support_y, query_x, n_way=3), query_y).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert "kernel.log_temperature" in dict(model.named_parameters())


def test_without_fce_support_order_does_not_matter(make_episode: MakeEpisode) -> None:
    support_x, support_y, query_x, _ = make_episode(n_way=4, k_shot=2, n_query=2, dtype=torch.double)
    model = make_model(fce=False).double()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        log_probs = model(support_x, support_y, query_x, n_way=4)
        permuted = model(support_x[perm], support_y[perm], query_x, n_way=4)
        attention = model.attention(support_x, query_x)
        attention_permuted = model.attention(support_x[perm], query_x)
    torch.testing.assert_close(permuted, log_probs)
    torch.testing.assert_close(attention_permuted, attention[:, perm])


@pytest.mark.parametrize("fce", [True, False])
def test_fce_makes_support_embeddings_depend_on_each_other(make_episode: MakeEpisode, fce: bool) -> None:
    support_x, _, query_x, _ = make_episode(n_way=4, k_shot=1, n_query=1)
    model = make_model(fce=fce).eval()  # eval: BatchNorm statistics do not couple the images
    changed = support_x.clone()
    changed[1] = torch.randn(1, 28, 28)
    with torch.no_grad():
        g, _ = model.embed(support_x, query_x)
        g_changed, _ = model.embed(changed, query_x)
    others = [0, 2, 3]
    assert torch.allclose(g[others], g_changed[others]) is not fce


def test_zero_fce_steps_leaves_query_embedding_unchanged(make_episode: MakeEpisode) -> None:
    support_x, _, query_x, _ = make_episode(n_way=3, k_shot=1, n_query=2)
    model = make_model(fce=True, fce_steps=0).eval()
    with torch.no_grad():
        _, f = model.embed(support_x, query_x)
        f_prime = model.encoder(torch.cat([support_x, query_x]))[3:]
    assert torch.equal(f, f_prime)


def test_overfits_one_episode(make_episode: MakeEpisode) -> None:
    support_x, support_y, query_x, query_y = make_episode(n_way=5, k_shot=1, n_query=5)
    torch.manual_seed(0)
    model = MatchingNetwork(Conv4(), fce=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(50):
        loss = F.nll_loss(model(support_x, support_y, query_x, n_way=5), query_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():  # still in train mode: BatchNorm uses the episode's statistics
        accuracy = (model(support_x, support_y, query_x, n_way=5).argmax(-1) == query_y).float().mean()
    assert accuracy == 1.0
    assert loss < 1.0  # chance is log 5 = 1.61; cosine at temperature 1 cannot go below 0.76 here


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"fce_steps": -1}, "model.fce_steps"),
        ({"fce_steps": 2.5}, "model.fce_steps"),
        ({"distance": "manhattan"}, "model.distance"),
        ({"temperature": 0.0}, "model.temperature"),
        ({"temperature": -2.0}, "model.temperature"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], key: str) -> None:
    with pytest.raises(MatchnetError, match=key):
        make_model(**kwargs)


def test_config_instantiates_with_constructor_keys(make_episode: MakeEpisode) -> None:
    model_cfg = load_model_config()
    assert model_cfg.pop(ENCODER_INIT) is None  # the module's setting, not the network's
    assert set(model_cfg) - {"_target_"} == set(inspect.signature(MatchingNetwork).parameters)
    assert set(model_cfg.encoder) - {"_target_"} == set(inspect.signature(Conv4).parameters)
    cfg = OmegaConf.create({"data": {"image_size": 28}, "model": model_cfg})
    model = instantiate(cfg.model)
    assert isinstance(model, MatchingNetwork) and model.fce and model.attention_lstm.steps == 5
    support_x, support_y, query_x, _ = make_episode(n_way=2, k_shot=1, n_query=1)
    assert model(support_x, support_y, query_x, n_way=2).shape == (2, 2)
