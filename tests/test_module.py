"""MatchingNetModule: steps, metrics, confidence interval, self-describing checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from helpers.fixture_types import MakeTrainer
from helpers.model_configs import load_model_config
from matchnet.checkpoints import load_module
from matchnet.data import Episode
from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule, mean_ci95


def model_config(**overrides: object) -> dict:
    cfg = load_model_config()
    cfg.encoder.image_size = 28
    return OmegaConf.to_container(OmegaConf.merge(cfg, overrides), resolve=True)


def make_module(**overrides: object) -> MatchingNetModule:
    return MatchingNetModule(
        model=model_config(**overrides), optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3}
    )


class RandomEpisodes(Dataset):
    """Episodes of random images, seeded per index."""

    def __init__(self, n: int, way: int = 3, shot: int = 1, query: int = 2) -> None:
        self.n, self.way, self.shot, self.query = n, way, shot, query

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Episode:
        gen = torch.Generator().manual_seed(i)
        labels = torch.arange(self.way)
        return Episode(
            torch.rand(self.way * self.shot, 1, 28, 28, generator=gen),
            labels.repeat_interleave(self.shot),
            torch.rand(self.way * self.query, 1, 28, 28, generator=gen),
            labels.repeat_interleave(self.query),
            self.way,
        )


def test_mean_ci95_matches_normal_interval() -> None:
    values = torch.tensor([0.8, 1.0, 0.9, 0.7])
    mean, ci = mean_ci95(values)
    assert mean == pytest.approx(0.85)
    assert ci == pytest.approx(1.96 * values.double().std().item() / 2)
    assert mean_ci95(torch.tensor([0.5]))[1] == 0.0


def test_fit_test_and_checkpoint_round_trip(tmp_path: Path, make_trainer: MakeTrainer) -> None:
    module = make_module()
    loader = DataLoader(RandomEpisodes(4), batch_size=None)
    trainer = make_trainer(max_epochs=1)
    trainer.fit(
        module, train_dataloaders=loader, val_dataloaders=DataLoader(RandomEpisodes(2), batch_size=None)
    )
    assert trainer.global_step == 4
    assert "val/acc_best" in trainer.callback_metrics
    trainer.test(module, dataloaders=DataLoader(RandomEpisodes(5), batch_size=None), verbose=False)
    assert module.test_summary["episodes"] == 5
    module.eval()
    with torch.no_grad():  # the mean over episodes of each episode's query accuracy, computed here
        episodes = [RandomEpisodes(5)[i] for i in range(5)]
        per_episode = [(module(e).argmax(dim=1) == e.query_y).double().mean().item() for e in episodes]
    assert module.test_summary["test_acc"] == pytest.approx(sum(per_episode) / 5)

    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = load_module(path)
    assert loaded.trained_episodes == 4
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_checkpoint_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(MatchnetError, match="does not exist"):
        load_module(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(MatchnetError, match="junk.ckpt"):
        load_module(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(MatchnetError, match="not written by matchnet"):
        load_module(foreign)
    mismatched = tmp_path / "mismatched.ckpt"
    module = make_module()
    torch.save(
        {
            "hyper_parameters": dict(module.hparams) | {"model": model_config(fce=False)},
            "state_dict": module.state_dict(),
        },
        mismatched,
    )
    with pytest.raises(MatchnetError, match="does not fit"):
        load_module(mismatched)


def test_scheduler_is_built_from_config() -> None:
    module = MatchingNetModule(
        model=model_config(),
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "step_size": 1, "gamma": 0.5},
    )
    config = module.configure_optimizers()
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
