"""Lightning DataModules of few-shot episodes, one ``Episode`` per DataLoader item.

``EpisodeDataModule`` holds everything that does not depend on the data set: the episode settings
and their checks, the seeded episode datasets and the DataLoaders (DDP-aware). A data set is a thin
subclass that says which classes each stage has and where the images come from:
``OmniglotDataModule``, ``MiniImageNetDataModule`` and ``ImageFolderDataModule``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from matchnet.data.augment import MAX_STRENGTH, FlipAndCrop, RandomAffine
from matchnet.data.episodes import EpisodeDataset, EpisodeSampler
from matchnet.data.folder import LAYOUTS, FolderSplit, load_folder_images, scan_folder
from matchnet.data.miniimagenet import IMAGE_SIZE as MINI_SIZE
from matchnet.data.miniimagenet import MiniImageNetImages, load_miniimagenet
from matchnet.data.omniglot import DRAWINGS_PER_CHARACTER, Catalog, find_sources, load_images
from matchnet.data.splits import (
    QUARTER_TURNS,
    STAGES,
    check_split,
    class_name,
    rotated_stages,
    split_characters,
)
from matchnet.errors import MatchnetError

MAX_IMAGE_SIZE = 105  # the Omniglot drawings are 105x105
# The usual ImageNet per-channel statistics (torchvision's), miniImageNet's default normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Changes a uint8 image batch ``[B, C, S, S]`` with the given generator (training augmentation).
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def check_int(key: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` when it is an integer in ``[low, high]``, else a MatchnetError naming ``data.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        allowed = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
        raise MatchnetError(
            f"data.{key}={value!r} is invalid: it must be {allowed}. Set data.{key} accordingly."
        )
    return value


def check_flag(key: str, value: object) -> bool:
    """``value`` when it is a bool, else a MatchnetError naming ``data.<key>``."""
    if not isinstance(value, bool):
        raise MatchnetError(f"data.{key}={value!r} is invalid: it must be true or false.")
    return value


def plain(value: object) -> object:
    """A list for any non-string iterable (e.g. Hydra's ``ListConfig``), else ``value``: so saved
    hyperparameters, which Lightning pickles into checkpoints, hold only plain types."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        return list(value)
    return value


def _rotation_stages(split: str, rotations: object) -> frozenset[str]:
    if isinstance(rotations, bool):
        return rotated_stages(split, rotations)
    stages = list(rotations) if isinstance(rotations, Iterable) and not isinstance(rotations, str) else None
    if stages is None or not set(stages) <= set(STAGES):
        raise MatchnetError(
            f"data.rotations={rotations!r} is invalid: use true (the split's protocol), false (no rotation "
            f"classes) or a list of stages among {list(STAGES)}, e.g. data.rotations=[train]."
        )
    return rotated_stages(split, stages)


class EpisodeDataModule(pl.LightningDataModule):
    """N-way K-shot episodes (see ``Episode``) from an in-memory uint8 image tensor, one per item.

    Subclasses provide the data: ``_stage_classes(stage)`` (the ``(label, quarter_turns)`` pairs
    that are the classes of a stage), ``class_names(stage)``, ``_load_images()`` (uint8
    ``[M, C, S, S]`` images and int64 ``[M]`` labels) and ``split``; optionally ``_groups(stage)``
    (episodes take all their classes from one group) and ``_augment(stage)`` (a training
    augmentation). Everything else, settings, checks, episode datasets and DataLoaders, is here.

    - ``way``: classes per val/test episode; ``shot``/``query``: support/query images per class;
      ``train_way``/``train_shot``/``train_query`` override them for training (None: the same).
    - ``seed``: fixes the val/test episodes and the training episodes of every epoch, independent of
      ``num_workers`` and of the number of distributed ranks for val/test.
    """

    channels = 1
    split = ""

    def __init__(
        self,
        *,
        image_size: int,
        way: int,
        shot: int,
        query: int,
        train_way: int | None,
        train_shot: int | None,
        train_query: int | None,
        train_episodes_per_epoch: int,
        val_episodes: int,
        test_episodes: int,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        seed: int,
        max_image_size: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__()
        self.image_size = check_int("image_size", image_size, 1, max_image_size)
        self.way = check_int("way", way, 1)
        self.shot = check_int("shot", shot, 1)
        self.query = check_int("query", query, 1)
        self.train_way = way if train_way is None else check_int("train_way", train_way, 1)
        self.train_shot = shot if train_shot is None else check_int("train_shot", train_shot, 1)
        self.train_query = query if train_query is None else check_int("train_query", train_query, 1)
        self.episodes = {
            "train": check_int("train_episodes_per_epoch", train_episodes_per_epoch, 1),
            "val": check_int("val_episodes", val_episodes, 1),
            "test": check_int("test_episodes", test_episodes, 1),
        }
        self.num_workers = check_int("num_workers", num_workers, 0)
        self.pin_memory = check_flag("pin_memory", pin_memory)
        # Ignored without workers, so that num_workers=0 alone switches them off.
        self.persistent_workers = check_flag("persistent_workers", persistent_workers) and num_workers > 0
        self.seed = check_int("seed", seed, -(2**63))
        # Assemble episodes on this device (e.g. "cuda": the uint8 images live there); None: on the host.
        self.device = None if device in (None, "cpu") else str(device)
        if self.device is not None and self.num_workers > 0:
            raise MatchnetError(
                f"data.device={device} gathers episodes on the device in the main process; "
                "set data.num_workers=0."
            )
        overrides = (("way", train_way), ("shot", train_shot), ("query", train_query))
        train_keys = tuple(key if value is None else f"train_{key}" for key, value in overrides)
        # The config keys behind each stage's (way, shot, query), for error messages.
        self._keys = {"train": train_keys, "val": ("way", "shot", "query"), "test": ("way", "shot", "query")}
        self._datasets: dict[str, EpisodeDataset] = {}

    def settings(self, stage: str) -> tuple[int, int, int]:
        """``(way, shot, query)`` of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        if stage == "train":
            return self.train_way, self.train_shot, self.train_query
        return self.way, self.shot, self.query

    # ------------------------------------------------------------------ what subclasses provide

    def _stage_classes(self, stage: str) -> list[tuple[int, int]]:
        """``(label, quarter_turns)`` per class of ``stage``: class j shows the images of that label
        turned counterclockwise ``quarter_turns`` times. Must not load the images."""
        raise NotImplementedError

    def class_names(self, stage: str) -> list[str]:
        """The name of each class of ``stage``, in class-index order."""
        raise NotImplementedError

    def _load_images(self) -> tuple[Tensor, Tensor]:
        """All images, uint8 ``[M, C, S, S]`` (``C = channels``, ``S = image_size``), and their int64
        ``[M]`` labels (the first element of a class's pair)."""
        raise NotImplementedError

    def _groups(self, stage: str) -> list[list[int]] | None:
        """Class indices of ``stage`` in groups when every episode takes its classes from one group."""
        return None

    def _augment(self, stage: str) -> Augment | None:
        """The augmentation applied to the images of ``stage``'s episodes (None: none)."""
        return None

    # ------------------------------------------------------------------ shared checks

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")

    def num_classes(self, stage: str) -> int:
        """How many classes ``stage`` (``"train"``, ``"val"`` or ``"test"``) draws its episodes from."""
        return len(self._stage_classes(stage))

    def _check_ways(self, counts: dict[str, int]) -> None:
        """MatchnetError when a stage has fewer classes (``counts[stage]``) than its episodes' way."""
        for stage in STAGES:
            way_key = self._keys[stage][0]
            way, available = self.settings(stage)[0], counts[stage]
            if way > available:
                raise MatchnetError(
                    f"data.{way_key}={way} but the {self.split} {stage} split has only {available} classes; "
                    f"set data.{way_key} to at most {available}."
                )

    def _check_class_sizes(self, stage: str, sizes: Sequence[int], where: Sequence[str]) -> None:
        """MatchnetError naming the classes of ``stage`` with fewer than shot + query images.

        ``sizes[j]``: images of class j; ``where[j]``: how to name it (e.g. its folder).
        """
        _, shot_key, query_key = self._keys[stage]
        _, shot, query = self.settings(stage)
        small = [(name, size) for name, size in zip(where, sizes, strict=True) if size < shot + query]
        if small:
            listed = "; ".join(f"{name} has {size}" for name, size in small[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            raise MatchnetError(
                f"The {stage} split has classes with fewer than data.{shot_key} + data.{query_key} = "
                f"{shot} + {query} = {shot + query} images, which an episode needs (support and query are "
                f"different images): {listed}{more}. Add images to them, remove them, or lower "
                f"data.{shot_key} / data.{query_key}."
            )

    # ------------------------------------------------------------------ Lightning hooks

    def prepare_data(self) -> None:
        """Find (download) the data and build any cache (Lightning runs this on one process per node)."""
        self._stage_classes("train")
        self._load_images()

    def setup(self, stage: str | None = None) -> None:
        """Load the images and make the episode datasets of all stages (once)."""
        if self._datasets:
            return
        classes = {name: self._stage_classes(name) for name in STAGES}
        images, labels = self._load_images()
        for name in STAGES:
            way, shot, query = self.settings(name)
            self._datasets[name] = EpisodeDataset(
                images,
                labels,
                classes[name],
                way=way,
                shot=shot,
                query=query,
                length=self.episodes[name],
                seed=self.seed,
                stage=name,
                groups=self._groups(name),
                augment=self._augment(name),
                device=self.device,
            )

    def dataset(self, stage: str) -> EpisodeDataset:
        """The episode dataset of ``stage`` (``"train"``, ``"val"`` or ``"test"``); sets up on first use."""
        self.setup()
        return self._datasets[stage]

    def _loader(self, dataset: EpisodeDataset, sampler: Sampler[int] | None = None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and self.device is None,  # device episodes need no pinning
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        """``train_episodes_per_epoch`` new episodes per epoch (Lightning calls ``sampler.set_epoch``)."""
        dataset = self.dataset("train")
        trainer = self.trainer
        sampler = EpisodeSampler(dataset, **((trainer.distributed_sampler_kwargs if trainer else None) or {}))
        if trainer is not None:
            sampler.set_epoch(trainer.current_epoch)
        return self._loader(dataset, sampler)

    def _eval_sampler(self, dataset: EpisodeDataset) -> Sampler[int] | None:
        """Under DDP, this rank's share of the fixed episodes: each episode on one rank, no padding."""
        kwargs = (self.trainer.distributed_sampler_kwargs if self.trainer else None) or {}
        if kwargs.get("num_replicas", 1) <= 1:
            return None
        return UnrepeatedDistributedSampler(dataset, shuffle=False, **kwargs)

    def val_dataloader(self) -> DataLoader:
        """The ``val_episodes`` fixed validation episodes (split over the ranks under DDP)."""
        dataset = self.dataset("val")
        return self._loader(dataset, self._eval_sampler(dataset))

    def test_dataloader(self) -> DataLoader:
        """The ``test_episodes`` fixed test episodes (split over the ranks under DDP)."""
        dataset = self.dataset("test")
        return self._loader(dataset, self._eval_sampler(dataset))


class OmniglotDataModule(EpisodeDataModule):
    """Omniglot N-way K-shot episodes (see ``Episode``), one per DataLoader item (``batch_size=None``).

    - ``root`` (relative to the working directory): folder with ``images_background.zip`` and
      ``images_evaluation.zip`` (or the folders they extract to), downloaded there when missing and
      ``download``; the preprocessed cache goes to ``<root>/cache/``, so ``root`` must be writable
      whenever the cache is (re)built.
    - ``split``: ``vinyals`` or ``lake`` (see ``matchnet.data.splits``).
    - ``way``: classes per val/test episode; ``shot``/``query``: support/query drawings per class;
      ``train_way``/``train_shot``/``train_query`` override them for training (None: the same).
    - ``rotations``: True makes the four rotations of each character distinct classes where the
      split's protocol has them (vinyals: train, val and test; lake: train only); False nowhere;
      or a list of stages, e.g. ``["train"]``.
    - ``within_alphabet``: val/test episodes take all their classes from one alphabet (Lake's
      protocol); the alphabet is chosen uniformly among those with at least ``way`` classes.
    - ``train_within_alphabet``: the same for training episodes (harder negatives, as in the
      within-alphabet test); off by default.
    - ``seed``: fixes the val/test episodes and the training episodes of every epoch, independent of
      ``num_workers`` and of the number of distributed ranks for val/test.
    - ``augment``: strength of the random affine distortions of training images (``RandomAffine``;
      0 = off, the paper's protocol; 1 = Koch et al.'s ranges); validation and test images are never
      augmented. Seeded per episode, so augmented episodes are reproducible.

    ``channels`` and ``image_size`` describe the images; ``num_classes(stage)`` and
    ``class_names(stage)`` the classes of ``"train"``, ``"val"`` or ``"test"``.
    """

    channels = 1

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/omniglot",
        image_size: int = 28,
        split: str = "vinyals",
        way: int = 5,
        shot: int = 1,
        query: int = 5,
        train_way: int | None = None,
        train_shot: int | None = None,
        train_query: int | None = None,
        rotations: bool | list[str] = True,
        within_alphabet: bool = False,
        train_within_alphabet: bool = False,
        train_episodes_per_epoch: int = 500,
        val_episodes: int = 100,
        test_episodes: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        download: bool = True,
        device: str | None = None,
        augment: float = 0.0,
    ) -> None:
        check_split(split)
        rotations = plain(rotations)
        super().__init__(
            image_size=image_size,
            way=way,
            shot=shot,
            query=query,
            train_way=train_way,
            train_shot=train_shot,
            train_query=train_query,
            train_episodes_per_epoch=train_episodes_per_epoch,
            val_episodes=val_episodes,
            test_episodes=test_episodes,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            seed=seed,
            max_image_size=MAX_IMAGE_SIZE,
            device=device,
        )
        self.save_hyperparameters()
        self.root, self.split = root, split
        self.rotated = _rotation_stages(split, rotations)
        self.within_alphabet = check_flag("within_alphabet", within_alphabet)
        self.train_within_alphabet = check_flag("train_within_alphabet", train_within_alphabet)
        self.download = check_flag("download", download)
        valid = not isinstance(augment, bool) and isinstance(augment, int | float)
        if not (valid and 0 <= augment <= MAX_STRENGTH):
            raise MatchnetError(
                f"data.augment={augment!r} is invalid: it must be a number from 0 (off) to {MAX_STRENGTH:g}, "
                "the strength of the random affine distortions of training images (1 = Koch et al.'s ranges)."
            )
        self.augmentation = RandomAffine(strength=float(augment)) if augment > 0 else None
        check_host_augment(augment, self.augmentation is not None, self.device)
        for stage in ("train", "val"):
            self._check_drawings(stage)
        self._catalog: Catalog | None = None
        self._classes: dict[str, list[tuple[int, int]]] = {}

    def _check_drawings(self, stage: str) -> None:
        _, shot_key, query_key = self._keys[stage]
        _, shot, query = self.settings(stage)
        if shot + query > DRAWINGS_PER_CHARACTER:
            raise MatchnetError(
                f"data.{shot_key} + data.{query_key} = {shot} + {query} = {shot + query}, but an Omniglot "
                f"character has only {DRAWINGS_PER_CHARACTER} drawings and support and query must be "
                f"different ones; lower data.{shot_key} or data.{query_key} so they add up to at most "
                f"{DRAWINGS_PER_CHARACTER}."
            )

    def _stage_classes(self, stage: str) -> list[tuple[int, int]]:
        """``(character, quarter_turns)`` per class of ``stage``; finds (downloads) the archives once."""
        self._check_stage(stage)
        if not self._classes:
            self._catalog = find_sources(self.root, self.download)
            characters = split_characters(self.split, self._catalog.characters, self._catalog.sets)
            for name in STAGES:
                turns = QUARTER_TURNS if name in self.rotated else (0,)
                self._classes[name] = [(c, k) for c in characters[name] for k in turns]
            self._check_ways({name: len(self._classes[name]) for name in STAGES})
        return self._classes[stage]

    def class_names(self, stage: str) -> list[str]:
        """``Alphabet/characterNN/rotDDD`` per class of ``stage``, in class-index order."""
        classes = self._stage_classes(stage)
        return [class_name(self._catalog.characters[c], k) for c, k in classes]

    def _alphabet_groups(self, stage: str) -> list[list[int]]:
        """Class indices of ``stage`` grouped by alphabet."""
        groups: dict[str, list[int]] = defaultdict(list)
        for index, name in enumerate(self.class_names(stage)):
            groups[name.split("/")[0]].append(index)
        return list(groups.values())

    def _within(self, stage: str) -> bool:
        """Whether ``stage``'s episodes take all their classes from one alphabet."""
        return self.train_within_alphabet if stage == "train" else self.within_alphabet

    def _groups(self, stage: str) -> list[list[int]] | None:
        return self._alphabet_groups(stage) if self._within(stage) else None

    def _check_ways(self, counts: dict[str, int]) -> None:
        super()._check_ways(counts)
        for stage in STAGES:
            way_key = self._keys[stage][0]
            way = self.settings(stage)[0]
            if self._within(stage):
                flag = "train_within_alphabet" if stage == "train" else "within_alphabet"
                largest = max(map(len, self._alphabet_groups(stage)))
                if way > largest:
                    raise MatchnetError(
                        f"data.{way_key}={way} with data.{flag}=true, but the largest alphabet of "
                        f"the {self.split} {stage} split has only {largest} classes; set data.{way_key} to "
                        f"at most {largest} or data.{flag}=false."
                    )

    def _augment(self, stage: str) -> Augment | None:
        return self.augmentation if stage == "train" else None

    def _load_images(self) -> tuple[Tensor, Tensor]:
        self._stage_classes("train")
        data = load_images(self._catalog, self.image_size)
        return data.images, data.labels


def check_host_augment(augment: object, active: bool, device: str | None) -> None:
    """Augmentation runs on the host: refuse it with episodes assembled on a device."""
    if active and device is not None:
        shown = str(augment).lower() if isinstance(augment, bool) else augment
        raise MatchnetError(
            f"data.augment={shown} augments episodes on the host, but data.device={device} assembles "
            "them on the device; set data.device=null (and use data.num_workers) to augment."
        )


def check_stats(key: str, values: Sequence[float] | None, channels: int) -> tuple[float, ...] | None:
    """``data.mean`` / ``data.std``: None or ``channels`` numbers (std > 0), else a MatchnetError."""
    if values is None:
        return None
    items = list(values) if isinstance(values, Iterable) and not isinstance(values, str) else None
    numbers = items is not None and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in items
    )
    if not numbers or len(items) != channels or (key == "std" and min(items) <= 0):
        positive = ", each > 0" if key == "std" else ""
        raise MatchnetError(
            f"data.{key}={values!r} is invalid: it must be null or a list of {channels} numbers (one per "
            f"channel{positive}), e.g. data.{key}=[{', '.join(['0.5'] * channels)}]."
        )
    return tuple(float(v) for v in items)


class _ColourSettings:
    """What miniImageNet and image folders add to the episode settings: channels, normalisation
    constants (used by the encoder, see ``conf/model/encoder/``) and the training augmentation."""

    channels: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    augmentation: FlipAndCrop | None

    def _colour_settings(
        self,
        channels: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        augment: bool,
        crop_padding: int,
    ) -> None:
        self.channels = channels
        self.mean, self.std = check_stats("mean", mean, channels), check_stats("std", std, channels)
        if (self.mean is None) != (self.std is None):
            raise MatchnetError(
                f"data.mean={mean!r} and data.std={std!r}: set both (per-channel normalisation) or neither."
            )
        padding = check_int("crop_padding", crop_padding, 0)
        self.augmentation = (
            FlipAndCrop(flip=True, padding=padding) if check_flag("augment", augment) else None
        )
        check_host_augment(augment, self.augmentation is not None, getattr(self, "device", None))

    def _augment(self, stage: str) -> Augment | None:
        return self.augmentation if stage == "train" else None


class MiniImageNetDataModule(_ColourSettings, EpisodeDataModule):
    """miniImageNet N-way K-shot episodes (Vinyals et al. 2016; Ravi and Larochelle's 64/16/20 split).

    - ``root``: folder with learn2learn's three pickles (see ``matchnet.data.miniimagenet``),
      downloaded there through learn2learn when missing and ``download``.
    - ``image_size`` (84) and ``channels`` (3) describe the images; they are fixed by the files and
      exist as settings so the model config can follow them (``${data.image_size}``).
    - ``mean`` / ``std``: per-channel normalisation constants, applied by the encoder (episodes
      stay in [0, 1], so plots and ``src/predict.py`` need no special case); null: none.
    - ``augment``: random horizontal flips and random crops after ``crop_padding`` pixels of zero
      padding, on training episodes only, seeded per episode (not with ``device``).
    - the episode settings (and ``device``) are those of ``EpisodeDataModule``.
    """

    split = "ravi"

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/miniimagenet",
        image_size: int = 84,
        channels: int = 3,
        mean: Sequence[float] | None = IMAGENET_MEAN,
        std: Sequence[float] | None = IMAGENET_STD,
        augment: bool = False,
        crop_padding: int = 8,
        way: int = 5,
        shot: int = 1,
        query: int = 15,
        train_way: int | None = None,
        train_shot: int | None = None,
        train_query: int | None = None,
        train_episodes_per_epoch: int = 500,
        val_episodes: int = 100,
        test_episodes: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        download: bool = True,
        device: str | None = None,
    ) -> None:
        mean, std = plain(mean), plain(std)
        for key, value, fixed in (("image_size", image_size, MINI_SIZE), ("channels", channels, 3)):
            if value != fixed:
                raise MatchnetError(
                    f"data.{key}={value!r} is invalid for miniImageNet, whose images are "
                    f"{MINI_SIZE}x{MINI_SIZE} RGB: set data.{key}={fixed}."
                )
        super().__init__(
            image_size=image_size,
            way=way,
            shot=shot,
            query=query,
            train_way=train_way,
            train_shot=train_shot,
            train_query=train_query,
            train_episodes_per_epoch=train_episodes_per_epoch,
            val_episodes=val_episodes,
            test_episodes=test_episodes,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            seed=seed,
            device=device,
        )
        self.save_hyperparameters()
        self._colour_settings(channels, mean, std, augment, crop_padding)
        self.root = root
        self.download = check_flag("download", download)
        self._data: MiniImageNetImages | None = None

    def _images_data(self) -> MiniImageNetImages:
        if self._data is None:
            data = load_miniimagenet(self.root, self.download)
            self._check_ways({stage: len(data.stage_labels[stage]) for stage in STAGES})
            counts = torch.bincount(data.labels, minlength=len(data.class_names)).tolist()
            for stage in STAGES:
                labels = data.stage_labels[stage]
                self._check_class_sizes(
                    stage, [counts[i] for i in labels], [data.class_names[i] for i in labels]
                )
            self._data = data
        return self._data

    def _stage_classes(self, stage: str) -> list[tuple[int, int]]:
        self._check_stage(stage)
        return [(label, 0) for label in self._images_data().stage_labels[stage]]

    def class_names(self, stage: str) -> list[str]:
        """The synset ids (e.g. ``n01532829``) of ``stage``'s classes."""
        return [self._images_data().class_names[label] for label, _ in self._stage_classes(stage)]

    def _load_images(self) -> tuple[Tensor, Tensor]:
        data = self._images_data()
        return data.images, data.labels


class ImageFolderDataModule(_ColourSettings, EpisodeDataModule):
    """Episodes from your own images: one sub-folder per class (see ``matchnet.data.folder``).

    - ``root``: ``train/``, ``val/`` and ``test/`` folders of classes, or one folder of classes.
    - ``split``: ``auto`` (``folders`` when ``root/train`` exists, else ``random``), ``folders`` or
      ``random``; ``split_fractions``: train / val / test shares of the classes for ``random``,
      drawn with ``split_seed``. The ``split`` attribute is the layout used (``folders``/``random``).
    - ``image_size``: images are padded to a square and Lanczos-resized to it; ``channels``: 1
      (grayscale, ink bright as in ``load_image``) or 3 (RGB as is).
    - ``mean`` / ``std``, ``augment`` / ``crop_padding``: as ``MiniImageNetDataModule``'s.
    - every class of a stage needs at least ``shot + query`` images of that stage.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] = "data/images",
        image_size: int = 84,
        channels: int = 3,
        split: str = "auto",
        split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
        split_seed: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        augment: bool = False,
        crop_padding: int = 8,
        way: int = 5,
        shot: int = 1,
        query: int = 5,
        train_way: int | None = None,
        train_shot: int | None = None,
        train_query: int | None = None,
        train_episodes_per_epoch: int = 500,
        val_episodes: int = 100,
        test_episodes: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        mean, std, split_fractions = plain(mean), plain(std), plain(split_fractions)
        if channels not in (1, 3) or isinstance(channels, bool):
            raise MatchnetError(f"data.channels={channels!r} is invalid: use 1 (grayscale) or 3 (RGB).")
        if split not in LAYOUTS:
            raise MatchnetError(
                f"data.split={split!r} is invalid for image folders: use one of {', '.join(LAYOUTS)}."
            )
        fractions = list(split_fractions) if isinstance(split_fractions, Iterable) else []
        if (
            len(fractions) != 3
            or not all(isinstance(f, (int, float)) and f > 0 for f in fractions)
            or (abs(sum(fractions) - 1) > 1e-6)
        ):
            raise MatchnetError(
                f"data.split_fractions={split_fractions!r} is invalid: it must be three positive shares of "
                f"the classes (train, val, test) that add up to 1, e.g. [0.6, 0.2, 0.2]."
            )
        super().__init__(
            image_size=image_size,
            way=way,
            shot=shot,
            query=query,
            train_way=train_way,
            train_shot=train_shot,
            train_query=train_query,
            train_episodes_per_epoch=train_episodes_per_epoch,
            val_episodes=val_episodes,
            test_episodes=test_episodes,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            seed=seed,
            device=device,
        )
        self.save_hyperparameters()
        self._colour_settings(channels, mean, std, augment, crop_padding)
        self.root, self.layout = root, split
        self.split_fractions = tuple(float(f) for f in fractions)
        self.split_seed = check_int("split_seed", split_seed, -(2**63))
        self.split = split
        self._folders: FolderSplit | None = None

    def _scan(self) -> FolderSplit:
        if self._folders is None:
            folders = scan_folder(self.root, self.layout, self.split_fractions, self.split_seed)
            self.split = folders.layout
            self._check_ways({stage: len(folders.stages[stage]) for stage in STAGES})
            for stage in STAGES:
                members = folders.stages[stage]
                self._check_class_sizes(
                    stage, [len(c.files) for c in members], [str(c.folder) for c in members]
                )
            self._folders = folders
        return self._folders

    def _stage_classes(self, stage: str) -> list[tuple[int, int]]:
        self._check_stage(stage)
        folders = self._scan()
        start = sum(len(folders.stages[s]) for s in STAGES[: STAGES.index(stage)])
        return [(start + j, 0) for j in range(len(folders.stages[stage]))]

    def class_names(self, stage: str) -> list[str]:
        """The folder names of ``stage``'s classes, sorted."""
        self._check_stage(stage)
        return [c.name for c in self._scan().stages[stage]]

    def _load_images(self) -> tuple[Tensor, Tensor]:
        return load_folder_images(self._scan(), self.image_size, self.channels)
