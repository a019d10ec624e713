"""OneShotClassifier and the support/query folder helpers, on small checkpoints made here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers.small_models import SIZE, images, model_config, save_checkpoint, strokes
from matchnet.classifier import OneShotClassifier
from matchnet.data.images import load_image
from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule
from matchnet.predicting import query_files, support_from_folder


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "plain.ckpt", fce=False)


@pytest.fixture(scope="module")
def fce_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fce.ckpt", fce=True)


def test_from_checkpoint_takes_size_from_stored_data_and_is_in_eval_mode(fce_ckpt: Path) -> None:
    clf = OneShotClassifier.from_checkpoint(fce_ckpt)
    assert (clf.image_size, clf.channels) == (SIZE, 1)
    assert not clf.net.training
    assert all(not module.training for module in clf.net.modules())


def test_size_falls_back_to_encoder_settings(tmp_path: Path) -> None:
    path = tmp_path / "nodata.ckpt"
    torch.manual_seed(0)
    module = MatchingNetModule(model=model_config(), optimizer={"_target_": "torch.optim.Adam"})
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, path)
    assert OneShotClassifier.from_checkpoint(path).image_size == SIZE


@pytest.mark.parametrize("ckpt", ["plain_ckpt", "fce_ckpt"])
def test_fit_predict_shapes_probabilities_and_label_order(ckpt: str, request: pytest.FixtureRequest) -> None:
    clf = OneShotClassifier.from_checkpoint(request.getfixturevalue(ckpt))
    labels = ["zeta", "alpha", 7, "alpha", "zeta", 7]  # any hashables; K = 2; first appearance order
    clf.fit(images(6), labels)
    assert clf.classes == ["zeta", "alpha", 7]
    predicted, probs = clf.predict(images(9, seed=1))
    assert probs.shape == (9, 3) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(dim=1), torch.ones(9), atol=1e-5)
    assert (probs >= 0).all()
    assert len(predicted) == 9
    assert predicted == [clf.classes[i] for i in probs.argmax(dim=1).tolist()]


def test_exact_copy_of_a_support_image_gets_its_label(plain_ckpt: Path) -> None:
    """Cosine attention without FCE: a query identical to a support image has cosine 1 with it."""
    clf = OneShotClassifier.from_checkpoint(plain_ckpt)
    support = images(10, seed=3)
    labels = [f"class{i}" for i in range(10)]
    clf.fit(support, labels)
    order = [7, 2, 9, 0, 4]
    predicted, probs = clf.predict(support[order])
    assert predicted == [labels[i] for i in order]
    assert (probs.argmax(dim=1) == torch.tensor(order)).all()


def test_k_shot_sums_attention_over_each_class(plain_ckpt: Path) -> None:
    """P(c | x^) = sum of the attention over the K support images of class c (paper, eq. 1)."""
    clf = OneShotClassifier.from_checkpoint(plain_ckpt)
    support, queries = images(12, seed=4), images(5, seed=9)
    labels = [name for name in ("a", "b", "c", "d") for _ in range(3)]  # 4 classes x 3 shots
    shuffle = torch.randperm(12, generator=torch.Generator().manual_seed(0)).tolist()
    clf.fit([support[i] for i in shuffle], [labels[i] for i in shuffle])
    _, probs = clf.predict(queries)
    with torch.no_grad():
        attention = clf.net.attention(support, queries)  # [5, 12]; without FCE independent of order
    for column, name in enumerate(clf.classes):
        members = [i for i, label in enumerate(labels) if label == name]
        assert torch.allclose(probs[:, column], attention[:, members].sum(dim=1), atol=1e-5)


def test_k_shot_copy_of_any_shot_gets_its_class(tmp_path: Path) -> None:
    """With a sharp kernel (low temperature) the exact copy dominates the class sums."""
    clf = OneShotClassifier.from_checkpoint(
        save_checkpoint(tmp_path / "sharp.ckpt", fce=False, temperature=0.01)
    )
    support = images(12, seed=4)
    labels = [name for name in ("a", "b", "c", "d") for _ in range(3)]
    shuffle = torch.randperm(12, generator=torch.Generator().manual_seed(0)).tolist()
    clf.fit([support[i] for i in shuffle], [labels[i] for i in shuffle])
    predicted, probs = clf.predict(support)
    assert predicted == labels
    assert probs.shape == (12, 4)


def test_matches_the_network_forward_as_eval_runs_it(fce_ckpt: Path) -> None:
    """Same log-probabilities as MatchingNetwork.forward on one episode in eval mode (what eval.py runs)."""
    clf = OneShotClassifier.from_checkpoint(fce_ckpt, batch_size=2)
    support, queries = images(6, seed=5), images(5, seed=6)
    labels = [0, 1, 2, 0, 1, 2]
    clf.fit(support, labels)
    _, probs = clf.predict(queries)
    order = torch.tensor([0, 3, 1, 4, 2, 5])  # the classifier puts the support class by class
    with torch.no_grad():
        expected = clf.net(support[order], torch.tensor(labels)[order], queries, 3).exp()
    assert torch.allclose(probs, expected, atol=1e-5)


def test_batches_do_not_change_results(fce_ckpt: Path) -> None:
    support, queries = images(4, seed=7), images(7, seed=8)
    one = OneShotClassifier.from_checkpoint(fce_ckpt, batch_size=1).fit(support, list("abab"))
    many = OneShotClassifier.from_checkpoint(fce_ckpt, batch_size=256).fit(support, list("abab"))
    assert torch.allclose(one.predict(queries)[1], many.predict(queries)[1], atol=1e-6)


def test_paths_pil_images_and_tensors_are_converted_alike(plain_ckpt: Path, tmp_path: Path) -> None:
    clf = OneShotClassifier.from_checkpoint(plain_ckpt)
    drawings = [strokes(i) for i in range(3)]
    paths = []
    for i, drawing in enumerate(drawings):
        paths.append(tmp_path / f"{i}.png")
        drawing.save(paths[-1])
    from_paths = clf.prepare(paths)
    assert from_paths.shape == (3, 1, SIZE, SIZE)
    assert torch.equal(from_paths, torch.stack([load_image(p, SIZE) for p in paths]))
    assert torch.equal(clf.prepare(drawings), from_paths)
    assert torch.equal(clf.prepare(from_paths), from_paths)
    assert torch.equal(clf.prepare(list(from_paths)), from_paths)
    assert torch.equal(clf.prepare(str(paths[0])), from_paths[:1])
    assert torch.equal(clf.prepare((from_paths * 255).round().to(torch.uint8)), from_paths)
    clf.fit(paths, ["x", "y", "z"])
    predicted, _ = clf.predict(drawings[::-1])
    assert predicted == ["z", "y", "x"]


def test_rgb_checkpoint_reads_three_channels(tmp_path: Path) -> None:
    ckpt = save_checkpoint(
        tmp_path / "rgb.ckpt", data={"image_size": SIZE, "channels": 3}, encoder={"in_channels": 3}
    )
    clf = OneShotClassifier.from_checkpoint(ckpt)
    assert clf.channels == 3
    path = tmp_path / "colour.png"
    strokes(2).convert("RGB").save(path)
    assert torch.equal(clf.prepare(path), load_image(path, SIZE, 3).unsqueeze(0))
    with Image.open(path) as image:
        assert torch.equal(clf.prepare(image), clf.prepare(path))
    _, probs = clf.fit([path, path], ["a", "b"]).predict([path])
    assert probs.shape == (1, 2)


def test_jpeg_of_any_size_is_accepted(plain_ckpt: Path, tmp_path: Path) -> None:
    clf = OneShotClassifier.from_checkpoint(plain_ckpt)
    path = tmp_path / "big.jpg"
    strokes(1, size=(300, 180)).convert("RGB").save(path, quality=95)
    assert clf.prepare(path).shape == (1, 1, SIZE, SIZE)


def test_api_errors(plain_ckpt: Path, tmp_path: Path) -> None:
    clf = OneShotClassifier.from_checkpoint(plain_ckpt)
    with pytest.raises(MatchnetError, match="before fit"):
        clf.predict(images(1))
    with pytest.raises(MatchnetError, match="2 support images but 3 labels"):
        clf.fit(images(2), ["a", "b", "c"])
    with pytest.raises(MatchnetError, match="no support images"):
        clf.fit([], [])
    with pytest.raises(MatchnetError, match=r"shape \[1, 32, 32\]"):
        clf.fit([torch.zeros(1, 32, 32)], ["a"])
    with pytest.raises(MatchnetError, match="pass file paths"):
        clf.fit([3.5], ["a"])
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    with pytest.raises(MatchnetError, match="notes.png"):
        clf.fit([notes], ["a"])
    with pytest.raises(MatchnetError, match="missing.png"):
        clf.fit([tmp_path / "missing.png"], ["a"])
    with pytest.raises(MatchnetError, match="does not exist"):
        OneShotClassifier.from_checkpoint(tmp_path / "missing.ckpt")
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": 1}, foreign)
    with pytest.raises(MatchnetError, match="foreign.ckpt"):
        OneShotClassifier.from_checkpoint(foreign)


# ---------------------------------------------------------------------- folders


def write_support(root: Path, layout: dict[str, int]) -> None:
    for label, count in layout.items():
        (root / label).mkdir(parents=True)
        for k in range(count):
            strokes(hash((label, k)) % 1000).save(root / label / f"{k}.png")


def test_support_from_folder_orders_classes_and_files(tmp_path: Path) -> None:
    write_support(tmp_path, {"beta": 2, "alpha": 1, "gamma": 3})
    (tmp_path / "alpha" / ".DS_Store").write_text("hidden files are skipped")
    paths, labels = support_from_folder(tmp_path)
    assert labels == ["alpha", "beta", "beta", "gamma", "gamma", "gamma"]
    assert paths[1:3] == [tmp_path / "beta" / "0.png", tmp_path / "beta" / "1.png"]


def test_query_files(tmp_path: Path) -> None:
    for name in ("b.png", "a.png", "c.jpg"):
        strokes(0).convert("RGB").save(tmp_path / name)
    assert query_files(tmp_path) == [tmp_path / n for n in ("a.png", "b.png", "c.jpg")]
    assert query_files(tmp_path / "b.png") == [tmp_path / "b.png"]


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "does not exist"),
        ("empty", "no class folders"),
        ("flat", "only files"),
        ("loose", "outside the class folders"),
        ("empty_class", "has no images"),
        ("nested", "image files only"),
    ],
)
def test_support_folder_errors_name_the_path(tmp_path: Path, setup: str, needle: str) -> None:
    root = tmp_path / "support"
    if setup != "missing":
        root.mkdir()
    if setup == "flat":
        strokes(0).save(root / "a.png")
    if setup in ("loose", "empty_class", "nested"):
        write_support(root, {"a": 1})
    if setup == "loose":
        (root / "readme.txt").write_text("x")
    if setup == "empty_class":
        (root / "b").mkdir()
    if setup == "nested":
        (root / "a" / "more").mkdir()
    with pytest.raises(MatchnetError, match=needle) as raised:
        support_from_folder(root)
    assert str(root) in str(raised.value)


def test_query_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(MatchnetError, match="does not exist") as raised:
        query_files(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(raised.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MatchnetError, match="has no images"):
        query_files(tmp_path / "empty")
