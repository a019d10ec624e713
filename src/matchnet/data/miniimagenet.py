"""miniImageNet in the learn2learn pickle format: find (download) the three split files and read them.

``root`` holds ``mini-imagenet-cache-train.pkl``, ``mini-imagenet-cache-validation.pkl`` and
``mini-imagenet-cache-test.pkl`` (Ravi and Larochelle's split: 64 / 16 / 20 classes of 600 images).
Each is a pickled dict: ``image_data``, uint8 ``[N, 84, 84, 3]`` (RGB), and ``class_dict``, the row
indices of each class (an ImageNet synset id such as ``n01532829``). When a file is missing and
downloading is allowed, learn2learn's ``MiniImagenet(root, mode, download=True)`` fetches it.
Pickles run code when loaded: only use files from a source you trust.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from matchnet.data.datamodule import EpisodeDataModule
from matchnet.data.settings import IMAGENET_MEAN, IMAGENET_STD, PATH, ColourSettings, redefault, setting
from matchnet.data.splits import STAGES
from matchnet.errors import MatchnetError
from matchnet.rules import FLAG, choice

log = logging.getLogger(__name__)

IMAGE_SIZE = 84
#: Stage -> (file name, learn2learn mode).
SPLIT_FILES = {
    "train": ("mini-imagenet-cache-train.pkl", "train"),
    "val": ("mini-imagenet-cache-validation.pkl", "validation"),
    "test": ("mini-imagenet-cache-test.pkl", "test"),
}
#: Ravi and Larochelle's class counts (a warning, not an error, when a file has others).
RAVI_CLASSES = {"train": 64, "val": 16, "test": 20}
SOURCE = "https://github.com/learnables/learn2learn (learn2learn.vision.datasets.MiniImagenet)"
_HTML_MARKS = (b"<!doctype html", b"<html", b"<head", b"<?xml")


@dataclass(frozen=True)
class MiniImageNetImages:
    """All three splits, concatenated.

    ``images``: uint8 ``[M, 3, 84, 84]``; ``labels``: int64 ``[M]``, an index into ``class_names``
    (synset ids); ``stage_labels``: the labels of each stage's classes, in ``class_names`` order.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    stage_labels: dict[str, list[int]]


def _where_to_get(root: Path) -> str:
    files = ", ".join(name for name, _ in SPLIT_FILES.values())
    return (
        f"Expected in {root}: {files} (learn2learn's miniImageNet pickles). Download them with learn2learn "
        f"(python -c \"import learn2learn as l2l; [l2l.vision.datasets.MiniImagenet('{root}', m, "
        f"download=True) for m in ('train', 'validation', 'test')]\") on a machine that is online, copy "
        f"them there, or set data.root to the folder that has them."
    )


def _download(root: Path, stage: str) -> None:
    """Fetch one split file through learn2learn; MatchnetError (and no partial file) when it fails."""
    name, mode = SPLIT_FILES[stage]
    target = root / name
    try:
        from learn2learn.vision.datasets import MiniImagenet

        root.mkdir(parents=True, exist_ok=True)
        log.info("Downloading miniImageNet %s split to %s with learn2learn", mode, target)
        MiniImagenet(str(root), mode=mode, download=True)
        gc.collect()  # learn2learn keeps a float copy of every image; free it now
    except Exception as err:  # learn2learn raises anything from requests, pickle or os
        if target.exists() and not _is_pickle_start(target):
            target.unlink()
        raise MatchnetError(
            f"The miniImageNet {stage} split {target} is missing and downloading it with learn2learn failed "
            f"({type(err).__name__}: {err}). {_where_to_get(root)}"
        ) from err
    if not target.is_file():
        raise MatchnetError(f"learn2learn did not write {target}. {_where_to_get(root)}")


