"""The paper's other Table 1 methods in the framework: the pixel baseline through src/eval.py, the baseline
classifier (config checks, training step, its checkpoint everywhere a checkpoint is read) and
``model.encoder_init``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from helpers.fixture_types import ComposeConfig, MakeTrainer
from helpers.model_configs import MODEL_CONF, load_model_config
from helpers.scripts import last_json, run_main
from helpers.small_models import images, strokes
from matchnet.baselines import (
    BaselineClassifierModule,
    CosineHead,
    SiameseModule,
    SiameseNetwork,
    WeightedL1Kernel,
    pair_loss,
)
from matchnet.checkpoints import MODULE_CLASS, load_module
from matchnet.classifier import OneShotClassifier
from matchnet.config import validate
from matchnet.data import Episode, ImageBatch
from matchnet.demo.core import DemoModel, Example, SupportSet
from matchnet.errors import MatchnetError
from matchnet.model.pixels import Pixels
from matchnet.module import MatchingNetModule
from matchnet.predicting import predict_task

SIZE = 28
OPTIMIZER = {"_target_": "torch.optim.Adam", "lr": 1e-2}


def model_config(kind: str = "conv4", **overrides: object) -> dict[str, Any]:
    """``model=matchnet`` resolved for 28x28 images, with ``overrides`` (``encoder={...}`` for its keys)."""
    cfg = load_model_config(kind)
    cfg.encoder.image_size = SIZE
    cfg.encoder.in_channels = 1
    cfg.encoder.mean = cfg.encoder.std = None
    return OmegaConf.to_container(OmegaConf.merge(cfg, overrides), resolve=True)  # type: ignore[return-value]


BASELINE_MODEL = {"fce": False, "learn_temperature": False, "encoder": {"hidden": 8}}


def baseline(num_classes: int | None = 6, head: str = "linear", seed: int = 0) -> BaselineClassifierModule:
    torch.manual_seed(seed)
    return BaselineClassifierModule(
        model=model_config(**BASELINE_MODEL),
        optimizer=OPTIMIZER,
        data={"image_size": SIZE, "way": 5, "shot": 1, "train_batch_size": 12},
        head=head,
        num_classes=num_classes,
    )


def save(module: MatchingNetModule, path: Path) -> Path:
    """``module`` saved as src/train.py's checkpoints hold it (hyperparameters, weights, module hooks)."""
    checkpoint: dict[str, Any] = {
        "hyper_parameters": dict(module.hparams),
        "state_dict": module.state_dict(),
        "global_step": 0,
    }
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


# ---------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=results_baseline"],
        ["experiment=results_baseline", "method.head=cosine", "data.augment=1.0"],
    ],
)
def test_the_baseline_experiment_is_valid(compose_config: ComposeConfig, overrides: list[str]) -> None:
    cfg = compose_config("train", overrides)
    validate(cfg, "train")
    assert cfg.data.train_batch_size == 128 and cfg.method._target_.endswith("BaselineClassifierModule")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["data.train_batch_size=128"],
            r"data.train_batch_size=128 makes the training batches plain images",
        ),
        (["experiment=results_baseline", "data.train_batch_size=null"], "data.train_batch_size is null"),
        (["experiment=results_baseline", "model.fce=true"], "model.fce=true with the baseline classifier"),
        (["experiment=results_baseline", "model.learn_temperature=true"], "model.learn_temperature=true"),
        (["experiment=results_baseline", "method.head=softmax"], "method.head='softmax' is invalid"),
        (["experiment=results_baseline", "method.head_scale=0"], "method.head_scale=0 is invalid"),
        (["experiment=results_baseline", "+method.heads=2"], "method.heads is not a setting"),
        (["experiment=results_baseline", "data.train_batch_size=0"], "data.train_batch_size=0 is invalid"),
        (["model.encoder_init=3"], "model.encoder_init=3 is invalid"),
        (["+method._target_=matchnet.model.Conv4"], "is not a matchnet training module"),
    ],
)
def test_bad_method_settings_are_refused_at_start_up(
    compose_config: ComposeConfig, overrides: list[str], message: str
) -> None:
    with pytest.raises(MatchnetError, match=message):
        validate(compose_config("train", overrides), "train")


# ---------------------------------------------------------------------- the baseline classifier


