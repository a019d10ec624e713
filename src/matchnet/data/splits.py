"""Class splits of Omniglot into train / val / test characters, and their rotation classes.

``vinyals`` (Vinyals et al. 2016, as published with Snell et al.'s Prototypical Networks):
test = the last 423 characters of the evaluation set in sorted ``Alphabet/characterNN`` order;
val = every character of the background alphabets in ``VINYALS_VAL_ALPHABETS`` (172);
train = the remaining 1028 characters of both sets.

``lake`` (Lake et al. 2015): train = the background alphabets except ``LAKE_VAL_ALPHABETS``
(a fixed list, the same five as Vinyals' validation alphabets: 792 characters), val = those five
(172), test = the 20 evaluation alphabets (659).

A class is a character turned counterclockwise by 0, 90, 180 or 270 degrees (``rotDDD``); with
rotations a character gives four classes, without only ``rot000``.
"""

from __future__ import annotations

from collections.abc import Sequence

from matchnet.rules import Rule, choice

SPLITS = ("vinyals", "lake")
STAGES = ("train", "val", "test")
VINYALS_VAL_ALPHABETS = ("Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)")
VINYALS_TEST_CHARACTERS = 423
LAKE_VAL_ALPHABETS = VINYALS_VAL_ALPHABETS
# Stages whose classes include rotations when ``rotations=True``: the Vinyals lists have them in
# every stage; Lake's protocol evaluates on the characters as drawn.
ROTATED_STAGES = {"vinyals": ("train", "val", "test"), "lake": ("train",)}
QUARTER_TURNS = (0, 1, 2, 3)


#: The rules of ``data.split`` and ``data.rotations`` (see ``matchnet.data.settings``).
SPLIT = choice(SPLITS)
ROTATIONS = Rule(
    lambda v: isinstance(v, bool) or (isinstance(v, (list, tuple)) and all(s in STAGES for s in v)),
    f"true (the split's protocol), false (no rotation classes) or a list of stages among {list(STAGES)} "
    "(e.g. [train])",
)


def check_split(split: str) -> None:
    """MatchnetError unless ``split`` is one of ``SPLITS``."""
    SPLIT.validate("data.split", split)


def split_characters(split: str, characters: Sequence[str], sets: Sequence[str]) -> dict[str, list[int]]:
    """Indices into ``characters`` (``Alphabet/characterNN`` of set ``sets[i]``) per stage, sorted by name."""
    check_split(split)
    by_name = sorted(range(len(characters)), key=characters.__getitem__)
    background = [i for i in by_name if sets[i] == "background"]
    evaluation = [i for i in by_name if sets[i] == "evaluation"]
    val_alphabets = VINYALS_VAL_ALPHABETS if split == "vinyals" else LAKE_VAL_ALPHABETS
    val = [i for i in background if characters[i].split("/")[0] in val_alphabets]
    if split == "vinyals":
        cut = max(len(evaluation) - VINYALS_TEST_CHARACTERS, 0)
        test, rest = evaluation[cut:], background + evaluation[:cut]
    else:
        test, rest = evaluation, background
    train = sorted(set(rest) - set(val), key=characters.__getitem__)
    return {"train": train, "val": val, "test": test}


def rotated_stages(split: str, rotations: bool | Sequence[str]) -> frozenset[str]:
    """Stages with rotation classes: the split's protocol for True, none for False, else the given stages."""
    if rotations is True:
        return frozenset(ROTATED_STAGES[split])
    if rotations is False:
        return frozenset()
    return frozenset(rotations)


def class_name(character: str, quarter_turns: int) -> str:
    """``Alphabet/characterNN/rotDDD``."""
    return f"{character}/rot{90 * quarter_turns:03d}"
