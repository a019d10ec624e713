"""Image files as the models see them: grayscale with bright ink (Omniglot's polarity) or RGB.

``load_image`` reads any image file prepared like the training images; ``image_pixels`` does the
same for an open PIL image (uint8), ``ink_tensor`` turns uint8 pixels into float32 in [0, 1]. Used
by every data set (Omniglot archives, image folders), the episodes and the classifier / demo.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from matchnet.errors import MatchnetError

_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


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
