"""Lightning DataModules of few-shot episodes, one ``Episode`` per DataLoader item.

``EpisodeDataModule`` holds everything that does not depend on the data set: the episode settings
(``EpisodeSettings``), the seeded episode datasets and the DataLoaders (DDP-aware). A data set is a
small subclass with a settings dataclass of its own (where its images come from) that says which
classes each stage has and loads the images: ``OmniglotDataModule`` (``matchnet.data.omniglot``),
``MiniImageNetDataModule`` (``matchnet.data.miniimagenet``) and ``ImageFolderDataModule``
(``matchnet.data.folder``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Sampler

from matchnet.data.batches import ImageBatchDataset
from matchnet.data.episodes import EpisodeDataset, EpisodeSampler
from matchnet.data.settings import NOT_TEST_EPISODE_KEYS, EpisodeSettings, Settings, plain
from matchnet.data.splits import STAGES
from matchnet.errors import MatchnetError

#: Changes a uint8 image batch ``[B, C, S, S]`` with the given generator (training augmentation).
Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class EpisodeDataModule(pl.LightningDataModule):
    """N-way K-shot episodes (see ``Episode``) from an in-memory uint8 image tensor, one per item.

    Subclasses provide the data: ``Settings`` (a ``Settings`` dataclass of the data set's own
    keyword arguments, which become attributes of the module), ``_stage_classes(stage)`` (the
    ``(label, quarter_turns)`` pairs that are the classes of a stage), ``class_names(stage)``,
    ``_load_images()`` (uint8 ``[M, C, S, S]`` images and int64 ``[M]`` labels) and ``split``;
    optionally ``_groups(stage)`` (episodes take all their classes from one group) and
    ``augmentation`` (of training images). Everything else, episode settings, checks, episode
    datasets and DataLoaders, is here. The keyword arguments are those of ``EpisodeSettings`` and
    ``Settings``, and ``stages``: the stages the run reads (default all three; ``src/eval.py`` reads
    ``("test",)``). Only those are checked against the data (enough classes for the way, enough
    images per class) and get an episode dataset, so a test on the test split is not refused because
    of the validation split.
    """

    channels = 1
    split = ""
    #: The data set's own settings; ``episode_defaults``: its defaults of episode settings, if other.
    Settings: ClassVar[type[Settings]] = Settings
    episode_defaults: ClassVar[dict[str, Any]] = {}
    #: The augmentation of training images (None: none), set by the data set.
    augmentation: Augment | None = None

    def __init__(self, *, stages: Iterable[str] = STAGES, **settings: Any) -> None:
        super().__init__()
        self.stages = self.check_stages(stages)
        self.episode, self.source = self.check_settings(settings, stages=self.stages)
        self.save_hyperparameters(self.defaults() | {key: plain(value) for key, value in settings.items()})
        for item in fields(self.source):  # the data set's settings: self.root, self.image_size, ...
            setattr(self, item.name, getattr(self.source, item.name))
        self.way, self.shot, self.query = self.episode.stage("val")
        self.train_way, self.train_shot, self.train_query = self.episode.stage("train")
        self.seed, self.episode_seed = self.episode.seed, self.episode.episode_seed
        self.num_workers = self.episode.num_workers
        self.train_batch_size = self.episode.train_batch_size
        self.pin_memory = self.episode.pin_memory
        # Ignored without workers, so that num_workers=0 alone switches them off.
        self.persistent_workers = self.episode.persistent_workers and self.num_workers > 0
        self.device = None if self.episode.host else str(self.episode.device)
        self.episodes = {stage: self.episode.episodes(stage) for stage in STAGES}
        self._keys = {stage: self.episode.keys(stage) for stage in STAGES}
        self._datasets: dict[str, EpisodeDataset | ImageBatchDataset] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A data set's signature lists its settings (for ``help`` and ``inspect.signature``)."""
        super().__init_subclass__(**kwargs)
        keyword = inspect.Parameter.KEYWORD_ONLY
        parameters = [inspect.Parameter(key, keyword, default=value) for key, value in cls.defaults().items()]
        cls.__signature__ = inspect.Signature(parameters, return_annotation=None)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every setting with its default (plain types)."""
        merged = cls.Settings.defaults() | EpisodeSettings.defaults() | cls.episode_defaults
        return {key: plain(value) for key, value in merged.items()}

    @classmethod
    def check_keys(cls, keys: Iterable[str], name: str | None = None) -> None:
        """A MatchnetError for the first of ``keys`` that is not a setting of this data set. ``name``:
        the class path the config uses (``matchnet.data.OmniglotDataModule``), for the message."""
        known = cls.defaults()
        for key in keys:
            if key not in known:
                raise MatchnetError(
                    f"data.{key} is not a setting of {name or f'{cls.__module__}.{cls.__qualname__}'}; "
                    f"known settings: {', '.join(sorted(known))}. Remove it or fix its spelling."
                )

    @staticmethod
    def check_stages(stages: Iterable[str]) -> tuple[str, ...]:
        """``stages`` as a tuple in ``STAGES`` order; ValueError when one is not a stage or none is given."""
        chosen = set(stages)
        if not chosen or not chosen <= set(STAGES):
            raise ValueError(f"stages must be a non-empty selection of {STAGES}, not {sorted(chosen)}")
        return tuple(stage for stage in STAGES if stage in chosen)

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], name: str | None = None, stages: Sequence[str] = STAGES
    ) -> tuple[EpisodeSettings, Settings]:
        """The episode and data set settings of ``settings`` (keyword arguments or the data config
        without ``_target_``), each checked; a MatchnetError names the first bad key (``name``: as
        for ``check_keys``). Invariants that concern one stage are checked for ``stages`` only."""
        cls.check_keys(settings, name)
        own = {item.name for item in fields(cls.Settings)}  # the dataclasses make each value plain
        episode = EpisodeSettings(
            **(cls.episode_defaults | {k: v for k, v in settings.items() if k not in own})
        )
        source = cls.Settings(**{k: v for k, v in settings.items() if k in own})
        cls._check_together(episode, source, stages)
        if source.augments and not episode.host:
            shown = str(source.augment).lower() if isinstance(source.augment, bool) else source.augment
            raise MatchnetError(
                f"data.augment={shown} augments episodes on the host, but data.device={episode.device} "
                "assembles them on the device; set data.device=null (and use data.num_workers) to augment."
            )
        return episode, source

    @classmethod
    def _check_together(cls, episode: EpisodeSettings, source: Settings, stages: Sequence[str]) -> None:
        """Invariants between the episode settings and the data set's own (before any data is read),
        for the episodes of ``stages``."""

    def settings(self, stage: str) -> tuple[int, int, int]:
        """``(way, shot, query)`` of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        return self.episode.stage(stage)

    def test_episode_settings(self) -> dict[str, Any]:
        """What test episode n is a function of (besides n): this data module's class and its settings
        but ``NOT_TEST_EPISODE_KEYS``. Runs with equal settings here met the same test episode n."""
        kind = {"data_module": f"{type(self).__module__}.{type(self).__qualname__}"}
        return kind | {key: value for key, value in self.hparams.items() if key not in NOT_TEST_EPISODE_KEYS}

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
        """The augmentation applied to the images of ``stage``'s episodes: training ones only."""
        return self.augmentation if stage == "train" else None

    # ------------------------------------------------------------------ shared checks

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")

    def num_classes(self, stage: str) -> int:
        """How many classes ``stage`` (``"train"``, ``"val"`` or ``"test"``) draws its episodes from."""
        return len(self._stage_classes(stage))

    def _check_ways(self, counts: dict[str, int]) -> None:
        """MatchnetError when one of ``stages`` has fewer classes (``counts[stage]``) than its way."""
        for stage in self.stages:
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
        """Load the images and make the episode datasets of ``stages`` (once)."""
        if self._datasets:
            return
        classes = {name: self._stage_classes(name) for name in self.stages}
        images, labels = self._load_images()
        for name in self.stages:
            if name == "train" and self.train_batch_size is not None:  # the baseline classifier's batches
                self._datasets[name] = ImageBatchDataset(
                    images,
                    labels,
                    classes[name],
                    batch_size=self.train_batch_size,
                    seed=self.seed,
                    stage=name,
                    augment=self._augment(name),
                    device=self.device,
                )
                continue
            way, shot, query = self.settings(name)
            self._datasets[name] = EpisodeDataset(
                images,
                labels,
                classes[name],
                way=way,
                shot=shot,
                query=query,
                length=self.episodes[name],
                seed=self.seed if name == "train" else self.episode_seed,
                stage=name,
                groups=self._groups(name),
                augment=self._augment(name),
                device=self.device,
            )

    def dataset(self, stage: str) -> EpisodeDataset | ImageBatchDataset:
        """The episode dataset of ``stage`` (one of ``stages``; training: image batches when
        ``train_batch_size`` is set); sets up on first use."""
        self._check_stage(stage)
        if stage not in self.stages:
            raise ValueError(f"this data module reads only the stages {self.stages}, not {stage!r}")
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
        """``train_episodes_per_epoch`` new episodes per epoch, or with ``train_batch_size`` one pass over
        the training images in batches (Lightning calls ``sampler.set_epoch``)."""
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
