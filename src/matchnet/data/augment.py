"""Training augmentation of episode images: random horizontal flips and random crops with padding.

Works on the uint8 image batches an ``EpisodeDataset`` assembles, ``[B, C, S, S]``, before they
become float tensors, with the numpy generator the dataset seeds per episode, so augmented
episodes are as reproducible as plain ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
