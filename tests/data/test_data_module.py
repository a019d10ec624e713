"""OmniglotDataModule: validation of every setting, the Hydra config, and per-split class counts."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from helpers.data_configs import check_config_matches_constructor
from helpers.paths import CONF
from matchnet.data import OmniglotDataModule
from matchnet.errors import MatchnetError

CONFIG = CONF / "data" / "omniglot.yaml"
MakeDataModule = Callable[..., OmniglotDataModule]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"way": 0}, "data.way=0"),
        ({"shot": -1}, "data.shot=-1"),
        ({"query": 0}, "data.query=0"),
        ({"way": "5"}, "data.way='5'"),
        ({"shot": True}, "data.shot=True"),
        ({"train_way": 0}, "data.train_way=0"),
        ({"train_query": 2.5}, "data.train_query=2.5"),
        ({"image_size": 0}, "data.image_size=0"),
        ({"image_size": 106}, "data.image_size=106"),
        ({"split": "omniglot"}, "data.split='omniglot'.*vinyals, lake"),
        ({"shot": 10, "query": 11}, r"data.shot \+ data.query = 10 \+ 11 = 21.*at most 20"),
        ({"train_shot": 15, "query": 6}, r"data.train_shot \+ data.query = 15 \+ 6 = 21"),
        ({"rotations": "train"}, "data.rotations='train'"),
        ({"rotations": ["training"]}, r"data.rotations=\['training'\]"),
        ({"within_alphabet": "yes"}, "data.within_alphabet='yes'"),
        ({"train_episodes_per_epoch": 0}, "data.train_episodes_per_epoch=0"),
        ({"val_episodes": -5}, "data.val_episodes=-5"),
        ({"test_episodes": None}, "data.test_episodes=None"),
        ({"num_workers": -1}, "data.num_workers=-1"),
        ({"pin_memory": 1}, "data.pin_memory=1"),
        ({"download": "no"}, "data.download='no'"),
    ],
)
def test_bad_settings_fail_before_any_data_is_touched(
    tmp_path: Path, settings: dict[str, object], expected: str
) -> None:
    root = tmp_path / "absent"
    with pytest.raises(MatchnetError, match=expected):
        OmniglotDataModule(root=str(root), **settings)
    assert not root.exists()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"way": 25}, "data.way=25 but the vinyals train split has only 24 classes"),
        ({"train_way": 30}, "data.train_way=30 but the vinyals train split has only 24 classes"),
        ({"split": "lake", "way": 7}, "data.way=7 but the lake val split has only 6 classes"),
        (
            {"split": "lake", "way": 4, "within_alphabet": True},
            "largest alphabet of the lake val split has only 3",
        ),
    ],
)
def test_too_many_ways_for_the_split(fake_root: Path, settings: dict[str, object], expected: str) -> None:
    datamodule = OmniglotDataModule(root=str(fake_root), download=False, **settings)
    with pytest.raises(MatchnetError, match=expected):
        datamodule.setup()
    assert not (fake_root / "cache").exists()  # rejected before the cache is built


def test_only_the_stages_a_run_reads_are_checked(fake_root: Path) -> None:
    """A run that reads the test split alone (src/eval.py) is not refused because of another split."""
    from matchnet.config import validate_data

    lake = {"root": str(fake_root), "download": False, "split": "lake"}  # classes: 24 train, 6 val, 9 test
    with pytest.raises(MatchnetError, match="data.way=7 but the lake val split has only 6 classes"):
        OmniglotDataModule(**lake, way=7).setup()
    datamodule = OmniglotDataModule(**lake, way=7, stages=["test"])
    datamodule.setup()
    assert datamodule.stages == ("test",)
    episode = datamodule.dataset("test")[0]
    assert episode.way == 7 and episode.support_y.unique().numel() == 7
    with pytest.raises(ValueError, match="reads only the stages \\('test',\\), not 'val'"):
        datamodule.dataset("val")
    with pytest.raises(MatchnetError, match="data.way=10 but the lake test split has only 9 classes"):
        OmniglotDataModule(**lake, way=10, stages=["test"]).setup()
    # Settings of the training episodes alone: refused for training, not for a test.
    too_many_drawings = {"train_shot": 15, "query": 6}
    with pytest.raises(MatchnetError, match=r"data.train_shot \+ data.query = 15 \+ 6 = 21"):
        OmniglotDataModule(**lake, **too_many_drawings)
    config = OmegaConf.merge(OmegaConf.load(CONFIG), lake, too_many_drawings, {"seed": 0})
    with pytest.raises(MatchnetError, match=r"data.train_shot \+ data.query"):
        validate_data(config)
    validate_data(config, stages=("test",))
    assert OmniglotDataModule(**lake, **too_many_drawings, stages=("test",)).stages == ("test",)
    with pytest.raises(ValueError, match="non-empty selection"):
        OmniglotDataModule(**lake, stages=["testing"])


def test_class_counts(fake_datamodule: MakeDataModule) -> None:
    counts = {"vinyals": (24, 24, 36), "lake": (24, 6, 9)}
    for split, expected in counts.items():
        datamodule = fake_datamodule(split=split)
        assert tuple(datamodule.num_classes(stage) for stage in ("train", "val", "test")) == expected
    datamodule = fake_datamodule(rotations=False)
    assert datamodule.num_classes("train") == 6 and datamodule.class_names("train")[0].endswith("/rot000")
    datamodule = fake_datamodule(split="lake", rotations=["train", "test"])
    assert (datamodule.num_classes("val"), datamodule.num_classes("test")) == (6, 36)
    assert datamodule.channels == 1 and datamodule.image_size == 28
    with pytest.raises(ValueError, match="stage"):
        datamodule.num_classes("fit")


def test_training_settings_default_to_the_evaluation_ones(tmp_path: Path) -> None:
    datamodule = OmniglotDataModule(root=str(tmp_path), way=20, shot=5, query=15, train_query=5)
    assert datamodule.settings("train") == (20, 5, 5)
    assert datamodule.settings("test") == (20, 5, 15)
    assert OmniglotDataModule(root=str(tmp_path), persistent_workers=True).persistent_workers is False
    assert datamodule.hparams["train_query"] == 5


def test_config_matches_the_constructor(monkeypatch: pytest.MonkeyPatch, fake_root: Path) -> None:
    # train_way: the config trains on 20-way episodes (the project's recipe); the constructor keeps
    # None (= way) so that a DataModule built in Python does what its arguments say.
    config = check_config_matches_constructor("omniglot", OmniglotDataModule, own={"train_way"})
    assert (config.train_way, inspect.signature(OmniglotDataModule).parameters["train_way"].default) == (
        20,
        None,
    )
    monkeypatch.setenv("MATCHNET_DATA_ROOT", str(fake_root))
    full = OmegaConf.create({"seed": 7, "data": config})
    datamodule = hydra.utils.instantiate(full.data, download=False)
    assert isinstance(datamodule, OmniglotDataModule)
    assert (datamodule.root, datamodule.seed) == (str(fake_root), 7)
    datamodule = hydra.utils.instantiate(full.data, rotations=["train"], download=False)
    assert datamodule.rotated == {"train"}


@pytest.mark.parametrize(
    "bad", [{"way": 1}, {"split": "omniglot"}, {"shot": 10, "query": 11}, {"wya": 5}, {"augment": 5}]
)
def test_config_and_constructor_share_each_rule(tmp_path: Path, bad: dict[str, object]) -> None:
    from matchnet.config import validate_data

    config = OmegaConf.merge(OmegaConf.load(CONFIG), {"root": str(tmp_path), "seed": 0}, bad)
    with pytest.raises(MatchnetError) as from_config:
        validate_data(config)
    with pytest.raises(MatchnetError) as from_python:
        OmniglotDataModule(root=str(tmp_path), **bad)
    assert str(from_config.value).replace("matchnet.data.omniglot.", "matchnet.data.") == str(
        from_python.value
    ).replace("matchnet.data.omniglot.", "matchnet.data.")
