"""load_image: any user image, prepared exactly like the training images."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from matchnet.data import find_sources, load_image, load_images
from matchnet.errors import MatchnetError


def drawing(size: tuple[int, int], ink: int, paper: int, mode: str = "L") -> Image.Image:
    """A cross of thick strokes in the middle of a ``size`` canvas."""
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    w, h = size
    side = min(size) // 2
    draw.line([(w // 2 - side // 2, h // 2), (w // 2 + side // 2, h // 2)], fill=ink, width=side // 6)
    draw.line([(w // 2, h // 2 - side // 2), (w // 2, h // 2 + side // 2)], fill=ink, width=side // 6)
    return image.convert(mode)


def save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


@pytest.mark.parametrize(("name", "mode"), [("dark.png", "L"), ("dark.jpg", "RGB"), ("dark.png", "RGB")])
def test_light_background_is_inverted(tmp_path: Path, name: str, mode: str) -> None:
    x = load_image(save(drawing((210, 140), ink=20, paper=235, mode=mode), tmp_path / name), 28)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x[0, 14, 14] > 0.8  # the stroke is bright
    assert x[0, 0].max() < 0.05 and x[0, :, 0].max() < 0.05  # the background is dark
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_polarity_does_not_matter(tmp_path: Path) -> None:
    dark_on_light = load_image(save(drawing((120, 120), ink=0, paper=255), tmp_path / "a.png"), 32)
    light_on_dark = load_image(save(drawing((120, 120), ink=255, paper=0), tmp_path / "b.png"), 32)
    assert torch.allclose(dark_on_light, light_on_dark, atol=1 / 255)


def test_transparent_background(tmp_path: Path) -> None:
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(20, 50), (80, 50)], fill=(0, 0, 0, 255), width=12)
    x = load_image(save(image, tmp_path / "t.png"), 20)
    assert x[0, 10, 10] > 0.8 and x[0, 0].max() < 0.05


def test_sixteen_bit_png(tmp_path: Path) -> None:
    pixels = np.asarray(drawing((64, 64), ink=0, paper=255), dtype=np.uint16) * 257
    x = load_image(save(Image.fromarray(pixels), tmp_path / "wide.png"), 16)
    assert x[0, 8, 8] > 0.8 and x[0, 0].max() < 0.05


def test_channels(tmp_path: Path) -> None:
    x = load_image(save(drawing((50, 50), ink=0, paper=255), tmp_path / "c.png"), 24, channels=3)
    assert x.shape == (3, 24, 24) and torch.equal(x[0], x[2])


def test_same_as_the_training_images(fake_root: Path, tmp_path: Path) -> None:
    data = load_images(find_sources(fake_root, download=False), 28)
    with zipfile.ZipFile(fake_root / "images_evaluation.zip") as archive:
        member = sorted(n for n in archive.namelist() if n.endswith(".png"))[0]
        png = tmp_path / "member.png"
        png.write_bytes(archive.read(member))
    first_evaluation = data.sets.index("evaluation") * 20
    assert torch.equal(load_image(png, 28), data.images[first_evaluation].float() / 255)


def test_missing_and_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(MatchnetError, match="nothing.png does not exist"):
        load_image(tmp_path / "nothing.png", 28)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"definitely not an image")
    with pytest.raises(MatchnetError, match=f"Cannot read image {garbage}"):
        load_image(garbage, 28)