def test_cosine_head_is_the_scaled_cosine_to_each_class_weight() -> None:
    head = CosineHead(dim=3, num_classes=2, scale=5.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    f = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    expected = 5.0 * torch.tensor([[1.0, 1 / math.sqrt(2)], [0.0, 0.0]])
    torch.testing.assert_close(head(f), expected)


class RepeatedBatch(Dataset[ImageBatch]):
    def __init__(self, batch: ImageBatch, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, n: int) -> ImageBatch:
        return self.batch


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_the_classifier_learns_its_training_classes(make_trainer: MakeTrainer, head: str) -> None:
    module = baseline(num_classes=6, head=head)
    batch = ImageBatch(images(12, seed=1), torch.arange(6).repeat(2))
    trained = {name.split(".")[0] + "." + name.split(".")[1] for name, _ in module.named_parameters()}
    assert trained == {"net.encoder", "head.weight"} | ({"head.bias"} if head == "linear" else set())
    with torch.no_grad():
        before = F.cross_entropy(module.head(module.net.encoder(batch.x)), batch.y).item()
    loader = DataLoader(RepeatedBatch(batch, 40), batch_size=None)
    make_trainer(max_epochs=1, limit_val_batches=0).fit(module, train_dataloaders=loader)
    module.eval()
    with torch.no_grad():
        logits = module.head(module.net.encoder(batch.x))
    assert F.cross_entropy(logits, batch.y).item() < before / 4
    assert torch.equal(logits.argmax(1), batch.y)


def test_the_head_is_sized_by_the_training_classes_when_fitting_starts() -> None:
    module = baseline(num_classes=None)
    assert module.head is None

    class Classes(pl.LightningDataModule):
        def num_classes(self, stage: str) -> int:
            return {"train": 9}[stage]

    module._trainer = type("T", (), {"datamodule": Classes()})()  # what configure_model reads
    module.configure_model()
    assert module.head is not None and module.head.out_features == 9 and module.hparams.num_classes == 9


def test_an_episode_is_refused_as_a_training_batch() -> None:
    episode = (torch.zeros(1), torch.zeros(1))
    with pytest.raises(MatchnetError, match="set data.train_batch_size"):
        baseline().training_step(episode, 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- its checkpoint


def test_a_baseline_checkpoint_is_read_as_a_matching_network_everywhere(tmp_path: Path) -> None:
    module = baseline(num_classes=6, head="cosine").eval()
    path = save(module, tmp_path / "baseline.ckpt")
    loaded = load_module(path)
    assert type(loaded) is BaselineClassifierModule and isinstance(loaded.head, CosineHead)
    assert (
        torch.load(path, weights_only=False)[MODULE_CLASS]
        == "matchnet.baselines.classifier.BaselineClassifierModule"
    )
    for name, value in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)

    x = images(8, seed=3)
    classifier = OneShotClassifier.from_checkpoint(path).fit(x[:4], ["a", "b", "c", "d"])
    with torch.no_grad():
        expected = module.net(x[:4], torch.arange(4), x[4:], 4).exp()
    torch.testing.assert_close(classifier.predict_proba(x[4:]), expected)

    demo = DemoModel.from_checkpoint(path)
    support = SupportSet()
    support.extend(Example(label, image) for label, image in zip("abcd", x[:4], strict=True))
    prediction = demo.classify(support, x[0])
    assert prediction.label == "a"
    torch.testing.assert_close(torch.tensor(prediction.probs), classifier.predict_proba(x[:1])[0])


def test_predict_runs_on_a_baseline_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # outside a Hydra job, predictions.json goes to the working directory
    path = save(baseline(num_classes=6), tmp_path / "baseline.ckpt")
    for label, seed in (("alpha", 1), ("beta", 2)):
        (tmp_path / "support" / label).mkdir(parents=True)
        strokes(seed).save(tmp_path / "support" / label / "1.png")
    cfg = OmegaConf.create(
        {"support_dir": str(tmp_path / "support"), "query": str(tmp_path / "support" / "beta" / "1.png")}
        | {"ckpt_path": str(path), "output": None, "device": "cpu", "batch_size": 8}
    )
    summary, predictions = predict_task(cfg, tmp_path)
    assert summary["classes"] == 2 and predictions[0]["label"] == "beta"
    assert (tmp_path / "predictions.json").is_file()


def test_a_matching_network_checkpoint_still_loads_as_one(tmp_path: Path) -> None:
    module = MatchingNetModule(model=model_config(fce=False), optimizer=OPTIMIZER, data={"image_size": SIZE})
    assert type(load_module(save(module, tmp_path / "plain.ckpt"))) is MatchingNetModule


def test_a_checkpoint_naming_an_unknown_module_is_refused(tmp_path: Path) -> None:
    path = save(baseline(), tmp_path / "baseline.ckpt")
    checkpoint = torch.load(path, weights_only=False)
    for name, message in (
        ("matchnet.nowhere.Module", "does not have"),
        ("torch.nn.Linear", "not a matchnet"),
    ):
        checkpoint[MODULE_CLASS] = name
        torch.save(checkpoint, path)
        with pytest.raises(MatchnetError, match=message):
            load_module(path)


# ---------------------------------------------------------------------- model.encoder_init


def test_encoder_init_copies_the_encoder_weights_and_statistics(tmp_path: Path) -> None:
    source = baseline(seed=1)
    with torch.no_grad():
        source.net.encoder.features[1].running_mean.add_(0.5)  # BatchNorm statistics travel too
    path = save(source, tmp_path / "baseline.ckpt")
    torch.manual_seed(2)
    target = MatchingNetModule(model=model_config(fce=True, encoder={"hidden": 8}), optimizer=OPTIMIZER)
    lstm = {k: v.clone() for k, v in target.net.context.state_dict().items()}
    target.init_encoder(str(path))
    for name, value in source.net.encoder.state_dict().items():
        torch.testing.assert_close(target.net.encoder.state_dict()[name], value)
    for name, value in lstm.items():  # the rest keeps its own initialisation
        torch.testing.assert_close(target.net.context.state_dict()[name], value)


def test_encoder_init_refuses_what_is_not_a_fitting_checkpoint(tmp_path: Path) -> None:
    target = MatchingNetModule(model=model_config(encoder={"hidden": 8}), optimizer=OPTIMIZER)
    (tmp_path / "noise.ckpt").write_bytes(b"not a checkpoint at all")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.ckpt")
    wide = MatchingNetModule(model=model_config(encoder={"hidden": 16}), optimizer=OPTIMIZER)
    resnet = MatchingNetModule(
        model=model_config("resnet12", encoder={"channels": [4, 4, 4, 8]}), optimizer=OPTIMIZER
    )
    cases = {
        tmp_path / "missing.ckpt": "does not exist or is not a file",
        tmp_path / "noise.ckpt": "is not a readable checkpoint",
        tmp_path / "foreign.ckpt": "was not written by matchnet",
        save(
            wide, tmp_path / "wide.ckpt"
        ): r"features.0.weight: checkpoint \[16, 1, 3, 3\], this model \[8, 1, 3, 3\]",
        save(resnet, tmp_path / "resnet.ckpt"): r"missing from the checkpoint.*matchnet.model.ResNet12\(",
    }
    for path, message in cases.items():
        with pytest.raises(MatchnetError, match=f"model.encoder_init={path}.*{message}"):
            target.init_encoder(str(path))


@pytest.mark.parametrize("problem", ["missing", "resnet"])
def test_train_stops_on_a_bad_encoder_init_before_training(tmp_path: Path, problem: str) -> None:
    path = tmp_path / f"{problem}.ckpt"
    if problem == "resnet":
        resnet = model_config("resnet12", encoder={"channels": [4, 4, 4, 8]})
        save(MatchingNetModule(model=resnet, optimizer=OPTIMIZER), path)
    proc = run_main(
        "train.py",
        f"model.encoder_init={path}",
        "logger=none",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"model.encoder_init={path}" in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---------------------------------------------------------------------- pixels through src/eval.py


@pytest.mark.data
def test_pixels_are_evaluated_without_a_checkpoint(omniglot_root: Path, tmp_path: Path) -> None:
    proc = run_main(
        "eval.py",
        "model=pixels",
        "data.way=20",
        "data.test_episodes=3",
        "logger=none",
        f"hydra.run.dir={tmp_path}/px",
        cwd=tmp_path,
    )
    result = last_json(proc)
    assert result["episodes"] == 3 and result["way"] == 20 and result["readout"] == "nearest"
    assert result["ckpt_path"] is None and result["train_episodes"] == 0 and 0 < result["test_acc"] < 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=matchnet"], "trainable parameters and no trained weights"),
        (["model=pixels", "ckpt_path=some.ckpt"], "a checkpoint brings its own model settings"),
        ([], "or a parameter-free model without one, e.g. model=pixels"),
        (["model=pixels", "model.readout=closest"], "model.readout='closest' is invalid"),
    ],
)
def test_eval_without_a_checkpoint_needs_a_parameter_free_model(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    proc = run_main(
        "eval.py", *overrides, "logger=none", f"hydra.run.dir={tmp_path}/e", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2 and message in proc.stderr


# ---------------------------------------------------------------------- end to end


@pytest.mark.data
@pytest.mark.slow
def test_a_trained_baseline_is_evaluated_and_starts_a_matching_network(
    omniglot_root: Path, tmp_path: Path
) -> None:
    tiny = ["debug=tiny", "trainer.max_epochs=1", "logger=none"]
    trained = last_json(
        run_main(
            "train.py",
            "experiment=results_baseline",
            *tiny,
            "trainer.limit_train_batches=3",  # an epoch of the baseline is a pass over all training images
            "data.train_batch_size=32",
            f"hydra.run.dir={tmp_path}/baseline",
            cwd=tmp_path,
        )
    )
    assert trained["method"] == "baseline" and trained["train_batches"] == 3 and trained["train_images"] == 96
    assert trained["way"] == 20 and trained["episodes"] == 6
    ckpt = trained["ckpt_path"]

    evaluated = last_json(
        run_main(
            "eval.py",
            f"ckpt_path={ckpt}",
            "data.way=5",
            "data.shot=5",
            "data.test_episodes=3",
            "logger=none",
            f"hydra.run.dir={tmp_path}/eval",
            cwd=tmp_path,
        )
    )
    assert (evaluated["way"], evaluated["shot"], evaluated["episodes"]) == (5, 5, 3)
    assert evaluated["train_images"] == 96

    started = run_main(
        "train.py",
        "experiment=results_vinyals_nofce",
        f"model.encoder_init={ckpt}",
        *tiny,
        f"hydra.run.dir={tmp_path}/mn",
        cwd=tmp_path,
    )
    assert f"Encoder weights from {ckpt}" in (tmp_path / "mn" / "train.log").read_text()
    assert (
        json.loads((tmp_path / "mn" / "result.json").read_text())["test_acc"]
        == last_json(started)["test_acc"]
    )


# ---------------------------------------------------------------------- the Siamese network


def test_pair_loss_weighs_same_and_different_pairs_equally() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -3.0]])
    same = torch.tensor([[True, False, False], [False, True, False]])

    def bce(z: float, target: int) -> float:
        p = 1 / (1 + math.exp(-z))
        return -math.log(p) if target else -math.log(1 - p)

    positives = (bce(2.0, 1) + bce(1.0, 1)) / 2
    negatives = (bce(-1.0, 0) + bce(0.5, 0) + bce(0.0, 0) + bce(-3.0, 0)) / 4
    torch.testing.assert_close(pair_loss(logits, same), torch.tensor((positives + negatives) / 2))


