"""Omniglot: find or download the archives, verify their structure, cache the images as one tensor;
``OmniglotDataModule``, its episodes.

``root`` holds ``images_background.zip`` and ``images_evaluation.zip`` (or the folders
``images_background/`` and ``images_evaluation/`` they extract to; a zip wins when both exist).
Inside, each image is ``images_<set>/<Alphabet>/characterNN/<id>_<drawer>.png``. Local files are
verified by structure (alphabet, character and image counts, 20 drawings per character), downloaded
ones also by the official md5.

The preprocessed images live in ``<root>/cache/omniglot-<size>.pt``: built once (Lanczos resize, ink
bright), rebuilt when the archives, the size or the format version change or the file does not load,
and written atomically. ``root`` must be writable whenever the cache has to be (re)built; otherwise a
``MatchnetError`` says so (there is no fallback cache folder).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import time
import urllib.request
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from matchnet.data.augment import MAX_STRENGTH, RandomAffine
from matchnet.data.datamodule import EpisodeDataModule
from matchnet.data.images import ink_pixels
from matchnet.data.settings import PATH, EpisodeSettings, Settings, setting
from matchnet.data.splits import (
    QUARTER_TURNS,
    ROTATIONS,
    SPLIT,
    STAGES,
    class_name,
    rotated_stages,
    split_characters,
)
from matchnet.errors import MatchnetError
from matchnet.io import atomic_open
from matchnet.rules import FLAG, Rule, integer

log = logging.getLogger(__name__)

SETS = ("background", "evaluation")
DOWNLOAD_URL = "https://github.com/brendenlake/omniglot/raw/master/python/"
ARCHIVE_MD5 = {
    "background": "68d2efa1b9178cc56df9314c21c6e718",
    "evaluation": "6b91aef0f799c5bb55b94e3f2daec811",
}
# (alphabets, characters, images) per set.
EXPECTED_COUNTS = {"background": (30, 964, 19_280), "evaluation": (20, 659, 13_180)}
DRAWINGS_PER_CHARACTER = 20
CACHE_FORMAT = 1

_MEMBER = re.compile(r"images_(background|evaluation)/([^/]+)/(character\d+)/[^/]+\.png")


def archive_name(set_name: str) -> str:
    """``images_background`` or ``images_evaluation``."""
    return f"images_{set_name}"


@dataclass(frozen=True)
class Source:
    """One verified set: a zip archive or its extracted folder."""

    set_name: str
    path: Path
    characters: dict[str, list[str]]  # "Alphabet/characterNN" -> its sorted member paths
    fingerprint: str  # changes whenever the file or folder changes


@dataclass(frozen=True)
class Catalog:
    """Both verified sets; characters in set order (background first), each set sorted by name."""

    root: Path
    sources: tuple[Source, ...]

    @property
    def characters(self) -> list[str]:
        return [name for source in self.sources for name in source.characters]

    @property
    def sets(self) -> list[str]:
        return [source.set_name for source in self.sources for _ in source.characters]

    @property
    def fingerprint(self) -> str:
        return ";".join(source.fingerprint for source in self.sources)


@dataclass(frozen=True)
class OmniglotImages:
    """All Omniglot images, preprocessed.

    ``images``: uint8 ``[N, 1, S, S]``, ink 255 and background 0; ``labels``: int64 ``[N]``, the
    index of each image's character in ``characters`` (``Alphabet/characterNN``), whose set
    (``background``/``evaluation``) and alphabet are ``sets`` and ``alphabets``.
    """

    images: Tensor
    labels: Tensor
    characters: list[str]
    sets: list[str]
    alphabets: list[str]


def _official_url(path: Path) -> str:
    """Where the official archive for a zip or folder ``path`` is downloaded from."""
    return DOWNLOAD_URL + (path.name if path.suffix == ".zip" else f"{path.name}.zip")


def _where_to_get(root: Path) -> str:
    return (
        f"Expected in {root}: images_background.zip and images_evaluation.zip (or their extracted folders "
        f"images_background/ and images_evaluation/). Get the two zips from "
        f"https://github.com/brendenlake/omniglot (folder python/) and put them there, or set data.root to "
        f"a folder that has them."
    )


# ----------------------------------------------------------------------------- reading sources


class _Reader:
    """Member names and bytes of a zip archive or an extracted folder (members relative to its parent)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            return
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise MatchnetError(
                f"{path} is not a readable zip archive ({type(err).__name__}: {err}); it is probably "
                f"truncated or not the Omniglot file. Delete it and download it again (data.download=true) "
                f"or replace it with the official archive from {_official_url(path)}."
            ) from err

    def names_and_stamp(self) -> tuple[list[str], str]:
        """Member paths and a fingerprint of the source."""
        if self._zip is not None:
            stat = self.path.stat()
            return self._zip.namelist(), f"zip:{stat.st_size}:{stat.st_mtime_ns}"
        names, total, newest = [], 0, 0
        for file in sorted(self.path.rglob("*.png")):
            stat = file.stat()
            names.append(file.relative_to(self.path.parent).as_posix())
            total, newest = total + stat.st_size, max(newest, stat.st_mtime_ns)
        return names, f"dir:{len(names)}:{total}:{newest}"

    def read(self, member: str) -> bytes:
        try:
            if self._zip is not None:
                return self._zip.read(member)
            return (self.path.parent / member).read_bytes()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
            raise MatchnetError(
                f"Cannot read {member} in {self.path} ({type(err).__name__}: {err}); the archive is "
                f"damaged. Replace it with the official file from {_official_url(self.path)} (or delete "
                f"it and set data.download=true)."
            ) from err

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


