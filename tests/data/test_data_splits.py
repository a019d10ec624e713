"""Class splits: the vinyals and lake rules, rotations, and the real split sizes and lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchnet.data import OmniglotDataModule, find_sources, splits
from matchnet.errors import MatchnetError

BACKGROUND = {"Armenian": 3, "Hebrew": 2, "Latin": 4, "Greek": 3}
EVALUATION = {"Tengwar": 3, "Angelic": 4, "Kannada": 2}


def catalog(background: dict[str, int], evaluation: dict[str, int]) -> tuple[list[str], list[str]]:
    """Character names and sets, evaluation first and unsorted, to show the split sorts them."""
    characters, sets = [], []
    for set_name, alphabets in (("evaluation", evaluation), ("background", background)):
        for alphabet, count in alphabets.items():
            for c in range(count, 0, -1):
                characters.append(f"{alphabet}/character{c:02d}")
                sets.append(set_name)
    return characters, sets


def names(characters: list[str], indices: list[int]) -> list[str]:
    return [characters[i] for i in indices]


def test_vinyals_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(splits, "VINYALS_TEST_CHARACTERS", 5)
    characters, sets = catalog(BACKGROUND, EVALUATION)
    split = splits.split_characters("vinyals", characters, sets)
    evaluation = sorted(c for c, s in zip(characters, sets, strict=True) if s == "evaluation")
    assert names(characters, split["test"]) == evaluation[-5:]
    assert names(characters, split["val"]) == [
        *(f"Armenian/character{c:02d}" for c in (1, 2, 3)),
        *(f"Hebrew/character{c:02d}" for c in (1, 2)),
    ]
    train = names(characters, split["train"])
    assert train == sorted(train)
    assert set(train) == set(characters) - set(names(characters, split["val"] + split["test"]))
    assert {"Angelic/character01", "Angelic/character04"} <= set(train)  # evaluation characters train too


def test_lake_rule() -> None:
    characters, sets = catalog(BACKGROUND, EVALUATION)
    split = splits.split_characters("lake", characters, sets)
    assert {c.split("/")[0] for c in names(characters, split["train"])} == {"Latin", "Greek"}
    assert {c.split("/")[0] for c in names(characters, split["val"])} == {"Armenian", "Hebrew"}
    assert sorted(names(characters, split["test"])) == sorted(
        c for c, s in zip(characters, sets, strict=True) if s == "evaluation"
    )


@pytest.mark.parametrize("split", splits.SPLITS)
def test_splits_partition_the_characters(split: str) -> None:
    characters, sets = catalog(BACKGROUND, EVALUATION)
    parts = splits.split_characters(split, characters, sets)
    together = parts["train"] + parts["val"] + parts["test"]
    assert sorted(together) == list(range(len(characters)))


def test_unknown_split_lists_the_allowed() -> None:
    with pytest.raises(MatchnetError, match="data.split='omniglot'.*vinyals, lake"):
        splits.split_characters("omniglot", [], [])


def test_rotated_stages() -> None:
    assert splits.rotated_stages("vinyals", True) == {"train", "val", "test"}
    assert splits.rotated_stages("lake", True) == {"train"}
    assert splits.rotated_stages("vinyals", False) == set()
    assert splits.rotated_stages("lake", ["train", "test"]) == {"train", "test"}
    assert splits.class_name("Latin/character07", 3) == "Latin/character07/rot270"


def test_real_split_sizes(omniglot_root: Path) -> None:
    found = find_sources(omniglot_root, download=False)
    sizes = {
        split: {
            stage: len(part)
            for stage, part in splits.split_characters(split, found.characters, found.sets).items()
        }
        for split in splits.SPLITS
    }
    assert sizes == {
        "vinyals": {"train": 1028, "val": 172, "test": 423},
        "lake": {"train": 792, "val": 172, "test": 659},
    }


def test_vinyals_classes_equal_the_published_lists(
    omniglot_datamodule: OmniglotDataModule, vinyals_split_dir: Path
) -> None:
    for stage, size in (("train", 4112), ("val", 688), ("test", 1692)):
        published = (vinyals_split_dir / f"{stage}.txt").read_text().split()
        ours = omniglot_datamodule.class_names(stage)
        assert len(ours) == len(set(ours)) == omniglot_datamodule.num_classes(stage) == size
        assert set(ours) == set(published)
