"""``OmniglotDataModule``: Omniglot few-shot episodes for Lightning, one ``Episode`` per batch."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable

import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Sampler

from matchnet.data.episodes import EpisodeDataset, EpisodeSampler
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
from matchnet.resume import episodes_done_this_epoch

MAX_IMAGE_SIZE = 105  # the Omniglot drawings are 105x105


def _check_int(key: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
        allowed = f"an integer from {low} to {high}" if high else f"an integer >= {low}"
        raise MatchnetError(
            f"data.{key}={value!r} is invalid: it must be {allowed}. Set data.{key} accordingly."
        )
    return value


def _check_flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise MatchnetError(f"data.{key}={value!r} is invalid: it must be true or false.")
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


class OmniglotDataModule(pl.LightningDataModule):
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
    - ``seed``: fixes the val/test episodes and the training episodes of every epoch, independent of
      ``num_workers`` and of the number of distributed ranks for val/test.

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
        train_episodes_per_epoch: int = 500,
        val_episodes: int = 100,
        test_episodes: int = 1000,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        seed: int = 0,
        download: bool = True,
    ) -> None:
        super().__init__()
        check_split(split)
        self.save_hyperparameters()
        self.root, self.split = root, split
        self.image_size = _check_int("image_size", image_size, 1, MAX_IMAGE_SIZE)
        self.way = _check_int("way", way, 1)
        self.shot = _check_int("shot", shot, 1)
        self.query = _check_int("query", query, 1)
        self.train_way = way if train_way is None else _check_int("train_way", train_way, 1)
        self.train_shot = shot if train_shot is None else _check_int("train_shot", train_shot, 1)
        self.train_query = query if train_query is None else _check_int("train_query", train_query, 1)
        self.rotated = _rotation_stages(split, rotations)
        self.within_alphabet = _check_flag("within_alphabet", within_alphabet)
        self.episodes = {
            "train": _check_int("train_episodes_per_epoch", train_episodes_per_epoch, 1),
            "val": _check_int("val_episodes", val_episodes, 1),
            "test": _check_int("test_episodes", test_episodes, 1),
        }
        self.num_workers = _check_int("num_workers", num_workers, 0)
        self.pin_memory = _check_flag("pin_memory", pin_memory)
        # Ignored without workers, so that num_workers=0 alone switches them off.
        self.persistent_workers = _check_flag("persistent_workers", persistent_workers) and num_workers > 0
        self.seed = _check_int("seed", seed, -(2**63))
        self.download = _check_flag("download", download)
        overrides = (("way", train_way), ("shot", train_shot), ("query", train_query))
        train_keys = tuple(key if value is None else f"train_{key}" for key, value in overrides)
        # The config keys behind each stage's (way, shot, query), for error messages.
        self._keys = {"train": train_keys, "val": ("way", "shot", "query"), "test": ("way", "shot", "query")}
        for stage in ("train", "val"):
            self._check_drawings(stage)
        self._catalog: Catalog | None = None
        self._classes: dict[str, list[tuple[int, int]]] = {}
        self._datasets: dict[str, EpisodeDataset] = {}

    def settings(self, stage: str) -> tuple[int, int, int]:
        """``(way, shot, query)`` of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        if stage == "train":
            return self.train_way, self.train_shot, self.train_query
        return self.way, self.shot, self.query

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

    # ------------------------------------------------------------------ classes

    def _stage_classes(self, stage: str) -> list[tuple[int, int]]:
        """``(character, quarter_turns)`` per class of ``stage``; finds (downloads) the archives once."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
        if not self._classes:
            self._catalog = find_sources(self.root, self.download)
            characters = split_characters(self.split, self._catalog.characters, self._catalog.sets)
            for name in STAGES:
                turns = QUARTER_TURNS if name in self.rotated else (0,)
                self._classes[name] = [(c, k) for c in characters[name] for k in turns]
            self._check_ways()
        return self._classes[stage]

    def num_classes(self, stage: str) -> int:
        """How many classes ``stage`` (``"train"``, ``"val"`` or ``"test"``) draws its episodes from."""
        return len(self._stage_classes(stage))

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

    def _check_ways(self) -> None:
        for stage in STAGES:
            way_key = self._keys[stage][0]
            way, available = self.settings(stage)[0], len(self._classes[stage])
            if way > available:
                raise MatchnetError(
                    f"data.{way_key}={way} but the {self.split} {stage} split has only {available} classes; "
                    f"set data.{way_key} to at most {available}."
                )
            if self.within_alphabet and stage != "train":
                largest = max(map(len, self._alphabet_groups(stage)))
                if way > largest:
                    raise MatchnetError(
                        f"data.{way_key}={way} with data.within_alphabet=true, but the largest alphabet of "
                        f"the {self.split} {stage} split has only {largest} classes; set data.{way_key} to "
                        f"at most {largest} or data.within_alphabet=false."
                    )

    # ------------------------------------------------------------------ Lightning hooks

    def prepare_data(self) -> None:
        """Download the archives and build the cache (Lightning runs this on one process per node)."""
        self._stage_classes("train")
        load_images(self._catalog, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        """Load the cached images and make the episode datasets of all stages (once)."""
        if self._datasets:
            return
        classes = {name: self._stage_classes(name) for name in STAGES}
        data = load_images(self._catalog, self.image_size)
        for name in STAGES:
            way, shot, query = self.settings(name)
            groups = self._alphabet_groups(name) if self.within_alphabet and name != "train" else None
            self._datasets[name] = EpisodeDataset(
                data.images,
                data.labels,
                classes[name],
                way=way,
                shot=shot,
                query=query,
                length=self.episodes[name],
                seed=self.seed,
                stage=name,
                groups=groups,
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
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        """``train_episodes_per_epoch`` new episodes per epoch (Lightning calls ``sampler.set_epoch``)."""
        dataset = self.dataset("train")
        trainer = self.trainer
        sampler = EpisodeSampler(dataset, **((trainer.distributed_sampler_kwargs if trainer else None) or {}))
        if trainer is not None:
            sampler.set_epoch(trainer.current_epoch)
            sampler.start = episodes_done_this_epoch(trainer)
        return self._loader(dataset, sampler)

    def _eval_sampler(self, dataset: EpisodeDataset) -> Sampler[int] | None:
        """Under DDP, this rank's share of the fixed episodes: every episode on exactly one rank, no padding."""
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