def _is_pickle_start(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(1) == b"\x80"  # pickle protocol 2+ opcode


def find_split_files(root: str | os.PathLike[str], download: bool = True) -> dict[str, Path]:
    """The three split files under ``root``, downloading missing ones when ``download``."""
    root = Path(root)
    paths = {}
    for stage, (name, _) in SPLIT_FILES.items():
        path = root / name
        if not path.is_file():
            if not download:
                raise MatchnetError(
                    f"The miniImageNet {stage} split {path} is missing and data.download=false. "
                    f"{_where_to_get(root)} Or set data.download=true."
                )
            _download(root, stage)
        paths[stage] = path
    return paths


def _unpickle(path: Path) -> object:
    """The object in ``path``; a MatchnetError for an HTML page (a failed download) or a broken file."""
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
        if head.startswith(_HTML_MARKS) or b"<html" in head:
            raise MatchnetError(
                f"{path} is a web page, not a miniImageNet pickle: a download failed (e.g. a quota or "
                f"sign-in page was saved instead). Delete it and download it again (data.download=true), "
                f"or replace it by hand. {_where_to_get(path.parent)}"
            )
        handle.seek(0)
        try:
            return pickle.load(handle)
        except Exception as err:  # UnpicklingError, EOFError, ValueError, ... on damaged files
            raise MatchnetError(
                f"{path} is not a readable miniImageNet pickle ({type(err).__name__}: {err}); it is probably "
                f"truncated or damaged. Delete it and download it again (data.download=true), or replace it "
                f"by hand. {_where_to_get(path.parent)}"
            ) from err


def read_split(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, list[int]]]:
    """``(image_data uint8 [N, 84, 84, 3], class_dict)`` of one split file, checked."""
    path = Path(path)
    payload = _unpickle(path)
    layout = "a dict with image_data (uint8 array [N, 84, 84, 3]) and class_dict (class name -> row indices)"
    if not isinstance(payload, Mapping) or "image_data" not in payload or "class_dict" not in payload:
        found = sorted(map(str, payload)) if isinstance(payload, Mapping) else type(payload).__name__
        raise MatchnetError(
            f"{path} is not a miniImageNet pickle: expected {layout}, found {found}. "
            f"Replace it with learn2learn's file. {_where_to_get(path.parent)}"
        )
    images, classes = payload["image_data"], payload["class_dict"]
    shape = getattr(images, "shape", None)
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 4
        or tuple(images.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE, 3)
    ):
        kind = f"{type(images).__name__} {getattr(images, 'dtype', '')} {list(shape) if shape else ''}"
        raise MatchnetError(
            f"{path} has image_data of {kind.strip()}, but miniImageNet pickles hold uint8 arrays "
            f"[N, {IMAGE_SIZE}, {IMAGE_SIZE}, 3]. Replace it with learn2learn's file. "
            f"{_where_to_get(path.parent)}"
        )
    if not isinstance(classes, Mapping) or not classes:
        raise MatchnetError(f"{path} has no classes in class_dict; expected {layout}. Replace the file.")
    checked: dict[str, list[int]] = {}
    for name, rows in classes.items():
        rows = [int(i) for i in rows]
        if not rows or min(rows) < 0 or max(rows) >= len(images):
            raise MatchnetError(
                f"{path}: class {name} lists rows outside image_data (which has {len(images)} images) or "
                f"none at all; the file is inconsistent. Replace it with learn2learn's file."
            )
        checked[str(name)] = rows
    return images, checked


def load_miniimagenet(root: str | os.PathLike[str], download: bool = True) -> MiniImageNetImages:
    """Read (downloading when allowed and missing) the three splits into one tensor."""
    paths = find_split_files(root, download)
    images, labels, names = [], [], []
    stage_labels: dict[str, list[int]] = {}
    for stage, path in paths.items():
        data, classes = read_split(path)
        if len(classes) != RAVI_CLASSES[stage]:
            log.warning(
                "%s has %d classes, not Ravi and Larochelle's %d", path, len(classes), RAVI_CLASSES[stage]
            )
        stage_labels[stage] = list(range(len(names), len(names) + len(classes)))
        for label, (name, rows) in zip(stage_labels[stage], classes.items(), strict=True):
            images.append(torch.from_numpy(data[rows]).permute(0, 3, 1, 2))
            labels.append(torch.full((len(rows),), label, dtype=torch.int64))
            names.append(name)
        del data
    return MiniImageNetImages(torch.cat(images).contiguous(), torch.cat(labels), names, stage_labels)


# ----------------------------------------------------------------------------- the DataModule


@dataclass(frozen=True)
class MiniImageNetSettings(ColourSettings):
    """Where miniImageNet's images come from (see ``MiniImageNetDataModule``)."""

    root: str = setting("data/miniimagenet", PATH)
    image_size: int = setting(IMAGE_SIZE, choice((IMAGE_SIZE,)))  # fixed by the files
    channels: int = setting(3, choice((3,)))  # RGB
    mean: list[float] | None = redefault(ColourSettings, "mean", IMAGENET_MEAN)
    std: list[float] | None = redefault(ColourSettings, "std", IMAGENET_STD)
    download: bool = setting(True, FLAG)


class MiniImageNetDataModule(EpisodeDataModule):
    """miniImageNet N-way K-shot episodes (Vinyals et al. 2016; Ravi and Larochelle's 64/16/20 split).

    - ``root``: folder with learn2learn's three pickles (see ``matchnet.data.miniimagenet``),
      downloaded there through learn2learn when missing and ``download``.
    - ``image_size`` (84) and ``channels`` (3) describe the images; they are fixed by the files and
      exist as settings so the model config can follow them (``${data.image_size}``).
    - ``mean`` / ``std``: per-channel normalisation constants, applied by the encoder (episodes
      stay in [0, 1], so plots and ``src/predict.py`` need no special case); null: none.
    - ``augment``: random horizontal flips and random crops after ``crop_padding`` pixels of zero
      padding, on training episodes only, seeded per episode (not with ``device``).
    - the episode settings (way, shot, query, ..., ``device``) are ``EpisodeSettings``.
    """

    split = "ravi"
    Settings = MiniImageNetSettings
    episode_defaults = {"query": 15}

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.augmentation = self.source.flip_and_crop()
        self._data: MiniImageNetImages | None = None

    def _images_data(self) -> MiniImageNetImages:
        if self._data is None:
            data = load_miniimagenet(self.root, self.download)
            self._check_ways({stage: len(data.stage_labels[stage]) for stage in STAGES})
            counts = torch.bincount(data.labels, minlength=len(data.class_names)).tolist()
            for stage in self.stages:
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
