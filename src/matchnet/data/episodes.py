"""Few-shot episodes drawn with learn2learn's task transforms from the in-memory image tensor.

Episode ``n`` of a dataset is a pure function of ``(seed, stage, n)``: its classes and drawings come
from learn2learn's ``NWays`` + ``KShots`` (or ``OneGroupNWays`` + ``KShots``) run under Python's
``random`` seeded with that triple, the global ``random`` state being restored afterwards. Training
asks for ``n = epoch * len(dataset) + i`` (see ``EpisodeSampler``), so every epoch, DataLoader
worker and distributed rank gets its own episodes, reproducibly.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, DistributedSampler, TensorDataset

from matchnet.data.images import ink_tensor

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # learn2learn imports gym, which prints a deprecation notice
    from learn2learn.data import DataDescription, MetaDataset, Taskset
    from learn2learn.data.transforms import KShots, NWays, TaskTransform


class Episode(NamedTuple):
    """One N-way K-shot task with Q queries per class.

    Images are float32 in [0, 1] with **ink = 1.0 and background = 0.0** (the Omniglot PNGs,
    black strokes on white, are inverted). Labels are int64 in ``0..N-1``; support and query hold
    different drawings, each in random order.

    - ``support_x``: ``[N*K, C, H, W]``, ``support_y``: ``[N*K]``
    - ``query_x``: ``[N*Q, C, H, W]``, ``query_y``: ``[N*Q]``
    - ``way``: N
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    way: int


class Draw(NamedTuple):
    """Which images make an episode, before loading.

    ``image_ids``: int64 ``[way, shot+query]``, row j holds label j's drawings, the first ``shot``
    columns being the support; ``classes``: int64 ``[way]``, the dataset class of each label;
    ``support_order`` / ``query_order``: the permutations applied to the flattened support
    ``[way*shot]`` / query ``[way*query]``.
    """

    image_ids: Tensor
    classes: Tensor
    support_order: Tensor
    query_order: Tensor


class OneGroupNWays(TaskTransform):
    """learn2learn task transform: ``n`` classes, all from one random group (e.g. one alphabet).

    Starts a task description (must come first): every sample of the chosen classes, class by
    class. Only groups with at least ``n`` classes are drawn from, uniformly.
    """

    def __init__(self, dataset: MetaDataset, groups: Sequence[Sequence[int]], n: int) -> None:
        super().__init__(dataset)
        self.groups = [list(group) for group in groups if len(group) >= n]
        self.n = n

    def __call__(self, task_description: list[DataDescription] | None) -> list[DataDescription]:
        classes = random.sample(random.choice(self.groups), k=self.n)
        return [DataDescription(i) for c in classes for i in self.dataset.labels_to_indices[c]]


def class_items(labels: Tensor, classes: Sequence[tuple[int, int]]) -> tuple[Tensor, Tensor, list[int]]:
    """One item per (class, drawing) of ``classes`` (``(label, quarter_turns)`` pairs): the image it shows
    (int64, an index into the images whose ``labels`` are given), its class (int64, an index into
    ``classes``), and the number of items of each class. Items are class by class, each class's in
    image order."""
    by_character = torch.argsort(labels, stable=True)
    per_class = torch.bincount(labels)
    # Python ints: slicing with tensor scalars took 0.2 s for Omniglot's 4,800 rotated classes.
    counts, starts = per_class.tolist(), (torch.cumsum(per_class, 0) - per_class).tolist()
    item_images = [by_character[starts[c] : starts[c] + counts[c]] for c, _ in classes]
    sizes = [len(i) for i in item_images]
    return torch.cat(item_images), torch.repeat_interleave(torch.tensor(sizes)), sizes


