"""Small image-folder data sets made on the fly: one sub-folder per class, images of random sizes.

Every class has its own shape and colour (a filled ellipse, rectangle or triangle on a plain
background), drawn at a random size and position, saved as PNG or JPEG in turn.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("ellipse", "rectangle", "triangle")


def draw_image(cls: int, seed: int, mode: str = "RGB") -> Image.Image:
    """One image of class ``cls``: a random size between 40 and 120 pixels a side."""
    rng = random.Random(seed)
    width, height = rng.randint(40, 120), rng.randint(40, 120)
    colour = ((53 * cls) % 200 + 55, (97 * cls) % 200 + 55, (29 * cls) % 200 + 55)
    image = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    box = [
        rng.randint(0, width // 4),
        rng.randint(0, height // 4),
        rng.randint(3 * width // 4, width - 1),
        rng.randint(3 * height // 4, height - 1),
    ]
    shape = SHAPES[cls % len(SHAPES)]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=colour)
    return image.convert(mode)


def write_classes(folder: Path, classes: list[str], images: int, first: int = 0) -> None:
    """``folder/<class>/<i>.png|jpg`` for each class, ``images`` each."""
    for c, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(images):
            suffix = "png" if i % 2 == 0 else "jpg"
            draw_image(first + c, 1000 * (first + c) + i).save(folder / name / f"{i:03d}.{suffix}")


def write_split_folders(root: Path, counts: dict[str, int], images: int = 6) -> Path:
    """``root/{train,val,test}/class_NN/...``: ``counts[stage]`` classes per stage."""
    first = 0
    for stage, count in counts.items():
        write_classes(root / stage, [f"{stage}_{c:02d}" for c in range(count)], images, first)
        first += count
    return root


def write_flat_folder(root: Path, classes: int, images: int = 6) -> Path:
    """``root/class_NN/...``: one folder of classes (for the random class split)."""
    write_classes(root, [f"class_{c:02d}" for c in range(classes)], images)
    return root
