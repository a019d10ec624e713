"""miniImageNet: reading learn2learn's pickles, bad files, episodes, augmentation, the config, and
train / eval end to end on tiny pickles in exactly that format (miniimagenet_fakes.py)."""

from __future__ import annotations

import pickle
from pathlib import Path

import hydra
import pytest
import torch
from omegaconf import OmegaConf

from helpers.data_configs import check_config_matches_constructor
from helpers.fixture_types import ComposeConfig
from helpers.miniimagenet_fakes import FAKE_CLASSES, IMAGES_PER_CLASS, fake_split, write_fake_miniimagenet
from helpers.scripts import last_json, run_main
from matchnet.data import MiniImageNetDataModule, miniimagenet
from matchnet.data.miniimagenet import SPLIT_FILES, read_split
from matchnet.errors import MatchnetError

SMALL = {"query": 5, "download": False}


@pytest.fixture
def mini_root(tmp_path: Path) -> Path:
    return write_fake_miniimagenet(tmp_path / "miniimagenet")


def test_episodes_show_the_pickled_images(mini_root: Path) -> None:
    datamodule = MiniImageNetDataModule(root=str(mini_root), shot=2, **SMALL)
    datamodule.setup()
    assert [datamodule.num_classes(s) for s in ("train", "val", "test")] == list(FAKE_CLASSES.values())
    assert datamodule.class_names("val")[0] == "n00000100" and (datamodule.channels, datamodule.split) == (
        3,
        "ravi",
    )
    images, classes = read_split(mini_root / SPLIT_FILES["test"][0])
    rows = {
        name: torch.from_numpy(images[r]).permute(0, 3, 1, 2).float() / 255 for name, r in classes.items()
    }
    names = datamodule.class_names("test")
    for n in range(3):
        episode, draw = datamodule.dataset("test")[n], datamodule.dataset("test").task(n)
        assert episode.support_x.shape == (10, 3, 84, 84) and episode.query_x.shape == (25, 3, 84, 84)
        assert (
            episode.support_x.dtype == torch.float32
            and 0 <= episode.query_x.min() <= episode.query_x.max() <= 1
        )
        for label, cls in enumerate(draw.classes.tolist()):
            source = rows[names[cls]]
            for image in torch.cat(
                [episode.support_x[episode.support_y == label], episode.query_x[episode.query_y == label]]
            ):
                assert any(torch.equal(image, candidate) for candidate in source)


def test_augmentation_changes_training_episodes_only_and_reproducibly(mini_root: Path) -> None:
    plain = MiniImageNetDataModule(root=str(mini_root), **SMALL)
    augmented = MiniImageNetDataModule(root=str(mini_root), augment=True, crop_padding=4, **SMALL)
    again = MiniImageNetDataModule(root=str(mini_root), augment=True, crop_padding=4, **SMALL)
    for stage in ("val", "test"):
        assert torch.equal(plain.dataset(stage)[0].query_x, augmented.dataset(stage)[0].query_x)
    a, b, p = augmented.dataset("train")[5], again.dataset("train")[5], plain.dataset("train")[5]
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert torch.equal(a.query_y, p.query_y) and not torch.equal(a.query_x, p.query_x)
    assert a.query_x.shape == p.query_x.shape


def test_html_instead_of_a_pickle(mini_root: Path) -> None:
    page = mini_root / SPLIT_FILES["val"][0]
    page.write_bytes(b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head></html>")
    with pytest.raises(MatchnetError, match=r"is a web page.*Delete it and download it again") as info:
        MiniImageNetDataModule(root=str(mini_root), **SMALL).setup()
    assert str(page) in str(info.value) and not isinstance(info.value.__cause__, pickle.UnpicklingError)


def test_truncated_pickle(mini_root: Path) -> None:
    path = mini_root / SPLIT_FILES["train"][0]
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(MatchnetError, match=f"{path} is not a readable miniImageNet pickle.*Delete it"):
        MiniImageNetDataModule(root=str(mini_root), **SMALL).setup()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"image_data": fake_split("test", 5)["image_data"][:, :32, :32], "class_dict": {"a": [0]}},
            r"\[N, 84, 84, 3\]",
        ),
        ({"images": [], "labels": []}, "expected a dict with image_data"),
        (
            {"image_data": fake_split("test", 5)["image_data"], "class_dict": {"a": [0, 10_000]}},
            "outside image_data",
        ),
    ],
)
def test_wrong_contents(mini_root: Path, payload: dict, expected: str) -> None:
    with open(mini_root / SPLIT_FILES["test"][0], "wb") as handle:
        pickle.dump(payload, handle)
    with pytest.raises(MatchnetError, match=expected):
        MiniImageNetDataModule(root=str(mini_root), **SMALL).setup()


def test_missing_split_offline(mini_root: Path) -> None:
    (mini_root / SPLIT_FILES["test"][0]).unlink()
    with pytest.raises(
        MatchnetError, match="mini-imagenet-cache-test.pkl is missing and data.download=false"
    ) as info:
        MiniImageNetDataModule(root=str(mini_root), **SMALL).setup()
    assert "mini-imagenet-cache-validation.pkl" in str(info.value)  # names every file it expects