class EpisodeDataset(Dataset[Episode]):
    """Episodes over the given classes of an image tensor.

    ``images``: uint8 ``[M, C, S, S]`` (ink 255); ``labels``: int64 ``[M]``, each image's character;
    ``classes``: ``(character, quarter_turns)`` pairs, class ``j`` showing its character's drawings
    turned counterclockwise ``quarter_turns`` times; ``groups``: when given, lists of class indices
    (e.g. per alphabet) and every episode draws its ``way`` classes from one of them; ``augment``:
    when given, applied to the uint8 support ``[N*K, C, S, S]`` and then the query images with a
    numpy generator seeded by ``(seed, stage, n)``, so augmented episodes are reproducible too;
    ``device``: when given (e.g. ``"cuda"``), the uint8 images are moved there once and episodes are
    gathered, rotated (``torch.rot90``) and converted to float on it, so only indices cross the bus
    (the same episodes as without it; use DataLoader workers 0 and no pinning).
    ``len`` is ``length``; any index ``n >= 0`` is an episode (``n >= length`` serves later epochs).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        classes: Sequence[tuple[int, int]],
        *,
        way: int,
        shot: int,
        query: int,
        length: int,
        seed: int,
        stage: str,
        groups: Sequence[Sequence[int]] | None = None,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if device is not None and augment is not None:
            raise ValueError("episodes assembled on a device cannot use the numpy augment; drop one of them")
        self.device = None if device is None else torch.device(device)
        self.images = images if self.device is None else images.to(self.device)
        self.augment = augment
        self.way, self.shot, self.query = way, shot, query
        self.length, self.seed, self.stage = length, seed, stage
        self.item_image, self.item_class, sizes = class_items(labels, classes)
        self.class_turns = torch.tensor([turns for _, turns in classes], dtype=torch.int64)
        offsets = torch.cumsum(torch.tensor([0, *sizes]), 0).tolist()
        items = MetaDataset(
            TensorDataset(self.item_image, self.item_class),
            labels_to_indices={c: list(range(offsets[c], offsets[c + 1])) for c in range(len(classes))},
        )
        first = NWays(items, n=way) if groups is None else OneGroupNWays(items, groups, n=way)
        self.taskset = Taskset(items, task_transforms=[first, KShots(items, k=shot + query)])

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[Episode]:
        return (self[n] for n in range(self.length))

    def task(self, n: int) -> Draw:
        """Episode ``n``'s draw (see ``Draw``), seeded by ``(seed, stage, n)``."""
        state = random.getstate()
        random.seed(f"{self.seed}/{self.stage}/{n}")
        try:
            description = self.taskset.sample_task_description()
            support_order = random.sample(range(self.way * self.shot), self.way * self.shot)
            query_order = random.sample(range(self.way * self.query), self.way * self.query)
        finally:
            random.setstate(state)
        # KShots keeps NWays' (random) class order and groups the samples class by class.
        items = torch.tensor([dd.index for dd in description])
        return Draw(
            image_ids=self.item_image.index_select(0, items).view(self.way, self.shot + self.query),
            classes=self.item_class.index_select(0, items[:: self.shot + self.query]),
            support_order=torch.tensor(support_order),
            query_order=torch.tensor(query_order),
        )

    def __getitem__(self, n: int) -> Episode:
        if n < 0:
            raise IndexError(f"episode index {n} is negative")
        draw = self.task(n)
        if self.device is not None:
            return self._assemble_on_device(draw)
        # Assembled in numpy: single-threaded, so small episodes never wait on torch's thread pool.
        images = self.images.numpy()[draw.image_ids.numpy()]  # uint8 [way, shot+query, C, S, S]
        turns = self.class_turns.index_select(0, draw.classes).tolist()
        images = np.stack([np.rot90(row, k, axes=(-2, -1)) for row, k in zip(images, turns, strict=True)])
        support = images[:, : self.shot].reshape(-1, *images.shape[2:])[draw.support_order.numpy()]
        query = images[:, self.shot :].reshape(-1, *images.shape[2:])[draw.query_order.numpy()]
        if self.augment is not None:
            key = hashlib.sha256(f"{self.seed}/{self.stage}/{n}/augment".encode()).digest()
            rng = np.random.default_rng(int.from_bytes(key[:8], "little"))
            support, query = self.augment(support, rng), self.augment(query, rng)
        labels = torch.arange(self.way)
        return Episode(
            support_x=ink_tensor(support),
            support_y=labels.repeat_interleave(self.shot)[draw.support_order],
            query_x=ink_tensor(query),
            query_y=labels.repeat_interleave(self.query)[draw.query_order],
            way=self.way,
        )

    def _assemble_on_device(self, draw: Draw) -> Episode:
        """The episode of ``draw`` gathered from the images on ``self.device`` (no host copies)."""
        device = self.device
        ids = draw.image_ids.flatten().to(device)
        images = self.images.index_select(0, ids)  # uint8 [way*(shot+query), C, S, S]
        rows = images.view(self.way, self.shot + self.query, *images.shape[1:])
        turns = self.class_turns.index_select(0, draw.classes).tolist()  # per class, on the host
        images = torch.stack([torch.rot90(row, k, dims=(-2, -1)) for row, k in zip(rows, turns, strict=True)])
        pixels = images.float().div_(255)  # one conversion for the whole episode
        support = pixels[:, : self.shot].flatten(0, 1)[draw.support_order.to(device)]
        query = pixels[:, self.shot :].flatten(0, 1)[draw.query_order.to(device)]
        labels = torch.arange(self.way, device=device)
        return Episode(
            support_x=support,
            support_y=labels.repeat_interleave(self.shot)[draw.support_order.to(device)],
            query_x=query,
            query_y=labels.repeat_interleave(self.query)[draw.query_order.to(device)],
            way=self.way,
        )


class EpisodeSampler(DistributedSampler):
    """Training episode numbers ``epoch * len(dataset) + i`` for this rank's share of ``i``.

    Lightning calls ``set_epoch`` before every epoch (also after a resume) and, as this is a
    ``DistributedSampler``, keeps it under DDP instead of wrapping it.
    """

    def __init__(self, dataset: EpisodeDataset, num_replicas: int = 1, rank: int = 0) -> None:
        # drop_last: with E episodes and W ranks, each rank takes floor(E / W) of them (rank r: i = r,
        # r + W, ...); padding would repeat episodes across ranks within an epoch.
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=True)
        # Episodes of this rank's share to skip on the next iteration only: set when a run resumes
        # mid-epoch, so it continues with exactly the episodes an uninterrupted run would see.
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)
        start, self.start = self.start, 0
        return (offset + i for i in list(super().__iter__())[start:])
