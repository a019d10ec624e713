"""Users' own images: class folders, their split into train / val / test, and the resized-image cache.

Two layouts of ``root`` (one sub-folder per class, images of any size and format PIL reads):

- ``root/train/<class>/*``, ``root/val/<class>/*``, ``root/test/<class>/*`` (``split="folders"``);
- ``root/<class>/*`` (``split="random"``): the classes, sorted by name, are shuffled with
  ``random.Random(split_seed)`` and the first ``round(fractions[0] * n)`` train, the next
  ``round(fractions[1] * n)`` validate and the rest test.

Hidden entries (names starting with ``.``) and files without an image extension are skipped. Every
image is converted once with ``image_pixels`` (the same conversion as ``load_image``, so
``src/predict.py`` sees new images exactly as training did) into ``<root>/.matchnet_cache/``,
keyed by a fingerprint of the files (paths, sizes, modification times), the size and the channels;
it is rebuilt when they change and written atomically. A read-only ``root`` only loses the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from matchnet.data.datamodule import EpisodeDataModule
from matchnet.data.images import image_pixels
from matchnet.data.settings import PATH, ColourSettings, setting
from matchnet.data.splits import STAGES
from matchnet.errors import MatchnetError
from matchnet.io import atomic_open
from matchnet.rules import SEED, Rule, choice, integer

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
CACHE_DIR = ".matchnet_cache"
CACHE_FORMAT = 1
LAYOUTS = ("auto", "folders", "random")


@dataclass(frozen=True)
class FolderClass:
    """One class: its name (the folder name), folder and sorted image files."""

    name: str
    folder: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class FolderSplit:
    """The classes of each stage and the layout they came from (``folders`` or ``random``)."""

    root: Path
    layout: str
    stages: dict[str, list[FolderClass]]

    @property
    def classes(self) -> list[FolderClass]:
        """All classes, train first; the label of an image is its class's index here."""
        return [c for stage in STAGES for c in self.stages[stage]]

    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed, renamed, resized or touched."""
        digest = hashlib.sha256(self.layout.encode())
        for stage in STAGES:
            for cls in self.stages[stage]:
                digest.update(f"\n{stage}/{cls.name}".encode())
                for file in cls.files:
                    stat = file.stat()
                    digest.update(f"|{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _scan_classes(folder: Path, what: str) -> list[FolderClass]:
    """The class sub-folders of ``folder`` with their image files; MatchnetError when there are none."""
    classes = [
        FolderClass(
            p.name, p, tuple(f for f in _entries(p) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        )
        for p in _entries(folder)
        if p.is_dir()
    ]
    if not classes:
        raise MatchnetError(
            f"The {what} {folder} has no class folders, so that split is empty; put one sub-folder per class "
            f"in it ({folder}/<class>/<image files>)."
        )
    return classes


def _random_split(
    classes: list[FolderClass], fractions: Sequence[float], seed: int
) -> dict[str, list[FolderClass]]:
    order = list(classes)
    random.Random(seed).shuffle(order)
    n_train = round(fractions[0] * len(order))
    n_val = round(fractions[1] * len(order))
    cut = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    return {stage: sorted(members, key=lambda c: c.name) for stage, members in cut.items()}


def scan_folder(
    root: str | os.PathLike[str],
    layout: str = "auto",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
) -> FolderSplit:
    """Find the classes of ``root`` and split them (see the module docstring); no image is read.

    ``layout``: ``folders`` (``train/``, ``val/``, ``test/``), ``random`` (class folders split by
    ``fractions`` with ``seed``) or ``auto`` (``folders`` when ``root/train`` exists).
    """
    root = Path(root)
    if not root.is_dir():
        raise MatchnetError(
            f"data.root={root} is not a folder; point it at a folder with train/, val/ and test/ (each with "
            f"one sub-folder per class) or with one sub-folder per class."
        )
    if layout == "auto":
        layout = "folders" if (root / "train").is_dir() else "random"
    if layout == "folders":
        missing = [s for s in STAGES if not (root / s).is_dir()]
        if missing:
            raise MatchnetError(
                f"data.root={root} has no {', '.join(f'{s}/' for s in missing)} folder; with "
                f"data.split=folders it must hold train/, val/ and test/, each with a sub-folder per class. "
                f"Add them, or use data.split=random on a folder of classes."
            )
        stages = {stage: _scan_classes(root / stage, f"{stage} folder") for stage in STAGES}
    else:
        stages = _random_split(_scan_classes(root, "data.root folder"), fractions, seed)
        for stage, members in stages.items():
            if not members:
                raise MatchnetError(
                    f"data.root={root} has only {sum(map(len, stages.values()))} classes, so the random "
                    f"split data.split_fractions={list(fractions)} leaves the {stage} split empty; add "
                    f"class folders or change data.split_fractions."
                )
    return FolderSplit(root, layout, stages)


def _convert(file: Path, image_size: int, channels: int) -> Tensor | None:
    try:
        with Image.open(file) as image:
            return torch.from_numpy(image_pixels(image, image_size, channels))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        log.debug("Cannot read %s: %s", file, err)
        return None


def _build(split: FolderSplit, image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    """Convert every image: uint8 ``[M, C, S, S]`` and int64 labels ``[M]``; names all unreadable files."""
    classes = split.classes
    total = sum(len(c.files) for c in classes)
    images = torch.empty(total, channels, image_size, image_size, dtype=torch.uint8)
    labels = torch.empty(total, dtype=torch.int64)
    bad: list[Path] = []
    index = 0
    with tqdm(total=total, unit="img", desc=f"Caching {split.root} at {image_size}x{image_size}") as bar:
        for label, cls in enumerate(classes):
            for file in cls.files:
                pixels = _convert(file, image_size, channels)
                if pixels is None:
                    bad.append(file)
                else:
                    images[index], labels[index] = pixels, label
                    index += 1
                bar.update()
    if bad:
        listed = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise MatchnetError(
            f"{len(bad)} file(s) under data.root={split.root} are not readable images: {listed}. Delete or "
            f"replace them (or rename them so they do not end in an image extension)."
        )
    return images, labels


def cache_path(root: str | os.PathLike[str], image_size: int, channels: int) -> Path:
    """``<root>/.matchnet_cache/images-<size>-<channels>.pt``."""
    return Path(root) / CACHE_DIR / f"images-{image_size}-{channels}.pt"


def load_folder_images(split: FolderSplit, image_size: int, channels: int) -> tuple[Tensor, Tensor]:
    """All images of ``split``, uint8 ``[M, C, S, S]``, and their labels (index in ``split.classes``).

    From the cache when it matches the files, size and channels; built (and cached) otherwise.
    """
    path = cache_path(split.root, image_size, channels)
    key = {
        "format": CACHE_FORMAT,
        "fingerprint": split.fingerprint(),
        "size": image_size,
        "channels": channels,
    }
    if path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(payload, dict) and all(payload.get(k) == v for k, v in key.items()):
                return payload["images"], payload["labels"]
            log.info("Rebuilding %s: the images or settings changed", path)
        except Exception as err:  # an unreadable cache is simply rebuilt
            log.warning("Rebuilding %s: it does not load (%s: %s)", path, type(err).__name__, err)
    images, labels = _build(split, image_size, channels)
    try:
        with atomic_open(path, "wb") as handle:
            torch.save(key | {"images": images, "labels": labels}, handle)
    except OSError as err:
        log.warning(
            "Cannot write the image cache %s (%s); the images are converted again next run", path, err
        )
    return images, labels


# ----------------------------------------------------------------------------- the DataModule

#: ``data.split_fractions``: train / val / test shares of the classes for a random split.
FRACTIONS = Rule(
    lambda v: (
        isinstance(v, (list, tuple))
        and len(v) == 3
        and all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in v)
        and abs(sum(v) - 1) <= 1e-6
    ),
    "three positive shares of the classes (train, val, test) that add up to 1, e.g. [0.6, 0.2, 0.2]",
)


@dataclass(frozen=True)
class ImageFolderSettings(ColourSettings):
    """Where the images and classes of an image folder come from (see ``ImageFolderDataModule``)."""

    root: str = setting("data/images", PATH)
    image_size: int = setting(84, integer(1))
    split: str = setting("auto", choice(LAYOUTS))
    split_fractions: list[float] = setting((0.6, 0.2, 0.2), FRACTIONS)
    split_seed: int = setting(0, SEED)


class ImageFolderDataModule(EpisodeDataModule):
    """Episodes from your own images: one sub-folder per class (see ``matchnet.data.folder``).

    - ``root``: ``train/``, ``val/`` and ``test/`` folders of classes, or one folder of classes.
    - ``split``: ``auto`` (``folders`` when ``root/train`` exists, else ``random``), ``folders`` or
      ``random``; ``split_fractions``: train / val / test shares of the classes for ``random``,
      drawn with ``split_seed``. The ``split`` attribute is the layout used (``folders``/``random``).
    - ``image_size``: images are padded to a square and Lanczos-resized to it; ``channels``: 1
      (grayscale, ink bright as in ``load_image``) or 3 (RGB as is).
    - ``mean`` / ``std``, ``augment`` / ``crop_padding``: as ``MiniImageNetDataModule``'s.
    - the episode settings (way, shot, query, ...) are ``EpisodeSettings``; every class of a stage
      needs at least ``shot + query`` images of that stage.
    """

    Settings = ImageFolderSettings

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.layout = self.split
        self.split_fractions = tuple(float(f) for f in self.split_fractions)
        self.augmentation = self.source.flip_and_crop()
        self._folders: FolderSplit | None = None

    def _scan(self) -> FolderSplit:
        if self._folders is None:
            folders = scan_folder(self.root, self.layout, self.split_fractions, self.split_seed)
            self.split = folders.layout
            self._check_ways({stage: len(folders.stages[stage]) for stage in STAGES})
            for stage in self.stages:
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
