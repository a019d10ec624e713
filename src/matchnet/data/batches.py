"""Plain mini-batches of labelled training images, for the baseline classifier (``data.train_batch_size``).

The images are those of the training split's classes only, from the same in-memory uint8 tensor the
episodes are drawn from, rotated as their class says (Omniglot's rotated classes) and augmented like
training episodes (``data.augment``). One epoch is one pass over every image of every training class
in a shuffled order; batch ``n`` of the stream is a pure function of ``(seed, n)``, so the batches are
reproducible and continue correctly after a resume (``EpisodeSampler`` numbers them as it numbers
episodes: ``epoch * len(dataset) + i``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from matchnet.data.episodes import class_items
from matchnet.data.images import ink_tensor


class ImageBatch(NamedTuple):
    """Training images and their classes.

    - ``x``: float32 ``[B, C, S, S]`` in [0, 1] (ink 1.0 for drawings)
    - ``y``: int64 ``[B]``, the index of each image's class among the training classes
    """

    x: Tensor
    y: Tensor


def _generator(seed: int, stage: str, what: str) -> np.random.Generator:
    key = hashlib.sha256(f"{seed}/{stage}/images/{what}".encode()).digest()
    return np.random.default_rng(int.from_bytes(key[:8], "little"))


class ImageBatchDataset(Dataset[ImageBatch]):
    """Shuffled mini-batches of ``batch_size`` images of ``classes``; item ``n`` is batch ``n``.

    ``images``: uint8 ``[M, C, S, S]``; ``labels``: int64 ``[M]``, each image's source label;
    ``classes``: ``(label, quarter_turns)`` pairs, class ``j`` showing the images of that label turned
    counterclockwise ``quarter_turns`` times (what the episodes of the same stage use); ``augment``: when
    given, applied to each uint8 batch with a numpy generator seeded by ``(seed, stage, n)``;
    ``device``: when given, the uint8 images are moved there once and batches are gathered, rotated and
    converted on it (no augmentation then).

    Epoch ``e`` is one pass over all ``num_items`` images of the classes in an order fixed by
    ``(seed, stage, e)``: ``len`` is ``ceil(num_items / batch_size)`` batches, every one of
    ``batch_size`` images (the last is completed with the first images of the epoch's order). Any
    ``n >= 0`` is a batch: ``n = e * len + i`` is batch ``i`` of epoch ``e``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        classes: Sequence[tuple[int, int]],
        *,
        batch_size: int,
        seed: int,
        stage: str = "train",
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if device is not None and augment is not None:
            raise ValueError("batches assembled on a device cannot use the numpy augment; drop one of them")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        self.device = None if device is None else torch.device(device)
        self.images = images if self.device is None else images.to(self.device)
        self.augment = augment
        self.batch_size, self.seed, self.stage = batch_size, seed, stage
        self.item_image, self.item_class, _ = class_items(labels, classes)
        self.class_turns = torch.tensor([turns for _, turns in classes], dtype=torch.int64)
        self.num_classes = len(classes)
        self.num_items = len(self.item_image)
        self._order: tuple[int, np.ndarray] | None = None  # (epoch, its permutation of the items)

    def __len__(self) -> int:
        return math.ceil(self.num_items / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The permutation of all items that epoch ``epoch`` goes through."""
        if self._order is None or self._order[0] != epoch:
            generator = _generator(self.seed, self.stage, f"order/{epoch}")
            self._order = (epoch, generator.permutation(self.num_items))
        return self._order[1]

    def items(self, n: int) -> Tensor:
        """The items (indices into ``item_image`` / ``item_class``) of batch ``n``, int64 ``[batch_size]``."""
        if n < 0:
            raise IndexError(f"batch index {n} is negative")
        epoch, i = divmod(n, len(self))
        positions = (i * self.batch_size + np.arange(self.batch_size)) % self.num_items
        return torch.from_numpy(self.order(epoch)[positions])

    def __getitem__(self, n: int) -> ImageBatch:
        items = self.items(n)
        classes = self.item_class.index_select(0, items)
        turns = self.class_turns.index_select(0, classes)
        ids = self.item_image.index_select(0, items)
        if self.device is not None:
            images = self.images.index_select(0, ids.to(self.device))
            for k in turns.unique().tolist():
                if k:
                    mask = (turns == k).to(self.device)
                    images[mask] = torch.rot90(images[mask], k, dims=(-2, -1))
            return ImageBatch(images.float().div_(255), classes.to(self.device))
        images = self.images.numpy()[ids.numpy()]  # uint8 [B, C, S, S], a copy
        turns_np = turns.numpy()
        for k in np.unique(turns_np).tolist():
            if k:
                mask = turns_np == k
                images[mask] = np.rot90(images[mask], k, axes=(-2, -1))
        if self.augment is not None:
            images = self.augment(images, _generator(self.seed, self.stage, f"augment/{n}"))
        return ImageBatch(ink_tensor(images), classes)
