"""Property-based tests: any episode / model / optimiser settings either train for a few steps or stop
with the MatchnetError they call for (the invalid setting, or the clash with the data, by name), never
another; random bytes as images always give a MatchnetError naming the file. Training runs in-process on
the fake Omniglot archives (tests/helpers/omniglot_fakes.py)."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers.omniglot_fakes import FAKE_COUNTS, fake_members, write_fake_set
from helpers.paths import CONF
from matchnet.cli import user_error
from matchnet.data import OmniglotDataModule, load_image, omniglot
from matchnet.errors import MatchnetError
from matchnet.module import NonFiniteLossError
from matchnet.pipeline import train

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Fake Omniglot zips (7 alphabets of 3 characters), their counts made the expected ones."""
    root = tmp_path_factory.mktemp("omniglot")
    for set_name in omniglot.SETS:
        write_fake_set(root, set_name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(omniglot, "EXPECTED_COUNTS", FAKE_COUNTS)
        yield root


def _value(value: object) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# Values the config validation accepts; they can still clash with the data (too many ways for the
# split, shot + query > 20 drawings, within_alphabet with big ways, an image too small for Conv4).
episode = st.fixed_dictionaries(
    {
        "data.way": st.integers(2, 9),
        "data.shot": st.integers(1, 4),
        "data.query": st.integers(1, 4),
        "data.train_way": st.one_of(st.none(), st.integers(2, 30)),
        "data.train_shot": st.one_of(st.none(), st.integers(1, 18)),
        "data.split": st.sampled_from(["vinyals", "lake"]),
        "data.rotations": st.booleans(),
        "data.within_alphabet": st.booleans(),
        "data.image_size": st.sampled_from([16, 28]),  # 8 is below Conv4's 16: a second broken setting
    }
)
model = st.fixed_dictionaries(
    {
        "model.fce": st.booleans(),
        "model.fce_steps": st.integers(0, 3),
        "model.distance": st.sampled_from(["cosine", "euclidean", "dot"]),
        "model.temperature": st.sampled_from([1.0, 0.1, 10.0]),
        "model.learn_temperature": st.booleans(),
        "optimizer.lr": st.sampled_from([1e-3, 0.1, 1e4]),
        "nan_policy": st.sampled_from(["stop", "skip"]),
    }
)
# At most one setting the config validation must reject.
INVALID = {
    "data.way": [0, 1, "x"],
    "data.shot": [0, -1],
    "data.query": [0],
    "data.split": ["bogus"],
    "data.image_size": [0, 500],
    "model.fce_steps": [-1],
    "model.distance": ["bogus"],
    "model.temperature": [0.0, -1.0],
    "optimizer.lr": [0.0, -1e-3],
    "nan_policy": ["ignore"],
}
broken = st.one_of(
    st.none(), st.sampled_from([(key, value) for key, values in INVALID.items() for value in values])
)


VALID_EPISODE = {
    "data.way": 3,
    "data.shot": 1,
    "data.query": 2,
    "data.train_way": None,
    "data.train_shot": None,
    "data.split": "vinyals",
    "data.rotations": True,
    "data.within_alphabet": False,
    "data.image_size": 16,
}
VALID_MODEL = {
    "model.fce": True,
    "model.fce_steps": 1,
    "model.distance": "cosine",
    "model.temperature": 1.0,
    "model.learn_temperature": False,
    "optimizer.lr": 1e-3,
    "nan_policy": "stop",
}
# How the checkpoint writer refuses weights that diverged to NaN or inf (matchnet.checkpoints).
NON_FINITE_WEIGHTS = "The weights became NaN or infinite"
# The size of a training run here: debug=tiny's episodes, one epoch.
TRAIN_EPISODES, TEST_EPISODES = 3, 6

# What each (split, rotations) makes of the fake archives: per stage, the classes and the classes of its
# largest alphabet. Facts of the data, for telling which valid settings must clash with it.
Classes = dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def fake_classes(fake_root: Path) -> dict[tuple[str, bool], Classes]:
    classes: dict[tuple[str, bool], Classes] = {}
    for split in ("vinyals", "lake"):
        for rotations in (True, False):
            datamodule = OmniglotDataModule(
                root=str(fake_root), download=False, split=split, rotations=rotations
            )
            classes[split, rotations] = {}
            for stage in ("train", "val", "test"):
                alphabets = Counter(name.split("/")[0] for name in datamodule.class_names(stage))
                classes[split, rotations][stage] = (alphabets.total(), max(alphabets.values()))
    return classes


def data_clashes(settings_: dict, classes: Classes) -> list[str]:
    """How the errors start that these valid settings must give on the fake archives (empty: they must
    train): more support + query drawings than a character has (20), more ways than a stage has classes,
    or, within one alphabet, than its largest alphabet has."""
    way, shot, query = settings_["data.way"], settings_["data.shot"], settings_["data.query"]
    train_way, train_shot = settings_["data.train_way"], settings_["data.train_shot"]
    expected = []
    for stage in ("train", "val", "test"):
        if stage == "train":
            way_key = "way" if train_way is None else "train_way"
            shot_key = "shot" if train_shot is None else "train_shot"
            stage_way, stage_shot = settings_[f"data.{way_key}"], settings_[f"data.{shot_key}"]
        else:
            way_key, shot_key, stage_way, stage_shot = "way", "shot", way, shot
        if stage_shot + query > omniglot.DRAWINGS_PER_CHARACTER:
            expected.append(f"data.{shot_key} + data.query = {stage_shot} + {query} = ")
        available, largest = classes[stage]
        if stage_way > available:
            split = settings_["data.split"]
            expected.append(f"data.{way_key}={stage_way} but the {split} {stage} split has only {available} ")
        if stage != "train" and settings_["data.within_alphabet"] and stage_way > largest:
            expected.append(f"data.{way_key}={stage_way} with data.within_alphabet=true, but the largest ")
    return expected


def train_tiny(fake_root: Path, run_dir: Path, settings_: dict) -> dict:
    """``src/train.py``'s pipeline on the fake archives, ``debug=tiny`` for one epoch and ``settings_``."""
    overrides = [f"{key}={_value(value)}" for key, value in settings_.items()] + [
        f"data.root={fake_root}",
        "data.download=false",
        "debug=tiny",
        "trainer.max_epochs=1",
        "+trainer.num_sanity_val_steps=0",
        "model.encoder.hidden=8",
        f"trainer.default_root_dir={run_dir}",
        f"callbacks.checkpoint.dirpath={run_dir}/checkpoints",
        "~callbacks.progress_bar",
        "+trainer.enable_progress_bar=false",
        "logger=none",
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(run_dir):  # outside a Hydra run, the run's files go to the working directory
        return train(cfg)


@pytest.mark.parametrize(
    "extra", [{}, {"data.split": "lake", "data.within_alphabet": True}], ids=["vinyals", "lake"]
)
def test_valid_settings_train(fake_root: Path, tmp_path: Path, extra: dict) -> None:
    """The success path of the property test below, on its own: valid settings train and test."""
    result = train_tiny(fake_root, tmp_path, VALID_EPISODE | VALID_MODEL | extra)
    assert result["train_episodes"] == TRAIN_EPISODES and result["episodes"] == TEST_EPISODES


@FAST
@given(episode=episode, model=model, broken=broken)
def test_any_settings_train_or_fail_cleanly(
    fake_root: Path,
    fake_classes: dict[tuple[str, bool], Classes],
    tmp_path_factory: pytest.TempPathFactory,
    episode: dict,
    model: dict,
    broken: tuple[str, object] | None,
) -> None:
    """Valid settings train, unless they clash with the data (then that clash is the error) or training
    diverges (optimizer.lr=1e4: a non-finite loss under nan_policy=stop, or non-finite weights); an invalid
    setting is refused by name. Any other error, or a valid setting refused, fails the test."""
    # A broken setting goes on episode settings that cannot clash with the data, so it is the only error.
    settings_ = (VALID_EPISODE if broken else episode) | model | dict([broken] if broken else [])
    classes = None if broken else fake_classes[settings_["data.split"], settings_["data.rotations"]]
    clashes = data_clashes(settings_, classes) if classes else []
    try:
        result = train_tiny(fake_root, tmp_path_factory.mktemp("run"), settings_)
    except Exception as raised:
        err = user_error(raised)  # what the entry points print cleanly; anything else is a bug
        if err is None:
            raise
        if broken:
            assert f"{broken[0]}=" in str(err), err  # the broken setting is the one named
        elif not str(err).startswith(tuple(clashes)):
            stopped = isinstance(err, NonFiniteLossError) and settings_["nan_policy"] == "stop"
            diverged = stopped or str(err).startswith(NON_FINITE_WEIGHTS)
            assert diverged and not clashes, f"valid settings {settings_} were refused: {err}"
        return
    assert broken is None, f"{broken} was accepted"
    assert not clashes, f"settings that clash with the data were accepted: {clashes}"
    assert result["train_episodes"] <= TRAIN_EPISODES and result["episodes"] == TEST_EPISODES


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
        st.binary(max_size=200).map(lambda b: b"\xff\xd8\xff\xe0" + b),  # JPEG
        st.binary(max_size=200).map(lambda b: b"GIF89a" + b),
    ),
    size=st.integers(1, 40),
)
def test_random_bytes_as_an_image_are_named(tmp_path: Path, data: bytes, size: int) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(data)
    try:
        image = load_image(path, size)
    except MatchnetError as err:
        assert str(path) in str(err)
        return
    assert tuple(image.shape) == (1, size, size)  # a (tiny) valid image is fine too


