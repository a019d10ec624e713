"""The baseline classifier's data path: shuffled mini-batches of the training split's images
(``data.train_batch_size``), on fake archives and on the real Vinyals split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from matchnet.data import ImageBatch, ImageBatchDataset, OmniglotDataModule
from matchnet.errors import MatchnetError

MakeDataModule = Callable[..., OmniglotDataModule]


def characters(datamodule: OmniglotDataModule, stage: str) -> set[str]:
    """The ``Alphabet/characterNN`` of every class of ``stage``."""
    return {name.rsplit("/", 1)[0] for name in datamodule.class_names(stage)}


def epoch_items(dataset: ImageBatchDataset, epoch: int) -> torch.Tensor:
    return torch.cat([dataset.items(epoch * len(dataset) + i) for i in range(len(dataset))])


def check_training_classes_only(datamodule: OmniglotDataModule, dataset: ImageBatchDataset) -> None:
    """One epoch shows every image of every training class, and no image of a validation or test class."""
    items = epoch_items(dataset, 0)
    counts = torch.bincount(items, minlength=dataset.num_items)
    assert len(counts) == dataset.num_items and counts.min() == 1  # every training image, at least once
    # the last batch is completed with the epoch's first images: those are shown twice
    extra = len(dataset) * dataset.batch_size - dataset.num_items
    assert counts.max() <= 2 and int((counts == 2).sum()) == extra
    shown = dataset.item_class[items]
    assert set(shown.tolist()) == set(range(datamodule.num_classes("train")))
    _, labels = datamodule._load_images()
    catalog = datamodule._catalog
    assert catalog is not None
    names = catalog.characters  # a property that builds the list anew
    sources = {names[c] for c in labels[dataset.item_image[items]].unique().tolist()}
    assert sources == characters(datamodule, "train")
    assert not sources & (characters(datamodule, "val") | characters(datamodule, "test"))


def test_an_epoch_is_every_training_image_and_nothing_else(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(train_batch_size=50)
    dataset = datamodule.dataset("train")
    assert isinstance(dataset, ImageBatchDataset)
    # Greek and Latin: 6 characters x 4 rotations x 20 drawings; 10 batches, the last one completed
    # with the first 20 images of the epoch's order.
    assert (dataset.num_classes, dataset.num_items, len(dataset)) == (24, 480, 10)
    check_training_classes_only(datamodule, dataset)
    order = dataset.order(0)
    torch.testing.assert_close(dataset.items(9), torch.from_numpy(np.concatenate([order[450:], order[:20]])))


def test_batches_show_the_rotated_cached_images_with_their_class(fake_datamodule: MakeDataModule) -> None:
    datamodule = fake_datamodule(train_batch_size=64)
    dataset = datamodule.dataset("train")
    batch = dataset[3]
    assert isinstance(batch, ImageBatch)
    assert batch.x.shape == (64, 1, 28, 28) and batch.x.dtype == torch.float32
    assert batch.y.dtype == torch.int64
    images, _ = datamodule._load_images()
    classes = datamodule._stage_classes("train")
    for i, item in enumerate(dataset.items(3).tolist()):
        label = int(dataset.item_class[item])
        assert int(batch.y[i]) == label
        turns = classes[label][1]
        expected = torch.rot90(images[dataset.item_image[item]], turns, dims=(-2, -1)).float() / 255
        torch.testing.assert_close(batch.x[i], expected)
    assert {turns for _, turns in classes} == {0, 1, 2, 3}


def test_batches_are_reproducible_and_each_epoch_has_its_own_order(fake_datamodule: MakeDataModule) -> None:
    dataset = fake_datamodule(train_batch_size=32).dataset("train")
    again = fake_datamodule(train_batch_size=32).dataset("train")
    torch.testing.assert_close(dataset[7].x, again[7].x)
    assert not torch.equal(dataset.items(0), dataset.items(len(dataset)))  # epoch 0 vs epoch 1
    other_seed = fake_datamodule(train_batch_size=32, seed=1).dataset("train")
    assert not torch.equal(dataset.items(0), other_seed.items(0))
    with pytest.raises(IndexError):
        dataset.items(-1)


def test_augmentation_distorts_training_batches_reproducibly(fake_datamodule: MakeDataModule) -> None:
    plain = fake_datamodule(train_batch_size=16).dataset("train")
    augmented = fake_datamodule(train_batch_size=16, augment=1.0).dataset("train")
    torch.testing.assert_close(plain.items(2), augmented.items(2))
    assert not torch.equal(plain[2].x, augmented[2].x)
    torch.testing.assert_close(plain[2].y, augmented[2].y)
    torch.testing.assert_close(augmented[2].x, augmented[2].x)


def test_batches_gathered_on_a_device_equal_the_host_ones(fake_datamodule: MakeDataModule) -> None:
    host = fake_datamodule(train_batch_size=40).dataset("train")
    assert isinstance(host, ImageBatchDataset)
    datamodule = fake_datamodule(train_batch_size=40)
    images, labels = datamodule._load_images()
    on_device = ImageBatchDataset(
        images, labels, datamodule._stage_classes("train"), batch_size=40, seed=0, device="cpu"
    )
    for n in (0, 5, 13):
        torch.testing.assert_close(on_device[n].x, host[n].x)
        torch.testing.assert_close(on_device[n].y, host[n].y)


def test_the_training_loader_gives_image_batches_and_the_others_episodes(
    fake_datamodule: MakeDataModule,
) -> None:
    datamodule = fake_datamodule(train_batch_size=24)
    first = next(iter(datamodule.train_dataloader()))
    assert isinstance(first, ImageBatch)
    torch.testing.assert_close(first.x, datamodule.dataset("train")[0].x)
    assert len(datamodule.train_dataloader()) == 20
    episode = next(iter(datamodule.val_dataloader()))
    assert episode.support_x.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("value", [0, -3, 2.5, "128", True])
def test_a_bad_batch_size_is_refused(tmp_path: Path, value: object) -> None:
    with pytest.raises(MatchnetError, match=f"data.train_batch_size={value!r} is invalid"):
        OmniglotDataModule(root=str(tmp_path), download=False, train_batch_size=value)


def test_the_vinyals_split_batches_every_training_class_and_no_other(omniglot_root: Path) -> None:
    datamodule = OmniglotDataModule(root=str(omniglot_root), download=False, train_batch_size=128)
    dataset = datamodule.dataset("train")
    assert isinstance(dataset, ImageBatchDataset)
    assert (dataset.num_classes, dataset.num_items, len(dataset)) == (4112, 82_240, 643)
    check_training_classes_only(datamodule, dataset)
