"""Tiny miniImageNet pickles in learn2learn's exact format, for tests without the real files.

Each split file is a pickled dict: ``image_data`` uint8 ``[N, 84, 84, 3]`` and ``class_dict`` mapping
a synset-like class name to its row indices. Rows of a class are interleaved with the other classes'
(as nothing promises contiguous rows), and every image is its class's colour plus seeded noise.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from matchnet.data.miniimagenet import SPLIT_FILES

FAKE_CLASSES = {"train": 6, "val": 5, "test": 5}
IMAGES_PER_CLASS = 12


def fake_split(stage: str, classes: int, images_per_class: int = IMAGES_PER_CLASS) -> dict[str, object]:
    """One split's payload: ``classes`` classes of ``images_per_class`` 84x84 RGB images."""
    rng = np.random.default_rng(len(stage) * 1000 + classes)
    offset = {"train": 0, "val": 100, "test": 200}[stage]
    total = classes * images_per_class
    images = rng.integers(0, 64, size=(total, 84, 84, 3), dtype=np.uint8)
    class_dict = {}
    for c in range(classes):
        rows = list(range(c, total, classes))  # interleaved rows
        images[rows] += np.array([(37 * (c + offset)) % 192, (91 * c) % 192, (13 * c) % 192], dtype=np.uint8)
        class_dict[f"n{offset + c:08d}"] = rows
    return {"image_data": images, "class_dict": class_dict}


def write_fake_miniimagenet(root: Path, classes: dict[str, int] | None = None) -> Path:
    """Write the three split files under ``root``; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for stage, count in (classes or FAKE_CLASSES).items():
        with open(root / SPLIT_FILES[stage][0], "wb") as handle:
            pickle.dump(fake_split(stage, count), handle, protocol=pickle.HIGHEST_PROTOCOL)
    return root
