"""The real Omniglot data (``data`` marker): archives, cache, episodes and load_image."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from matchnet.data import OmniglotDataModule, find_sources, load_image, load_images, omniglot


def test_real_archives_verify(omniglot_root: Path) -> None:
    catalog = find_sources(omniglot_root, download=False)
    for source in catalog.sources:
        alphabets = {name.split("/")[0] for name in source.characters}
        images = sum(map(len, source.characters.values()))
        assert (len(alphabets), len(source.characters), images) == omniglot.EXPECTED_COUNTS[source.set_name]


def test_real_cache(omniglot_datamodule: OmniglotDataModule, omniglot_root: Path, tmp_path: Path) -> None:
    data = load_images(find_sources(omniglot_root, download=False), 28)
    assert data.images.shape == (32_460, 1, 28, 28) and data.images.dtype == torch.uint8
    assert len(data.characters) == 1623 and data.labels.max() == 1622
    assert data.images[:, :, 0].float().mean() < 1 and data.images.float().mean() < 40  # ink is sparse
    # load_image prepares a PNG from the archive exactly like the cache.
    with zipfile.ZipFile(omniglot_root / "images_evaluation.zip") as archive:
        index = data.characters.index("Tengwar/character05") * 20 + 3
        folder = "images_evaluation/Tengwar/character05/"
        member = sorted(n for n in archive.namelist() if n.startswith(folder) and n.endswith(".png"))[3]
        (tmp_path / "drawing.png").write_bytes(archive.read(member))
    assert torch.equal(load_image(tmp_path / "drawing.png", 28), data.images[index].float() / 255)


def test_real_episodes(omniglot_datamodule: OmniglotDataModule) -> None:
    names = {stage: omniglot_datamodule.class_names(stage) for stage in ("train", "val", "test")}
    held_out = {name.rsplit("/", 1)[0] for name in names["val"] + names["test"]}
    train = omniglot_datamodule.dataset("train")
    for n in range(50):
        classes = train.task(n).classes.tolist()
        assert not {names["train"][c].rsplit("/", 1)[0] for c in classes} & held_out
    episode = omniglot_datamodule.dataset("test")[0]
    assert episode.support_x.shape == (5, 1, 28, 28) and episode.query_x.shape == (25, 1, 28, 28)
    assert episode.way == 5 and sorted(episode.support_y.tolist()) == [0, 1, 2, 3, 4]


def test_real_20_way_5_shot(omniglot_root: Path) -> None:
    datamodule = OmniglotDataModule(root=str(omniglot_root), way=20, shot=5, query=15, download=False)
    episode = datamodule.dataset("train")[0]
    assert episode.support_x.shape == (100, 1, 28, 28) and episode.query_x.shape == (300, 1, 28, 28)
    assert torch.bincount(episode.query_y).tolist() == [15] * 20


def test_real_val_episodes_do_not_depend_on_workers(omniglot_root: Path) -> None:
    settings = {"root": str(omniglot_root), "val_episodes": 4, "download": False}
    serial = list(OmniglotDataModule(**settings).val_dataloader())
    parallel = list(OmniglotDataModule(**settings, num_workers=2).val_dataloader())
    for a, b in zip(serial, parallel, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a[:4], b[:4], strict=True))