@contextmanager
def _open(path: Path) -> Iterator[_Reader]:
    reader = _Reader(path)
    try:
        yield reader
    finally:
        reader.close()


def _verify(set_name: str, path: Path) -> Source:
    """Check the layout and counts of one set; MatchnetError naming ``path`` when it is foreign.

    A zip archive is verified once per process and size/modification time: reading its member list
    takes about half a second, and every run of a sweep (and every stage) would otherwise repeat it.
    """
    if path.is_file():
        stat = path.stat()
        return _verify_zip(set_name, path, stat.st_size, stat.st_mtime_ns)
    return _verify_names(set_name, path)


@functools.lru_cache(maxsize=8)
def _verify_zip(set_name: str, path: Path, size: int, mtime_ns: int) -> Source:
    """:func:`_verify_names` for a zip archive; ``size`` and ``mtime_ns`` make a changed file a new key."""
    return _verify_names(set_name, path)


def _verify_names(set_name: str, path: Path) -> Source:
    with _open(path) as reader:
        names, stamp = reader.names_and_stamp()
    characters: dict[str, list[str]] = defaultdict(list)
    for name in names:
        match = _MEMBER.fullmatch(name)
        if match and match[1] == set_name:
            characters[f"{match[2]}/{match[3]}"].append(name)
    alphabets = {name.split("/")[0] for name in characters}
    found = (len(alphabets), len(characters), sum(map(len, characters.values())))
    expected = EXPECTED_COUNTS[set_name]
    uneven = sorted(name for name, members in characters.items() if len(members) != DRAWINGS_PER_CHARACTER)
    if found != expected or uneven:
        detail = f"; characters without {DRAWINGS_PER_CHARACTER} drawings: {uneven[:3]}" if uneven else ""
        raise MatchnetError(
            f"{path} is not the Omniglot {set_name} set: expected {expected[0]} alphabets, {expected[1]} "
            f"characters and {expected[2]} PNG images laid out as {archive_name(set_name)}/<Alphabet>/"
            f"characterNN/<id>_<drawer>.png, found {found[0]}, {found[1]} and {found[2]}{detail}. Replace it "
            f"with the official archive from {DOWNLOAD_URL}{archive_name(set_name)}.zip."
        )
    ordered = {name: sorted(characters[name]) for name in sorted(characters)}
    return Source(set_name, path, ordered, f"{set_name}:{stamp}")


# ----------------------------------------------------------------------------- download


def download_archive(root: Path, set_name: str) -> Path:
    """Download ``images_<set>.zip`` from ``DOWNLOAD_URL`` into ``root``, md5-checked; return its path."""
    name = f"{archive_name(set_name)}.zip"
    url, target = DOWNLOAD_URL + name, root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
        with atomic_open(target, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            digest = hashlib.md5()
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"Downloading {name}") as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != ARCHIVE_MD5[set_name]:
                raise MatchnetError(
                    f"The download of {url} has md5 {digest.hexdigest()}, not the official "
                    f"{ARCHIVE_MD5[set_name]}; it was discarded. Retry later, or fetch the file by hand. "
                    f"{_where_to_get(root)}"
                )
    except (OSError, ValueError) as err:  # URLError and HTTPError are OSErrors
        raise MatchnetError(
            f"The Omniglot {set_name} set is missing and downloading {url} into {root} failed ({err}). "
            f"{_where_to_get(root)}"
        ) from err
    return target


