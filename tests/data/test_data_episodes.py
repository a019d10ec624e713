"""Episodes: shapes, labels, contents, determinism, workers, epochs, ranks and held-out classes."""

from __future__ import annotations

import gc
import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from helpers.fixture_types import MakeTrainer
from matchnet.data import (
    Episode,
    EpisodeDataset,
    EpisodeSampler,
    OmniglotDataModule,
    find_sources,
    load_images,
)
from matchnet.errors import MatchnetError  # noqa: E402

MakeDataModule = Callable[..., OmniglotDataModule]


def fingerprint(episode: Episode) -> str:
    digest = hashlib.sha1()
    for tensor in episode[:4]:
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def fingerprints(episodes: object) -> list[str]:
    return [fingerprint(episode) for episode in episodes]


def fingerprints_of(images: torch.Tensor) -> list[str]:
    return [hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images]


def test_shapes_and_labels(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(way=5, shot=2, query=3, train_way=4, train_shot=1, train_query=6)
    for stage, (way, shot, query) in {"train": (4, 1, 6), "val": (5, 2, 3), "test": (5, 2, 3)}.items():
        episode = datamodule.dataset(stage)[0]
        assert isinstance(episode, Episode) and episode.way == way
        assert episode.support_x.shape == (way * shot, 1, 28, 28)
        assert episode.query_x.shape == (way * query, 1, 28, 28)
        assert episode.support_x.dtype == episode.query_x.dtype == torch.float32
        assert episode.support_y.dtype == episode.query_y.dtype == torch.int64
        assert torch.bincount(episode.support_y, minlength=way).tolist() == [shot] * way
        assert torch.bincount(episode.query_y, minlength=way).tolist() == [query] * way
        for x in (episode.support_x, episode.query_x):
            assert x.min() == 0.0 and x.max() == 1.0  # ink 1, background 0
            assert x[..., 0, :].max() < 0.1  # background border


@pytest.mark.parametrize("stage", ["train", "val", "test"])
def test_episode_shows_its_classes(fake_datamodule: MakeDataModule, fake_root: Path, stage: str) -> None:
    datamodule = fake_datamodule(way=5, shot=2, query=3)
    data = load_images(find_sources(fake_root, download=False), 28)
    dataset, names = datamodule.dataset(stage), datamodule.class_names(stage)
    for n in (0, 1, 17):
        draw, episode = dataset.task(n), dataset[n]
        # Support and query are different images: distinct (drawing, rotation) pairs. (Two rotations
        # of one character are two classes, so a drawing can appear once per rotation.)
        turns = [names[c].rsplit("/", 1)[1] for c in draw.classes]
        pairs = {(i, turn) for row, turn in zip(draw.image_ids.tolist(), turns, strict=True) for i in row}
        assert len(pairs) == 25 and draw.classes.unique().numel() == 5
        for row, label_class in zip(draw.image_ids, draw.classes, strict=True):
            character, rotation = names[label_class].rsplit("/", 1)
            assert {data.characters[i] for i in data.labels[row].tolist()} == {character}
            turned = torch.rot90(data.images[row], int(rotation[3:]) // 90, dims=(-2, -1)).float() / 255
            label = (draw.classes == label_class).nonzero().item()
            support = episode.support_x[episode.support_y == label]
            query = episode.query_x[episode.query_y == label]
            assert sorted(fingerprints_of(support)) == sorted(fingerprints_of(turned[:2]))
            assert sorted(fingerprints_of(query)) == sorted(fingerprints_of(turned[2:]))


def test_rotation_is_counterclockwise_like_the_published_classes() -> None:
    image = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    image[:, 0, 0, 3] = 255  # top right
    dataset = EpisodeDataset(
        image,
        torch.zeros(2, dtype=torch.int64),
        [(0, 1)],
        way=1,
        shot=1,
        query=1,
        length=1,
        seed=0,
        stage="x",
    )
    assert dataset[0].support_x[0, 0, 0, 0] == 1.0  # top left, as PIL's rotate(90) of rot090
    assert np.asarray(Image.fromarray(image[0, 0].numpy()).rotate(90))[0, 0] == 255


def test_val_and_test_episodes_are_fixed_by_the_episode_seed(fake_datamodule: MakeDataModule) -> None:
    first, again = fake_datamodule(episode_seed=3), fake_datamodule(episode_seed=3)
    other = fake_datamodule(episode_seed=4)
    # The training seed moves the weights and the training episodes, never the val/test episodes.
    other_training_seed = fake_datamodule(episode_seed=3, seed=7)
    for stage in ("val", "test"):
        episodes = fingerprints(first.dataset(stage)[n] for n in range(8))
        assert episodes == fingerprints(again.dataset(stage)[n] for n in range(8))
        assert episodes == fingerprints(first.dataset(stage)[n] for n in range(8))
        assert episodes == fingerprints(other_training_seed.dataset(stage)[n] for n in range(8))
        assert set(episodes).isdisjoint(fingerprints(other.dataset(stage)[n] for n in range(8)))
        assert len(set(episodes)) == 8


def test_loaders_do_not_depend_on_workers(fake_datamodule: MakeDataModule) -> None:
    sizes = {"train_episodes_per_epoch": 6, "val_episodes": 6, "test_episodes": 6}
    serial, parallel = fake_datamodule(**sizes), fake_datamodule(**sizes, num_workers=2)
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        expected = fingerprints(getattr(serial, name)())
        assert fingerprints(getattr(parallel, name)()) == expected
        assert len(set(expected)) == 6


def test_training_episodes_differ_across_workers_and_epochs(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(train_episodes_per_epoch=8, num_workers=2, persistent_workers=True)
    loader = datamodule.train_dataloader()
    epoch0 = fingerprints(loader)
    loader.sampler.set_epoch(1)
    epoch1 = fingerprints(loader)
    loader.sampler.set_epoch(0)
    assert fingerprints(loader) == epoch0
    assert len(set(epoch0 + epoch1)) == 16
    assert epoch1 == fingerprints(datamodule.dataset("train")[8 + i] for i in range(8))
    del loader  # stop the persistent workers now rather than at some later garbage collection
    gc.collect()


def test_sampler_shares_episodes_between_ranks(fake_datamodule: MakeDataModule) -> None:
    dataset = fake_datamodule(train_episodes_per_epoch=10).dataset("train")
    samplers = [EpisodeSampler(dataset, num_replicas=2, rank=rank) for rank in (0, 1)]
    assert sorted(list(samplers[0]) + list(samplers[1])) == list(range(10))
    for sampler in samplers:
        sampler.set_epoch(2)
    assert sorted(list(samplers[0]) + list(samplers[1])) == list(range(20, 30))


class Recorder(pl.LightningModule):
    """Records the episodes it is given, per stage and epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[tuple[str, int], list[str]] = defaultdict(list)

    def training_step(self, episode: Episode, batch_idx: int) -> torch.Tensor:
        self.seen["train", self.current_epoch].append(fingerprint(episode))
        return self.weight * episode.query_x.mean()

    def validation_step(self, episode: Episode, batch_idx: int) -> None:
        self.seen["val", self.current_epoch].append(fingerprint(episode))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_sets_the_training_epoch(
    fake_datamodule: MakeDataModule, make_trainer: MakeTrainer
) -> None:
    datamodule = fake_datamodule(train_episodes_per_epoch=3, val_episodes=2)
    trainer = make_trainer(max_epochs=2, num_sanity_val_steps=0, enable_checkpointing=False, devices=1)
    recorder = Recorder()
    trainer.fit(recorder, datamodule=datamodule)
    train = datamodule.dataset("train")
    assert recorder.seen["train", 0] == fingerprints(train[i] for i in range(3))
    assert recorder.seen["train", 1] == fingerprints(train[3 + i] for i in range(3))
    assert recorder.seen["val", 0] == recorder.seen["val", 1] == fingerprints(datamodule.dataset("val"))


@pytest.mark.parametrize("split", ["vinyals", "lake"])
def test_training_never_sees_val_or_test_characters(
    fake_datamodule: MakeDataModule, fake_root: Path, split: str
) -> None:
    datamodule = fake_datamodule(split=split, way=3)
    data = load_images(find_sources(fake_root, download=False), 28)
    characters = {
        stage: {name.rsplit("/", 1)[0] for name in datamodule.class_names(stage)}
        for stage in ("train", "val", "test")
    }
    held_out = characters["val"] | characters["test"]
    assert characters["train"] and characters["train"].isdisjoint(held_out)
    seen = set()
    for n in range(300):
        seen |= {
            data.characters[i] for i in data.labels[datamodule.dataset("train").task(n).image_ids.flatten()]
        }
    assert seen == characters["train"]


def test_within_alphabet(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(within_alphabet=True, way=5)
    for stage in ("train", "val", "test"):
        names = datamodule.class_names(stage)
        alphabets = [
            {names[c].split("/")[0] for c in datamodule.dataset(stage).task(n).classes.tolist()}
            for n in range(40)
        ]
        if stage == "train":
            assert any(len(a) > 1 for a in alphabets)
        else:
            assert all(len(a) == 1 for a in alphabets)
            assert len(set.union(*alphabets)) > 1


def test_train_within_alphabet(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(train_within_alphabet=True, way=5)
    for stage, within in (("train", True), ("val", False)):
        names = datamodule.class_names(stage)
        alphabets = [
            {names[c].split("/")[0] for c in datamodule.dataset(stage).task(n).classes.tolist()}
            for n in range(40)
        ]
        assert all(len(a) == 1 for a in alphabets) == within
    assert len(set.union(*alphabets)) > 1


def test_train_within_alphabet_needs_large_enough_alphabets(fake_datamodule: MakeDataModule) -> None:
    names = fake_datamodule(way=5).class_names("train")
    largest = max(Counter(name.split("/")[0] for name in names).values())
    assert largest < len(names)
    way = largest + 1
    with pytest.raises(MatchnetError, match=rf"data.train_way={way} with data.train_within_alphabet=true"):
        fake_datamodule(train_within_alphabet=True, way=5, train_way=way)


def test_global_random_state_is_left_alone(fake_datamodule: MakeDataModule) -> None:
    dataset = fake_datamodule().dataset("train")
    random.seed(123)
    expected = random.random()
    random.seed(123)
    dataset[5]
    assert random.random() == expected