def siamese_config() -> dict[str, Any]:
    """``model=siamese`` resolved for 28x28 images, with a narrow Conv4."""
    cfg = OmegaConf.load(MODEL_CONF / "siamese.yaml")
    cfg.pop("defaults")
    cfg.encoder = model_config(encoder={"hidden": 8})["encoder"]
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def siamese_on_pixels(alpha: list[float], bias: float, readout: str = "nearest") -> SiameseNetwork:
    net = SiameseNetwork(Pixels(image_size=2), readout=readout)
    with torch.no_grad():
        net.kernel.alpha.copy_(torch.tensor(alpha))
        net.kernel.bias.fill_(bias)
    return net


def test_siamese_decides_by_the_support_image_most_likely_the_same() -> None:
    """Hand-computed: p(same) = sigmoid(1 - 2 |d_0| - 0.5 |d_1| - 0 |d_2| - |d_3|) for each pair."""
    net = siamese_on_pixels([-2.0, -0.5, 0.0, -1.0], 1.0)
    support = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 5.0, 0.0]])
    support_y = torch.tensor([0, 1, 1])
    query = torch.tensor([[0.8, 0.0, 0.0, 0.0], [0.0, 0.9, 0.0, 0.3]])
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = [
        [sigmoid(1 - 1.6), sigmoid(1 - 0.4), sigmoid(1 - 1.6 - 0.5)],
        [sigmoid(1 - 0.45 - 0.3), sigmoid(1 - 2 - 0.45 - 0.3), sigmoid(1 - 0.05 - 0.3)],
    ]
    x = support.view(3, 1, 2, 2)
    q = query.view(2, 1, 2, 2)
    torch.testing.assert_close(net.same_probability(x, q), torch.tensor(expected))
    # query 0: support 1 (class 1) is the most alike; query 1: support 2 (class 1) beats support 0
    assert net(x, support_y, q, 2).argmax(1).tolist() == [1, 1]
    # a lone class-0 support nearer than each of two class-1 supports: nearest and attention part ways
    near = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0], [0.3, 0.0, 0.0, 0.0]]).view(3, 1, 2, 2)
    query0 = torch.zeros(1, 1, 2, 2)
    assert net(near, torch.tensor([0, 1, 1]), query0, 2).argmax().item() == 0
    attention = siamese_on_pixels([-2.0, -0.5, 0.0, -1.0], 1.0, readout="attention")
    assert attention(near, torch.tensor([0, 1, 1]), query0, 2).argmax().item() == 1


