"""Fake Omniglot archives: the official layout with a few alphabets, for tests without the real data.

Background: Armenian and Hebrew (Vinyals' and Lake's validation alphabets) plus Latin and Greek;
evaluation: Angelic, Kannada and Tengwar; three characters each, 20 drawings per character
(105x105 1-bit PNGs, random black strokes on white). ``FAKE_COUNTS`` are their counts, which the
``fake_counts`` fixture (tests/data/conftest.py) makes the expected ones.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw

from matchnet.data import omniglot

FAKE_ALPHABETS = {
    "background": ("Armenian", "Greek", "Hebrew", "Latin"),
    "evaluation": ("Angelic", "Kannada", "Tengwar"),
}
CHARACTERS_PER_ALPHABET = 3
FAKE_COUNTS = {  # (alphabets, characters, images) per set
    set_name: (
        len(alphabets),
        len(alphabets) * CHARACTERS_PER_ALPHABET,
        len(alphabets) * CHARACTERS_PER_ALPHABET * omniglot.DRAWINGS_PER_CHARACTER,
    )
    for set_name, alphabets in FAKE_ALPHABETS.items()
}


def fake_png(seed: int) -> bytes:
    """A 105x105 1-bit PNG: a few thick black strokes on white, different for every seed."""
    rng = random.Random(seed)
    image = Image.new("1", (105, 105), 1)
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        points = [(rng.randint(15, 90), rng.randint(15, 90)) for _ in range(3)]
        draw.line(points, fill=0, width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def fake_members(set_name: str) -> dict[str, bytes]:
    """Member path -> PNG bytes of a fake set, in the official layout."""
    members = {}
    for a, alphabet in enumerate(FAKE_ALPHABETS[set_name]):
        for c in range(1, CHARACTERS_PER_ALPHABET + 1):
            character_id = 100 * (set_name == "evaluation") + 10 * a + c
            for drawer in range(1, omniglot.DRAWINGS_PER_CHARACTER + 1):
                name = f"images_{set_name}/{alphabet}/character{c:02d}/{character_id:04d}_{drawer:02d}.png"
                members[name] = fake_png(1000 * character_id + drawer)
    return members


def write_fake_set(
    root: Path, set_name: str, folder: bool = False, members: dict[str, bytes] | None = None
) -> Path:
    """Write a fake set under ``root`` as the official zip (``images_<set>.zip``) or, with ``folder``, as its
    extracted folder; ``members`` replaces the set's own (e.g. with a damaged file). Returns what it wrote."""
    members = fake_members(set_name) if members is None else members
    root.mkdir(parents=True, exist_ok=True)
    if folder:
        for name, data in members.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        return root / f"images_{set_name}"
    path = root / f"images_{set_name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path
