"""Omniglot's training augmentation: random affine distortions (Koch et al. 2015), seeded, training only."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from matchnet.data import OmniglotDataModule
from matchnet.data.augment import RandomAffine
from matchnet.errors import MatchnetError

MakeDataModule = Callable[..., OmniglotDataModule]
SMALL = {
    "way": 3,
    "shot": 1,
    "query": 2,
    "train_episodes_per_epoch": 4,
    "val_episodes": 3,
    "test_episodes": 3,
}


def strokes(count: int = 4, side: int = 28) -> np.ndarray:
    """uint8 ``[count, 1, side, side]``: a bright cross on a dark background."""
    images = np.zeros((count, 1, side, side), dtype=np.uint8)
    images[:, :, side // 2 - 1 : side // 2 + 1, 8:-8] = 255
    images[:, :, 8:-8, side // 2 - 3] = 255
    return images


def test_strength_zero_is_the_identity() -> None:
    images = strokes()
    out = RandomAffine(strength=0.0)(images, np.random.default_rng(0))
    assert np.array_equal(out, images) and out is not images


def test_distortions_are_seeded_and_per_image() -> None:
    images = strokes()
    first = RandomAffine()(images, np.random.default_rng(7))
    again = RandomAffine()(images, np.random.default_rng(7))
    other = RandomAffine()(images, np.random.default_rng(8))
    assert first.dtype == np.uint8 and first.shape == images.shape
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # each image its own transform
    assert not np.array_equal(first, images)


def test_distortions_stay_small_at_strength_one() -> None:
    """Koch et al.'s ranges move a drawing a little: most of the ink stays, nothing is added elsewhere."""
    images = strokes(32)
    out = RandomAffine()(images, np.random.default_rng(0)).astype(float)
    ink_before, ink_after = images.astype(float).sum(axis=(1, 2, 3)), out.sum(axis=(1, 2, 3))
    assert np.all(np.abs(ink_after / ink_before - 1) < 0.5)
    assert out[:, :, :2, :].sum() == 0  # the border stays background


def test_identity_matrices_at_zero_ranges() -> None:
    transform = RandomAffine(rotation=0, shear=0, scale=0, translate=0)
    matrices = transform.matrices(3, np.random.default_rng(0))
    np.testing.assert_allclose(matrices, np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (3, 1, 1)))


def test_training_episodes_only_and_reproducibly(fake_datamodule: MakeDataModule) -> None:
    plain = fake_datamodule(**SMALL)
    augmented = fake_datamodule(augment=1.0, **SMALL)
    again = fake_datamodule(augment=1.0, **SMALL)
    for stage in ("val", "test"):
        for n in range(3):
            assert torch.equal(plain.dataset(stage)[n].query_x, augmented.dataset(stage)[n].query_x)
            assert torch.equal(plain.dataset(stage)[n].support_x, augmented.dataset(stage)[n].support_x)
    a, b, p = augmented.dataset("train")[2], again.dataset("train")[2], plain.dataset("train")[2]
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert torch.equal(a.query_y, p.query_y)  # same draw, different pixels
    assert not torch.equal(a.query_x, p.query_x)


@pytest.mark.parametrize("value", [-0.5, 4.0, "strong", True])
def test_bad_strength_is_refused(fake_root: object, value: object) -> None:
    with pytest.raises(MatchnetError, match=r"data.augment=.*from 0 \(off\) to 3"):
        OmniglotDataModule(root=str(fake_root), download=False, augment=value, **SMALL)


def test_augment_needs_host_episodes(fake_root: object) -> None:
    with pytest.raises(MatchnetError, match=r"data.device=cuda"):
        OmniglotDataModule(root=str(fake_root), download=False, augment=1.0, device="cuda", **SMALL)