def test_failed_download_names_the_files_and_leaves_no_page(
    mini_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = mini_root / SPLIT_FILES["val"][0]
    target.unlink()

    def offline(root: str, mode: str, download: bool) -> None:  # learn2learn writing an error page
        (Path(root) / f"mini-imagenet-cache-{mode}.pkl").write_bytes(b"<html>offline</html>")
        raise ConnectionError("no network")

    import learn2learn.vision.datasets as datasets

    monkeypatch.setattr(datasets, "MiniImagenet", offline)
    with pytest.raises(MatchnetError, match=r"downloading it with learn2learn failed \(ConnectionError"):
        MiniImageNetDataModule(root=str(mini_root), query=5).setup()
    assert not target.exists()


def test_bad_settings(tmp_path: Path) -> None:
    for settings, expected in [
        ({"image_size": 28}, "data.image_size=28 is invalid: it must be one of 84"),
        ({"channels": 1}, "data.channels=1"),
        ({"mean": [0.5, 0.5]}, r"data.mean=\[0.5, 0.5\] is invalid"),
        ({"std": [0.2, 0.0, 0.2]}, "data.std="),
        ({"mean": None}, "set both"),
        ({"crop_padding": -1}, "data.crop_padding=-1"),
        ({"augment": "yes"}, "data.augment='yes'"),
        ({"augment": True, "device": "cuda"}, "data.augment=true augments episodes on the host"),
    ]:
        with pytest.raises(MatchnetError, match=expected):
            MiniImageNetDataModule(root=str(tmp_path), **settings)


def test_small_classes_are_named(tmp_path: Path) -> None:
    root = write_fake_miniimagenet(tmp_path / "m")
    with pytest.raises(MatchnetError, match=rf"n00000000 has {IMAGES_PER_CLASS}"):
        MiniImageNetDataModule(root=str(root), query=IMAGES_PER_CLASS, download=False).setup()
    with pytest.raises(MatchnetError, match="data.way=6 but the ravi val split has only 5 classes"):
        MiniImageNetDataModule(root=str(root), way=6, train_way=5, query=5, download=False).setup()


def test_config_matches_the_constructor(mini_root: Path) -> None:
    config = check_config_matches_constructor("miniimagenet", MiniImageNetDataModule)
    full = OmegaConf.create({"seed": 3, "data": config})
    datamodule = hydra.utils.instantiate(full.data, root=str(mini_root), query=5, download=False)
    assert datamodule.seed == 3 and datamodule.mean == (0.485, 0.456, 0.406)
    assert isinstance(datamodule.hparams["mean"], list)  # plain types in checkpoints, not ListConfig


def test_model_config_follows_the_data(compose_config: ComposeConfig) -> None:
    cfg = compose_config("train", ["data=miniimagenet", "experiment=miniimagenet_5w5s"])
    resnet = compose_config("train", ["data=miniimagenet", "model/encoder=resnet12"])
    omniglot = compose_config("train")
    encoder = OmegaConf.to_container(cfg.model.encoder, resolve=True)
    assert (
        encoder["in_channels"] == 3
        and encoder["image_size"] == 84
        and encoder["std"] == [0.229, 0.224, 0.225]
    )
    assert (cfg.data.shot, cfg.data.query, cfg.model.fce, cfg.model.distance) == (5, 15, True, "cosine")
    assert resnet.model.encoder._target_ == "matchnet.model.ResNet12" and "hidden" not in resnet.model.encoder
    plain = OmegaConf.to_container(omniglot.model.encoder, resolve=True)
    assert (plain["in_channels"], plain["mean"], plain["std"], plain["hidden"]) == (1, None, None, 64)


# ---------------------------------------------------------------------- end to end


def run(script: str, *overrides: str, cwd: Path) -> dict:
    return last_json(run_main(script, *overrides, "logger=none", cwd=cwd))


@pytest.mark.slow
def test_train_and_evaluate(mini_root: Path, tmp_path: Path) -> None:
    data = [f"data.root={mini_root}", "data=miniimagenet", "data.query=5", "data.download=false"]
    smoke = run("train.py", *data, "debug=fdr", f"hydra.run.dir={tmp_path}/smoke", cwd=tmp_path)
    assert (smoke["split"], smoke["way"], smoke["episodes"]) == ("ravi", 5, 1)
    trained = run(
        "train.py",
        *data,
        "debug=tiny",
        "data.test_episodes=3",
        "model.fce=false",
        "data.augment=true",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert trained["ckpt_path"] and trained["fce"] is False and trained["episodes"] == 3
    evaluated = run(
        "eval.py", f"ckpt_path={trained['ckpt_path']}", f"hydra.run.dir={tmp_path}/eval", cwd=tmp_path
    )
    assert evaluated["test_acc"] == trained["test_acc"] and evaluated["split"] == "ravi"


def test_module_exports() -> None:
    assert miniimagenet.IMAGE_SIZE == 84 and set(miniimagenet.SPLIT_FILES) == {"train", "val", "test"}