def find_sources(root: str | os.PathLike[str], download: bool = True) -> Catalog:
    """Locate (downloading when allowed) and verify both sets under ``root``."""
    root = Path(root)
    sources = []
    for set_name in SETS:
        archive, folder = root / f"{archive_name(set_name)}.zip", root / archive_name(set_name)
        if archive.exists():
            path = archive
        elif folder.is_dir():
            path = folder
        elif download:
            path = download_archive(root, set_name)
        else:
            raise MatchnetError(
                f"The Omniglot {set_name} set is missing and data.download=false. {_where_to_get(root)} "
                f"Or set data.download=true to fetch them from {DOWNLOAD_URL}."
            )
        sources.append(_verify(set_name, path))
    return Catalog(root, tuple(sources))


# ----------------------------------------------------------------------------- preprocessing


def _decode(reader: _Reader, member: str, image_size: int) -> np.ndarray:
    data = reader.read(member)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return ink_pixels(image, image_size, invert=True)  # Omniglot: black strokes on white
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MatchnetError(
            f"{member} in {reader.path} is not a readable PNG ({type(err).__name__}: {err}); the archive is "
            f"damaged. Replace it with the official file from {_official_url(reader.path)}."
        ) from err


def _build(catalog: Catalog, image_size: int) -> dict[str, object]:
    """Decode and resize every image: the cache payload."""
    total = sum(len(members) for source in catalog.sources for members in source.characters.values())
    images = torch.empty(total, 1, image_size, image_size, dtype=torch.uint8)
    labels = torch.empty(total, dtype=torch.int64)
    index, label = 0, 0
    started = time.perf_counter()
    with tqdm(total=total, unit="img", desc=f"Caching Omniglot at {image_size}x{image_size}") as bar:
        for source in catalog.sources:
            with _open(source.path) as reader:
                for members in source.characters.values():
                    for member in members:
                        images[index, 0] = torch.from_numpy(_decode(reader, member, image_size))
                        labels[index] = label
                        index += 1
                    label += 1
                    bar.update(len(members))
    log.info("Cached %d Omniglot images in %.1f s", total, time.perf_counter() - started)
    characters = catalog.characters
    return {
        "format": CACHE_FORMAT,
        "image_size": image_size,
        "fingerprint": catalog.fingerprint,
        "images": images,
        "labels": labels,
        "characters": characters,
        "sets": catalog.sets,
        "alphabets": [name.split("/")[0] for name in characters],
    }


# ----------------------------------------------------------------------------- cache file


def cache_path(root: str | os.PathLike[str], image_size: int) -> Path:
    """``<root>/cache/omniglot-<size>.pt``."""
    return Path(root) / "cache" / f"omniglot-{image_size}.pt"