def test_siamese_training_separates_same_from_different_pairs(make_trainer: MakeTrainer) -> None:
    torch.manual_seed(0)
    module = SiameseModule(model=siamese_config(), optimizer=OPTIMIZER)
    x = images(8, seed=5)
    episode = Episode(x[:4], torch.arange(4), x[4:] + x[:4] * 0.5, torch.arange(4), 4)  # queries ~ supports
    net = module.net
    assert isinstance(net, SiameseNetwork)
    same = torch.eye(4, dtype=torch.bool)
    with torch.no_grad():
        before = pair_loss(net.same_logits(episode.support_x, episode.query_x), same).item()
    loader = DataLoader(RepeatedBatch(episode, 30), batch_size=None)  # type: ignore[arg-type]
    make_trainer(max_epochs=1, limit_val_batches=0).fit(module, train_dataloaders=loader)
    net.eval()
    with torch.no_grad():
        p = net.same_probability(episode.support_x, episode.query_x)
    assert pair_loss(torch.logit(p), same).item() < before / 2
    assert p.diagonal().min() > p.masked_fill(same, 0).max()


def test_siamese_needs_a_siamese_network(compose_config: ComposeConfig) -> None:
    validate(compose_config("train", ["experiment=results_siamese"]), "train")
    with pytest.raises(MatchnetError, match="needs a Siamese network.*model=siamese"):
        validate(compose_config("train", ["experiment=results_siamese", "model=matchnet"]), "train")


