"""Image folders: layouts and class splits, the cache, the conversion shared with load_image, errors."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from helpers.data_configs import check_config_matches_constructor
from helpers.image_folders import draw_image, write_flat_folder, write_split_folders
from matchnet.data import ImageFolderDataModule, load_image
from matchnet.data.folder import cache_path, scan_folder
from matchnet.errors import MatchnetError

SMALL = {"way": 2, "shot": 1, "query": 2, "image_size": 24}


@pytest.fixture
def split_root(tmp_path: Path) -> Path:
    return write_split_folders(tmp_path / "images", {"train": 4, "val": 2, "test": 3}, images=4)


def test_split_folders(split_root: Path) -> None:
    datamodule = ImageFolderDataModule(root=str(split_root), **SMALL)
    datamodule.setup()
    assert datamodule.split == "folders"
    assert [datamodule.num_classes(s) for s in ("train", "val", "test")] == [4, 2, 3]
    assert datamodule.class_names("test") == ["test_00", "test_01", "test_02"]
    episode = datamodule.dataset("train")[0]
    assert episode.support_x.shape == (2, 3, 24, 24) and episode.query_x.shape == (4, 3, 24, 24)
    assert episode.query_x.dtype == torch.float32 and 0 <= episode.query_x.min() <= episode.query_x.max() <= 1
    # Training never shows a val or test image: every training image is one of the train folders'.
    train_files = sorted((split_root / "train").rglob("*.*"))
    train_images = {load_image(f, 24, 3).numpy().tobytes() for f in train_files}
    for n in range(10):
        episode = datamodule.dataset("train")[n]
        assert all(
            x.numpy().tobytes() in train_images for x in torch.cat([episode.support_x, episode.query_x])
        )


def test_random_class_split(tmp_path: Path) -> None:
    root = write_flat_folder(tmp_path / "flat", classes=10, images=3)
    splits = [scan_folder(root, "auto", (0.6, 0.2, 0.2), seed).stages for seed in (0, 0, 1)]
    names = [{stage: [c.name for c in members] for stage, members in s.items()} for s in splits]
    assert names[0] == names[1] and names[0] != names[2]
    assert [len(names[0][s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(sum(names[0].values(), [])) == [f"class_{c:02d}" for c in range(10)]
    datamodule = ImageFolderDataModule(root=str(root), **SMALL)
    assert datamodule.num_classes("val") == 2 and datamodule.split == "random"


@pytest.mark.parametrize("channels", [1, 3])
def test_cache_holds_what_load_image_gives(split_root: Path, channels: int) -> None:
    datamodule = ImageFolderDataModule(root=str(split_root), channels=channels, **SMALL)
    datamodule.setup()
    images, labels = datamodule._load_images()
    files = [f for stage in ("train", "val", "test") for f in sorted((split_root / stage).rglob("*.*"))]
    assert images.shape == (len(files), channels, 24, 24) and images.dtype == torch.uint8
    for index in (0, 5, len(files) - 1):
        assert torch.equal(images[index].float() / 255, load_image(files[index], 24, channels))
    assert labels.tolist() == sorted(labels.tolist())


def test_grayscale_is_ink_bright(tmp_path: Path) -> None:
    path = tmp_path / "dark_on_light.png"
    draw_image(0, 7).save(path)  # a coloured shape on a light background
    x = load_image(path, 32, channels=1)
    assert x.shape == (1, 32, 32) and x[0, 0].max() < 0.1 and x[0, 16, 16] > 0.5
    rgb = load_image(path, 32, channels=3)
    assert (
        rgb.shape == (3, 32, 32) and rgb[:, 16, 16].min() > 0.2 and rgb.amin(0).max() > 0.9
    )  # shape, light paper


def test_cache_is_reused_and_rebuilt_on_change(split_root: Path) -> None:
    first = ImageFolderDataModule(root=str(split_root), **SMALL)
    first.setup()
    path = cache_path(split_root, 24, 3)
    assert path.is_file() and (split_root / ".matchnet_cache").name not in first.class_names("train")
    stamp = path.stat().st_mtime_ns
    again = ImageFolderDataModule(root=str(split_root), **SMALL)
    again.setup()
    assert path.stat().st_mtime_ns == stamp and torch.equal(again._load_images()[0], first._load_images()[0])
    draw_image(9, 99).save(split_root / "train" / "train_00" / "new.png")
    changed = ImageFolderDataModule(root=str(split_root), **SMALL)
    changed.setup()
    assert path.stat().st_mtime_ns != stamp
    assert len(changed._load_images()[0]) == len(first._load_images()[0]) + 1
    assert not list(path.parent.glob("*.tmp"))  # written atomically


def test_unreadable_files_are_named(split_root: Path) -> None:
    bad = [split_root / "val" / "val_00" / "broken.png", split_root / "test" / "test_01" / "empty.jpg"]
    bad[0].write_bytes(b"not an image")
    bad[1].write_bytes(b"")
    with pytest.raises(MatchnetError, match="2 file") as info:
        ImageFolderDataModule(root=str(split_root), **SMALL).setup()
    assert all(str(path) in str(info.value) for path in bad)
    assert not cache_path(split_root, 24, 3).exists()


def test_small_class_is_named_with_its_count(split_root: Path) -> None:
    for file in sorted((split_root / "train" / "train_02").iterdir())[1:]:
        file.unlink()
    with pytest.raises(MatchnetError, match=r"data.shot \+ data.query = 1 \+ 2 = 3 images.*train_02 has 1\."):
        ImageFolderDataModule(root=str(split_root), **SMALL).setup()
    assert not cache_path(split_root, 24, 3).exists()  # rejected before any image is converted


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("empty_val", "val folder .* has no class folders, so that split is empty"),
        ("no_test", "has no test/ folder"),
        ("too_few_classes", "data.way=3 but the folders val split has only 2 classes"),
    ],
)
def test_layout_errors(split_root: Path, change: str, expected: str) -> None:
    settings = dict(SMALL)
    if change == "empty_val":
        for folder in (split_root / "val").iterdir():
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
    elif change == "no_test":
        os.rename(split_root / "test", split_root / "testing")
        settings["split"] = "folders"
    else:
        settings["way"] = 3
    with pytest.raises(MatchnetError, match=expected):
        ImageFolderDataModule(root=str(split_root), **settings).setup()


def test_bad_settings(tmp_path: Path) -> None:
    for settings, expected in [
        ({"channels": 2}, "data.channels=2"),
        ({"split": "vinyals"}, "data.split='vinyals'"),
        ({"split_fractions": [0.5, 0.5]}, "data.split_fractions"),
        ({"split_fractions": [0.5, 0.4, 0.2]}, "add up to 1"),
        ({"mean": [0.5]}, r"data.mean=\[0.5\]"),
    ]:
        with pytest.raises(MatchnetError, match=expected):
            ImageFolderDataModule(root=str(tmp_path), **settings)
    with pytest.raises(MatchnetError, match="is not a folder"):
        ImageFolderDataModule(root=str(tmp_path / "absent")).setup()
    with pytest.raises(MatchnetError, match="empty"):
        ImageFolderDataModule(root=str(write_flat_folder(tmp_path / "two", 2)), way=2, query=1).setup()


def test_augmentation_on_training_episodes(split_root: Path) -> None:
    plain = ImageFolderDataModule(root=str(split_root), **SMALL)
    augmented = ImageFolderDataModule(root=str(split_root), augment=True, crop_padding=3, **SMALL)
    assert not torch.equal(plain.dataset("train")[1].query_x, augmented.dataset("train")[1].query_x)
    assert torch.equal(plain.dataset("val")[1].query_x, augmented.dataset("val")[1].query_x)


def test_config_matches_the_constructor(split_root: Path) -> None:
    config = check_config_matches_constructor("folder", ImageFolderDataModule)
    full = OmegaConf.create({"seed": 1, "data": config})
    datamodule = hydra.utils.instantiate(full.data, root=str(split_root), way=2, query=2)
    assert datamodule.split_fractions == (0.6, 0.2, 0.2) and isinstance(
        datamodule.hparams["split_fractions"], list
    )
