"""The Omniglot archives: find or download them, verify their structure, cache the images as one tensor.

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from tqdm import tqdm

from matchnet.errors import MatchnetError
from matchnet.io import atomic_open

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
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


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
    """Check the layout and counts of one set; MatchnetError naming ``path`` when it is foreign."""
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


def _grayscale(image: Image.Image) -> Image.Image:
    """Upright 8-bit grayscale; transparent areas become white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_MODES:
        wide = np.asarray(image, dtype=np.float64)
        wide = wide / 257 if wide.max() > 255 else wide
        return Image.fromarray(wide.clip(0, 255).round().astype(np.uint8))
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert("L")


def _border_median(pixels: np.ndarray) -> float:
    return float(np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])))


def ink_pixels(image: Image.Image, image_size: int, invert: bool | None = None) -> np.ndarray:
    """Preprocess one image: uint8 ``[S, S]``, ink bright (255) on a dark (0) background.

    Grayscale; inverted when ``invert`` is true or, when it is None, when the median of the border
    pixels is light; levels stretched so that this median becomes 0 and the brightest pixel 255
    (a no-op for Omniglot's black-and-white drawings); padded to a square with background;
    Lanczos-resized to ``image_size``.
    """
    pixels = np.asarray(_grayscale(image))
    if invert is None:
        invert = _border_median(pixels) > 127
    if invert:
        pixels = 255 - pixels
    background, ink = _border_median(pixels), int(pixels.max())
    if ink > background and (background, ink) != (0, 255):
        stretched = (pixels - background) * (255 / (ink - background))
        pixels = stretched.clip(0, 255).round().astype(np.uint8)
    gray = _square(Image.fromarray(pixels), 0)
    return np.array(gray.resize((image_size, image_size), Image.Resampling.LANCZOS))


def ink_tensor(pixels: np.ndarray) -> Tensor:
    """uint8 ink pixels (any shape) -> float32 tensor in [0, 1], ink 1.0 (computed in numpy)."""
    values = pixels.astype(np.float32)
    values /= 255
    return torch.from_numpy(values)


def _square(image: Image.Image, fill: int | tuple[int, ...]) -> Image.Image:
    """``image`` centred on a square canvas of ``fill`` (its longer side)."""
    if image.width == image.height:
        return image
    side = max(image.size)
    square = Image.new(image.mode, (side, side), fill)
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square


def rgb_pixels(image: Image.Image, image_size: int) -> np.ndarray:
    """Preprocess one colour image: uint8 ``[3, S, S]``, colours as they are.

    Upright (EXIF); transparent areas white; grayscale and 16-bit images repeated over R, G, B;
    padded to a square with black; Lanczos-resized to ``image_size``. No inversion or level
    stretching (that is the grayscale path, ``ink_pixels``).
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_MODES:
        image = _grayscale(image)
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    rgb = _square(image.convert("RGB"), (0, 0, 0))
    resized = rgb.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1))


def image_pixels(image: Image.Image, image_size: int, channels: int = 1) -> np.ndarray:
    """One image as the models see it, uint8 ``[channels, S, S]``: ``channels=1`` is ``ink_pixels``
    (grayscale, ink bright), ``channels=3`` is ``rgb_pixels`` (colour)."""
    if channels == 1:
        return ink_pixels(image, image_size)[None]
    if channels == 3:
        return rgb_pixels(image, image_size)
    raise MatchnetError(
        f"channels={channels!r} is not supported: images are grayscale (1) or RGB (3); set data.channels "
        f"to 1 or 3."
    )


def load_image(path: str | os.PathLike[str], image_size: int, channels: int = 1) -> Tensor:
    """Any image file prepared like the training images: float32 ``[channels, S, S]`` in [0, 1].

    ``channels=1``: grayscale, inverted when the background (median of the border pixels) is
    light, levels stretched to background 0 / brightest ink 1, padded to a square, Lanczos-resized
    to ``image_size`` (see ``ink_pixels``), as Omniglot and grayscale image folders are.
    ``channels=3``: RGB as is, padded with black to a square, Lanczos-resized (see ``rgb_pixels``),
    as miniImageNet-style colour image folders are.
    """
    try:
        with Image.open(path) as image:
            pixels = image_pixels(image, image_size, channels)
    except FileNotFoundError as err:
        raise MatchnetError(f"Image {path} does not exist; check the path.") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MatchnetError(
            f"Cannot read image {path} ({type(err).__name__}: {err}); pass a readable PNG or JPEG file."
        ) from err
    return ink_tensor(pixels)


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