def test_truncated_real_png_is_named(tmp_path: Path) -> None:
    png = next(iter(fake_members("background").values()))
    for cut in (8, 30, len(png) // 2):
        path = tmp_path / f"cut{cut}.png"
        path.write_bytes(png[:cut])
        with pytest.raises(MatchnetError, match=str(path)):
            load_image(path, 28)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of an untrained small network (28x28 gray images), as src/train.py stores them."""
    from omegaconf import OmegaConf

    from matchnet.module import MatchingNetModule

    cfg = OmegaConf.load(CONF / "model" / "encoder" / "conv4.yaml")
    encoder = {"_target_": cfg._target_, "in_channels": 1, "hidden": 8, "blocks": 4, "image_size": 28}
    model = {"_target_": "matchnet.model.MatchingNetwork", "encoder": encoder, "fce": True, "fce_steps": 1}
    module = MatchingNetModule(model=model, optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    path = tmp_path_factory.mktemp("ckpt") / "small.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


PNGS = list(fake_members("evaluation").values())[:5]
image_bytes = st.one_of(
    st.sampled_from(PNGS),  # real drawings
    st.binary(max_size=120),
    st.binary(max_size=120).map(lambda b: b"\x89PNG\r\n\x1a\n" + b),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(support=[[PNGS[0]], [PNGS[1], PNGS[2]]], queries=[PNGS[3], PNGS[4]])
@given(
    support=st.lists(st.lists(image_bytes, max_size=3), max_size=4),
    queries=st.lists(image_bytes, max_size=3),
)
def test_predict_on_any_folders_classifies_or_names_the_file(
    small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory, support: list, queries: list
) -> None:
    from matchnet.classifier import OneShotClassifier
    from matchnet.predicting import query_files, support_from_folder

    root = tmp_path_factory.mktemp("predict")
    for c, images in enumerate(support):
        (root / "support" / f"class{c}").mkdir(parents=True)
        for i, data in enumerate(images):
            (root / "support" / f"class{c}" / f"{i}.png").write_bytes(data)
    (root / "queries").mkdir()
    for i, data in enumerate(queries):
        (root / "queries" / f"q{i}.png").write_bytes(data)
    try:
        paths, labels = support_from_folder(root / "support")
        found = query_files(root / "queries")
        classifier = OneShotClassifier.from_checkpoint(small_checkpoint).fit(paths, labels)
        predicted, probs = classifier.predict(found)
    except MatchnetError as err:
        assert str(root) in str(err)  # names the folder or file at fault
        return
    assert len(predicted) == len(found) == probs.shape[0] and set(predicted) <= set(labels)
    assert torch.allclose(probs.sum(dim=1), torch.ones(len(found)), atol=1e-4)
