"""The settings of the data group (``conf/data/*.yaml``), declared once: types, ranges, defaults.

Every setting is a field of a frozen dataclass whose metadata holds its :class:`~matchnet.rules.Rule`;
building the dataclass checks every value and then the invariants between values, and a bad one is a
``MatchnetError`` naming ``data.<key>``, the value and what is allowed. ``EpisodeSettings`` are those
of every data set (way, shot, query, episode counts, loading); each data set adds its own dataclass
(where its images and classes come from), e.g. ``OmniglotSettings``. The DataModules build them from
their keyword arguments and ``matchnet.config`` builds the same objects from the composed config,
so a rule lives in one place and bad overrides fail before any data is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

from matchnet.data.augment import FlipAndCrop
from matchnet.errors import MatchnetError
from matchnet.rules import FLAG, SEED, Rule, choice, integer, numbers_list

#: The usual ImageNet per-channel statistics (torchvision's), miniImageNet's default normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Data settings that do not change what test episode n is (its classes, images and labels): those of
#: training episodes and their augmentation, the episode counts (episode n is the same whatever their
#: number), the training ``seed`` and how episodes are loaded. Every other data setting, ``episode_seed``
#: among them, identifies the test episodes (``EpisodeDataModule.test_episode_settings``).
NOT_TEST_EPISODE_KEYS = frozenset(
    {
        "train_way",
        "train_shot",
        "train_query",
        "train_episodes_per_epoch",
        "train_batch_size",
        "train_within_alphabet",
        "augment",
        "crop_padding",
        "val_episodes",
        "test_episodes",
        "seed",
        "num_workers",
        "pin_memory",
        "persistent_workers",
        "device",
        "download",
    }
)

PATH = Rule(lambda v: isinstance(v, (str, os.PathLike)) and str(v) != "", "a folder path")
DEVICE = Rule(
    lambda v: isinstance(v, str) and v != "", "null (episodes on the host) or a device, e.g. cuda", True
)


def setting(default: Any, rule: Rule) -> Any:
    """A dataclass field: its default and the rule its values must follow."""
    return field(default=default, metadata={"rule": rule})


def redefault(settings: type[Settings], name: str, default: Any) -> Any:
    """The field ``name`` of ``settings`` with another default (the same rule)."""
    return setting(default, settings.__dataclass_fields__[name].metadata["rule"])


def plain(value: object) -> object:
    """A list for any non-string iterable (e.g. Hydra's ``ListConfig``), else ``value``: so rules
    and saved hyperparameters, which Lightning pickles into checkpoints, see only plain types."""
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict, os.PathLike)):
        return list(value)
    return value


@dataclass(frozen=True)
class Settings:
    """Base of the settings dataclasses: each field's rule is checked on construction, then ``check``."""

    def __post_init__(self) -> None:
        for item in fields(self):
            object.__setattr__(self, item.name, plain(getattr(self, item.name)))
            item.metadata["rule"].validate(f"data.{item.name}", getattr(self, item.name))
        self.check()

    def check(self) -> None:
        """Invariants between this dataclass's settings (after each one passed its rule)."""

    @property
    def augments(self) -> bool:
        """Whether training images are augmented (on the host)."""
        return False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {item.name: _default(item) for item in fields(cls)}


def _default(item: Field[Any]) -> Any:
    return item.default if item.default is not MISSING else item.default_factory()  # type: ignore[misc]


@dataclass(frozen=True)
class EpisodeSettings(Settings):
    """The episodes and their loading, the same for every data set.

    - ``way``: classes per val/test episode; ``shot``/``query``: support/query images per class;
      ``train_way``/``train_shot``/``train_query`` override them for training (None: the same).
    - ``seed``: fixes the training episodes of every epoch (the run's ``seed``: a seed sweep trains on
      different episode streams).
    - ``episode_seed``: fixes the val/test episodes, independent of ``seed``, ``num_workers`` and the
      number of distributed ranks, so every job of a sweep meets the same val/test episodes.
    - ``device``: where episodes are assembled (e.g. ``cuda``: the uint8 images live there); None or
      ``cpu``: on the host.
    - ``train_batch_size``: None (training on episodes) or the size of the shuffled mini-batches of
      training images the baseline classifier trains on (``matchnet.data.batches``; one epoch is one
      pass over every training image, ``train_episodes_per_epoch`` is then unused).
    """

    way: int = setting(5, integer(2))
    shot: int = setting(1, integer(1))
    query: int = setting(5, integer(1))
    train_way: int | None = setting(None, integer(2, optional=True))
    train_shot: int | None = setting(None, integer(1, optional=True))
    train_query: int | None = setting(None, integer(1, optional=True))
    train_episodes_per_epoch: int = setting(500, integer(1))
    val_episodes: int = setting(100, integer(1))
    test_episodes: int = setting(1000, integer(1))
    num_workers: int = setting(0, integer(0))
    pin_memory: bool = setting(False, FLAG)
    persistent_workers: bool = setting(False, FLAG)
    seed: int = setting(0, SEED)
    episode_seed: int = setting(0, SEED)
    device: str | None = setting(None, DEVICE)
    train_batch_size: int | None = setting(None, integer(1, optional=True))

    def check(self) -> None:
        if self.device is not None and self.device != "cpu" and self.num_workers > 0:
            raise MatchnetError(
                f"data.device={self.device} gathers episodes on the device in the main process; "
                "set data.num_workers=0."
            )

    def keys(self, stage: str) -> tuple[str, str, str]:
        """The config keys behind ``stage``'s ``(way, shot, query)``, for error messages."""
        if stage != "train":
            return ("way", "shot", "query")
        own = (self.train_way, self.train_shot, self.train_query)
        return tuple(
            key if value is None else f"train_{key}"
            for key, value in zip(("way", "shot", "query"), own, strict=True)
        )  # type: ignore[return-value]

    def stage(self, stage: str) -> tuple[int, int, int]:
        """``(way, shot, query)`` of ``stage`` (``"train"``, ``"val"`` or ``"test"``)."""
        if stage != "train":
            return self.way, self.shot, self.query
        return (
            self.way if self.train_way is None else self.train_way,
            self.shot if self.train_shot is None else self.train_shot,
            self.query if self.train_query is None else self.train_query,
        )

    def episodes(self, stage: str) -> int:
        """How many episodes ``stage`` has (per epoch for training)."""
        return {"train": self.train_episodes_per_epoch, "val": self.val_episodes, "test": self.test_episodes}[
            stage
        ]

    @property
    def host(self) -> bool:
        """Whether episodes are assembled on the host."""
        return self.device in (None, "cpu")


@dataclass(frozen=True)
class ColourSettings(Settings):
    """Colour images (miniImageNet, image folders): normalisation constants (applied by the encoder,
    see ``conf/model/encoder/``) and the flip-and-crop training augmentation."""

    channels: int = setting(3, choice((1, 3)))
    mean: list[float] | None = setting(None, numbers_list(optional=True))
    std: list[float] | None = setting(None, numbers_list(positive=True, optional=True))
    augment: bool = setting(False, FLAG)
    crop_padding: int = setting(8, integer(0))

    def check(self) -> None:
        for key, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != self.channels:
                raise MatchnetError(
                    f"data.{key}={values!r} is invalid: it must be null or a list of {self.channels} numbers "
                    f"(one per channel), e.g. data.{key}=[{', '.join(['0.5'] * self.channels)}]."
                )
            if values is not None:
                object.__setattr__(self, key, tuple(float(v) for v in values))
        if (self.mean is None) != (self.std is None):
            raise MatchnetError(
                f"data.mean={self.mean!r} and data.std={self.std!r}: set both (per-channel normalisation) "
                "or neither."
            )

    @property
    def augments(self) -> bool:
        return self.augment

    def flip_and_crop(self) -> FlipAndCrop | None:
        """The training augmentation (None: off)."""
        return FlipAndCrop(flip=True, padding=self.crop_padding) if self.augment else None
