"""Training augmentation of episode images: random flips and padded crops (colour images), random
affine distortions (Omniglot drawings).

Works on the uint8 image batches an ``EpisodeDataset`` assembles, ``[B, C, S, S]``, before they
become float tensors, with the numpy generator the dataset seeds per episode, so augmented
episodes are as reproducible as plain ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FlipAndCrop:
    """Each image is mirrored left-right with probability 1/2 (``flip``), then padded with
    ``padding`` zero pixels on every side and cropped back to ``S x S`` at a uniformly random
    offset (``padding=0``: no crop), the standard CIFAR / miniImageNet augmentation.
    """

    flip: bool = True
    padding: int = 8

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``images`` uint8 ``[B, C, S, S]`` -> a new uint8 ``[B, C, S, S]``."""
        out = np.array(images, copy=True)
        if self.flip:
            mirrored = rng.random(len(out)) < 0.5
            out[mirrored] = out[mirrored][..., ::-1]
        if self.padding > 0:
            p, side = self.padding, out.shape[-1]
            padded = np.pad(out, ((0, 0), (0, 0), (p, p), (p, p)))
            offsets = rng.integers(0, 2 * p + 1, size=(len(out), 2))
            for i, (top, left) in enumerate(offsets):
                out[i] = padded[i, :, top : top + side, left : left + side]
        return out


#: The strongest ``RandomAffine`` strength the config accepts (``data.augment``).
MAX_STRENGTH = 3.0


@dataclass(frozen=True)
class RandomAffine:
    """Each image gets its own random affine distortion, the ones Koch et al. (2015) used on Omniglot.

    At ``strength=1`` the ranges are Koch et al.'s (for 105x105 drawings): rotation within
    +-``rotation`` degrees, shear factors within +-``shear`` (x and y), scale factors within
    1 +- ``scale`` (x and y, independently) and a shift within +-``translate`` of the side (2 of 105
    pixels). ``strength`` scales every range linearly (0: the identity). The image is resampled
    bilinearly; pixels from outside it are background (0, no ink).
    """

    strength: float = 1.0
    rotation: float = 10.0
    shear: float = 0.3
    scale: float = 0.2
    translate: float = 2 / 105

    def matrices(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` random ``[2, 3]`` matrices mapping output to input coordinates in [-1, 1]."""
        s = self.strength

        def spread(limit: float, shape: tuple[int, ...]) -> np.ndarray:
            return rng.uniform(-1.0, 1.0, size=shape) * limit * s

        angle = np.deg2rad(spread(self.rotation, (count,)))
        shear = spread(self.shear, (count, 2))
        scale = 1.0 + spread(self.scale, (count, 2))
        shift = spread(2 * self.translate, (count, 2))  # the side is 2 long in normalised coordinates
        cos, sin = np.cos(angle), np.sin(angle)
        rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        ones = np.ones(count)
        skew = np.stack([np.stack([ones, shear[:, 0]], -1), np.stack([shear[:, 1], ones], -1)], -2)
        linear = rotate @ skew @ (scale[:, :, None] * np.eye(2))
        return np.concatenate([linear, shift[:, :, None]], axis=-1)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``images`` uint8 ``[B, C, S, S]`` -> a new uint8 ``[B, C, S, S]``."""
        if self.strength == 0 or len(images) == 0:
            return np.array(images, copy=True)
        matrices = torch.from_numpy(self.matrices(len(images), rng)).float()
        pixels = torch.from_numpy(np.ascontiguousarray(images)).float()
        grid = F.affine_grid(matrices, list(pixels.shape), align_corners=False)
        warped = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return warped.round_().clamp_(0, 255).to(torch.uint8).numpy()