def _read_cache(path: Path, catalog: Catalog, image_size: int) -> dict[str, object] | None:
    """The cache payload when it loads and matches the sources, size and format; else None."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file is simply rebuilt
        log.warning("Rebuilding %s: it does not load (%s: %s)", path, type(err).__name__, err)
        return None
    expected = {"format": CACHE_FORMAT, "image_size": image_size, "fingerprint": catalog.fingerprint}
    found = {key: payload.get(key) for key in expected} if isinstance(payload, dict) else {}
    if found != expected:
        log.info("Rebuilding %s: built for %s, need %s", path, found, expected)
        return None
    images = payload.get("images")
    shape = (len(payload.get("labels", ())), 1, image_size, image_size)
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or tuple(images.shape) != shape:
        log.warning("Rebuilding %s: its image tensor is malformed", path)
        return None
    return payload


def _write_cache(path: Path, payload: dict[str, object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "wb") as out:
            torch.save(payload, out)
    except OSError as err:
        raise MatchnetError(
            f"Cannot write the Omniglot cache {path} ({err}). data.root must be writable so the "
            f"preprocessed images can be cached there; point data.root at a writable folder holding (links "
            f"to) images_background.zip and images_evaluation.zip."
        ) from err


def load_images(catalog: Catalog, image_size: int) -> OmniglotImages:
    """The cached images for ``catalog`` at ``image_size``, building the cache first when needed."""
    path = cache_path(catalog.root, image_size)
    payload = _read_cache(path, catalog, image_size)
    if payload is None:
        payload = _build(catalog, image_size)
        _write_cache(path, payload)
    return OmniglotImages(
        images=payload["images"],
        labels=payload["labels"],
        characters=list(payload["characters"]),
        sets=list(payload["sets"]),
        alphabets=list(payload["alphabets"]),
    )


# ----------------------------------------------------------------------------- the DataModule

MAX_IMAGE_SIZE = 105  # the drawings are 105x105
#: ``data.augment``: the strength of the random affine distortions of training images.
STRENGTH = Rule(
    lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= MAX_STRENGTH,
    f"a number from 0 (off) to {MAX_STRENGTH:g}, the strength of the random affine distortions of "
    "training images (1 = Koch et al.'s ranges)",
)


@dataclass(frozen=True)
class OmniglotSettings(Settings):
    """Where Omniglot's drawings and classes come from (see ``OmniglotDataModule``)."""

    root: str = setting("data/omniglot", PATH)
    image_size: int = setting(28, integer(1, MAX_IMAGE_SIZE))
    split: str = setting("vinyals", SPLIT)
    rotations: bool | list[str] = setting(True, ROTATIONS)
    within_alphabet: bool = setting(False, FLAG)
    train_within_alphabet: bool = setting(False, FLAG)
    download: bool = setting(True, FLAG)
    augment: float = setting(0.0, STRENGTH)

    @property
    def augments(self) -> bool:
        return self.augment > 0


class OmniglotDataModule(EpisodeDataModule):
    """Omniglot N-way K-shot episodes (see ``Episode``), one per DataLoader item (``batch_size=None``).

    - ``root`` (relative to the working directory): folder with ``images_background.zip`` and
      ``images_evaluation.zip`` (or the folders they extract to), downloaded there when missing and
      ``download``; the preprocessed cache goes to ``<root>/cache/``, so ``root`` must be writable
      whenever the cache is (re)built.
    - ``image_size``: drawings are Lanczos-resized to it (1..105).
    - ``split``: ``vinyals`` or ``lake`` (see ``matchnet.data.splits``).
    - ``rotations``: True makes the four rotations of each character distinct classes where the
      split's protocol has them (vinyals: train, val and test; lake: train only); False nowhere;
      or a list of stages, e.g. ``["train"]``.
    - ``within_alphabet``: val/test episodes take all their classes from one alphabet (Lake's
      protocol); the alphabet is chosen uniformly among those with at least ``way`` classes.
    - ``train_within_alphabet``: the same for training episodes (harder negatives, as in the
      within-alphabet test); off by default.
    - ``augment``: strength of the random affine distortions of training images (``RandomAffine``;
      0 = off, the paper's protocol; 1 = Koch et al.'s ranges); validation and test images are never
      augmented. Seeded per episode, so augmented episodes are reproducible.
    - the episode settings (way, shot, query, ...) are ``EpisodeSettings``.

    ``channels`` and ``image_size`` describe the images; ``num_classes(stage)`` and
    ``class_names(stage)`` the classes of ``"train"``, ``"val"`` or ``"test"``.
    """

    channels = 1
    Settings = OmniglotSettings

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.rotated = rotated_stages(self.split, self.rotations)
        self.augmentation = RandomAffine(strength=float(self.augment)) if self.augment > 0 else None
        self._catalog: Catalog | None = None
        self._classes: dict[str, list[tuple[int, int]]] = {}

    @classmethod
    def _check_together(cls, episode: EpisodeSettings, source: Settings, stages: Sequence[str]) -> None:
        for stage in stages:
            _, shot_key, query_key = episode.keys(stage)
            _, shot, query = episode.stage(stage)
            if shot + query > DRAWINGS_PER_CHARACTER:
                raise MatchnetError(
                    f"data.{shot_key} + data.{query_key} = {shot} + {query} = {shot + query}, but an "
                    f"Omniglot character has only {DRAWINGS_PER_CHARACTER} drawings and support and query "
                    f"must be different ones; lower data.{shot_key} or data.{query_key} so they add up to "
                    f"at most {DRAWINGS_PER_CHARACTER}."
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
        for stage in self.stages:
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

    def _load_images(self) -> tuple[Tensor, Tensor]:
        self._stage_classes("train")
        data = load_images(self._catalog, self.image_size)
        return data.images, data.labels
