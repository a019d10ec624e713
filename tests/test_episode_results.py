"""Per-episode test results: kept in episode order, on val/test episodes fixed by data.episode_seed alone
(a seed sweep trains on different streams and meets the same test episodes), and old checkpoints
evaluated on the episodes they were tested on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from helpers.fixture_types import MakeTrainer
from helpers.image_folders import write_split_folders
from helpers.model_configs import load_model_config
from matchnet.data import Episode, ImageFolderDataModule
from matchnet.module import MatchingNetModule
from matchnet.pipeline import data_config_for_eval

OMNIGLOT = "matchnet.data.OmniglotDataModule"


def folder_module(root: Path, **settings: object) -> ImageFolderDataModule:
    episodes = {"way": 3, "shot": 1, "query": 2, "val_episodes": 4, "test_episodes": 4}
    return ImageFolderDataModule(root=str(root), image_size=16, **(episodes | settings))


def draws(datamodule: ImageFolderDataModule, stage: str) -> list[list[int]]:
    dataset = datamodule.dataset(stage)
    return [dataset.task(n).image_ids.flatten().tolist() for n in range(4)]


def test_val_and_test_episodes_follow_episode_seed_not_seed(tmp_path: Path) -> None:
    root = write_split_folders(tmp_path / "images", {"train": 6, "val": 5, "test": 5})
    first, other_seed = folder_module(root, seed=0), folder_module(root, seed=1)
    other_episodes = folder_module(root, seed=0, episode_seed=1)
    for stage in ("val", "test"):
        assert draws(first, stage) == draws(other_seed, stage)
        assert draws(first, stage) != draws(other_episodes, stage)
    assert draws(first, "train") != draws(other_seed, "train")
    assert draws(first, "train") == draws(other_episodes, "train")
    # what identifies the test episodes: not the training seed, nor training-only or loading settings
    settings = first.test_episode_settings()
    assert settings == other_seed.test_episode_settings()
    assert settings != other_episodes.test_episode_settings()
    assert settings["data_module"] == "matchnet.data.folder.ImageFolderDataModule"
    assert {"seed", "train_way", "test_episodes", "num_workers"}.isdisjoint(settings)
    assert (settings["way"], settings["shot"], settings["episode_seed"]) == (3, 1, 0)
    assert settings != folder_module(root, shot=2).test_episode_settings()


def test_checkpoints_without_episode_seed_keep_their_test_episodes() -> None:
    cfg = OmegaConf.create({"data": {"_target_": OMNIGLOT, "root": "/here", "seed": 0, "episode_seed": 0}})
    old = {"_target_": OMNIGLOT, "root": "/elsewhere", "seed": 3}  # its val/test episodes came from seed 3
    assert data_config_for_eval(cfg, old).episode_seed == 3
    new = {"_target_": OMNIGLOT, "root": "/elsewhere", "seed": 3, "episode_seed": 0}
    assert data_config_for_eval(cfg, new).episode_seed == 0


class Episodes(Dataset):
    """Episodes of random images, seeded by their number."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, n: int) -> Episode:
        generator = torch.Generator().manual_seed(n)
        labels = torch.arange(3)
        images = torch.rand(9, 1, 28, 28, generator=generator)
        return Episode(images[:3], labels, images[3:], labels.repeat(2), 3)


def test_per_episode_accuracies_come_in_episode_order(make_trainer: MakeTrainer) -> None:
    model = load_model_config()
    model.encoder.image_size = 28
    module = MatchingNetModule(model=OmegaConf.to_container(model, resolve=True), optimizer={})
    order = [4, 1, 5, 0, 3]  # the loader's episodes, out of order and one left out
    loader = DataLoader(Episodes(), batch_size=None, sampler=order)
    make_trainer().test(module, dataloaders=loader, verbose=False)
    summary = module.test_summary
    assert summary["episode_numbers"] == [0, 1, 3, 4, 5]
    module.eval()
    with torch.no_grad():
        expected = [
            (module(episode).argmax(dim=1) == episode.query_y).float().mean().item()
            for episode in (Episodes()[n] for n in summary["episode_numbers"])
        ]
    assert summary["episode_accuracies"] == pytest.approx(expected)
    assert summary["test_acc"] == pytest.approx(sum(expected) / 5)