def test_a_siamese_checkpoint_evaluates_and_predicts_but_the_demo_wants_attention(tmp_path: Path) -> None:
    torch.manual_seed(0)
    module = SiameseModule(model=siamese_config(), optimizer=OPTIMIZER, data={"image_size": SIZE})
    path = save(module, tmp_path / "siamese.ckpt")
    loaded = load_module(path)
    assert type(loaded) is SiameseModule and isinstance(loaded.net.kernel, WeightedL1Kernel)
    x = images(6, seed=2)
    labels, _ = OneShotClassifier.from_checkpoint(path).fit(x[:3], ["a", "b", "c"]).predict(x[:3])
    assert labels == ["a", "b", "c"]  # each support image is most alike to itself
    with pytest.raises(MatchnetError, match="readout='nearest'"):
        DemoModel.from_checkpoint(path)


@pytest.mark.data
@pytest.mark.slow
def test_a_trained_siamese_network_is_evaluated(omniglot_root: Path, tmp_path: Path) -> None:
    trained = last_json(
        run_main(
            "train.py",
            "experiment=results_siamese",
            "debug=tiny",
            "trainer.max_epochs=1",
            "logger=none",
            f"hydra.run.dir={tmp_path}/siamese",
            cwd=tmp_path,
        )
    )
    assert trained["method"] == "siamese" and trained["distance"] == "weighted_l1"
    assert trained["readout"] == "nearest" and trained["train_episodes"] == 3
    evaluated = last_json(
        run_main(
            "eval.py",
            f"ckpt_path={trained['ckpt_path']}",
            "data.way=5",
            "data.test_episodes=3",
            "logger=none",
            f"hydra.run.dir={tmp_path}/eval",
            cwd=tmp_path,
        )
    )
    assert (evaluated["way"], evaluated["episodes"], evaluated["method"]) == (5, 3, "siamese")


def test_a_parameter_free_model_is_not_trained(compose_config: ComposeConfig) -> None:
    with pytest.raises(MatchnetError, match="has no parameters to train.*src/eval.py model=pixels"):
        validate(compose_config("train", ["model=pixels"]), "train")
