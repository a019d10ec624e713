"""The demo: its support set and inference, and the page served in-process and driven through its API."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from helpers.demo_server import SHIPPED_CKPT, serve_shipped
from helpers.small_models import images, save_checkpoint, strokes
from matchnet.classifier import OneShotClassifier
from matchnet.demo.core import (
    MAX_LABEL,
    DemoModel,
    Example,
    SupportSet,
    clean_label,
    preview,
    read_upload,
)
from matchnet.errors import MatchnetError

# ---------------------------------------------------------------------- support set and inference


def support_of(x: torch.Tensor, labels: list[str]) -> SupportSet:
    support = SupportSet()
    support.extend(Example(label, image) for label, image in zip(labels, x, strict=True))
    return support


def count_encoder_images(model: DemoModel) -> list[int]:
    """Batch sizes seen by the encoder from now on."""
    seen: list[int] = []
    model.net.encoder.register_forward_hook(lambda _module, args, _out: seen.append(args[0].shape[0]))
    return seen


def test_classify_matches_the_classifier_and_reuses_support_embeddings(tmp_path: Path) -> None:
    """FCE: same probabilities as OneShotClassifier.fit/predict; g is computed once per support set."""
    model = DemoModel.from_checkpoint(save_checkpoint(tmp_path / "fce.ckpt", fce=True))
    labels = ["b", "a", "c", "a", "b", "c"]  # K = 2, classes in order of first appearance
    support_x, queries = images(6, seed=1), images(3, seed=2)
    support = support_of(support_x, labels)
    expected = (
        OneShotClassifier.from_checkpoint(tmp_path / "fce.ckpt").fit(support_x, labels).predict_proba(queries)
    )
    seen = count_encoder_images(model)
    for q, row in zip(queries, expected, strict=True):
        prediction = model.classify(support, q)
        assert prediction.classes == ["b", "a", "c"]
        assert torch.allclose(torch.tensor(prediction.probs), row, atol=1e-5)
        assert prediction.label == ["b", "a", "c"][int(row.argmax())]
        assert sum(a for _, a in prediction.attention) == pytest.approx(1, abs=1e-5)
        assert sorted(i for i, _ in prediction.attention) == list(range(6))
        weights = [a for _, a in prediction.attention]
        assert weights == sorted(weights, reverse=True)
    assert seen == [6, 1, 1, 1]  # the support once, then one image per query
    support.add(Example("d", images(1, seed=3)[0]))
    assert model.classify(support, queries[0]).classes == ["b", "a", "c", "d"]
    assert seen[4:] == [7, 1]  # a changed support set is embedded again


def test_attention_is_the_networks_attention_per_support_image(tmp_path: Path) -> None:
    """Without FCE a(x^, x_i) does not depend on the order; each example keeps its own weight."""
    model = DemoModel.from_checkpoint(save_checkpoint(tmp_path / "plain.ckpt", fce=False))
    support_x, query = images(5, seed=4), images(1, seed=5)
    support = support_of(support_x, ["x", "y", "x", "z", "y"])
    prediction = model.classify(support, query[0])
    with torch.no_grad():
        expected = model.net.attention(support_x, query)[0]
    got = dict(prediction.attention)
    assert torch.allclose(torch.tensor([got[i] for i in range(5)]), expected, atol=1e-5)
    assert prediction.probs[0] == pytest.approx(got[0] + got[2], abs=1e-5)  # P(x) sums its two examples


def test_an_exact_copy_of_a_support_drawing_is_classified_as_its_class(tmp_path: Path) -> None:
    model = DemoModel.from_checkpoint(save_checkpoint(tmp_path / "plain.ckpt", fce=False))
    drawings = [strokes(seed) for seed in range(4)]
    support = support_of(torch.stack([model.prepare(d) for d in drawings]), ["p", "q", "r", "s"])
    assert [model.classify(support, model.prepare(d)).label for d in drawings] == ["p", "q", "r", "s"]


def test_support_set_edits() -> None:
    x = images(3)
    support = support_of(x, ["a", "b", "a"])
    assert support.episode_order() == [0, 2, 1]
    version = support.version
    assert support.remove(1).label == "b" and support.classes == ["a"] and support.version > version
    with pytest.raises(MatchnetError, match="no support example #5"):
        support.remove(4)
    support.clear()
    assert len(support) == 0
    small = SupportSet(max_size=2)
    small.extend(Example("a", image) for image in x[:2])
    with pytest.raises(MatchnetError, match="already holds 2 images"):
        small.add(Example("c", x[2]))


def test_labels_blank_images_and_bad_uploads_raise_clear_errors(tmp_path: Path) -> None:
    assert clean_label("  alpha ") == "alpha"
    for empty in ("", "   ", None):
        with pytest.raises(MatchnetError, match="label is empty"):
            clean_label(empty)
    with pytest.raises(MatchnetError, match=f"at most {MAX_LABEL}"):
        clean_label("x" * (MAX_LABEL + 1))
    model = DemoModel.from_checkpoint(save_checkpoint(tmp_path / "plain.ckpt", fce=False))
    for blank in (Image.new("L", (400, 400), 255), Image.new("RGBA", (400, 400), (0, 0, 0, 0))):
        with pytest.raises(MatchnetError, match="The canvas is empty"):
            model.prepare(blank, "The canvas")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(MatchnetError, match="notes.png is not an image"):
        read_upload(text)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2048)
    with pytest.raises(MatchnetError, match="big.png is 0.0 MB; the limit is 0 MB"):
        read_upload(big, max_bytes=1024)
    wide = tmp_path / "wide.png"
    Image.new("1", (300, 200)).save(wide)
    with pytest.raises(MatchnetError, match="300x200 pixels; the limit is 100x100"):
        read_upload(wide, max_pixels=100 * 100)
    drawing = tmp_path / "drawing.png"
    strokes(0).save(drawing)
    assert torch.equal(model.prepare(read_upload(drawing)), model.classifier.prepare(drawing)[0])
    assert preview(model.prepare(read_upload(drawing))).size == (84, 84)


# ---------------------------------------------------------------------- the page, through its API


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_shipped() as url:
        yield url


@pytest.fixture
def client(server: str) -> Any:
    """A fresh page session (its own support set)."""
    from gradio_client import Client

    return Client(server, verbose=False)


def canvas(path: Path | None) -> dict[str, Any] | None:
    """A Sketchpad value whose drawing is the image at ``path``."""
    from gradio_client import handle_file

    return None if path is None else {"background": None, "layers": [], "composite": handle_file(str(path))}


def add(client: Any, path: Path | None, label: str) -> str:
    """Add a support example; returns the status line."""
    return client.predict(canvas(path), label, api_name="/add")[2]


def classify(client: Any, path: Path | None = None, upload: Path | None = None) -> dict[str, Any]:
    from gradio_client import handle_file

    result = client.predict(canvas(path), handle_file(str(upload)) if upload else None, api_name="/classify")
    return result[4]


# Characters of three different evaluation alphabets (never seen in training under the Lake split).
CHARACTERS = {
    "angelic": "Angelic/character03",
    "tengwar": "Tengwar/character10",
    "oriya": "Oriya/character25",
}


def omniglot_drawings(root: Path, character: str, which: list[int], folder: Path) -> list[Path]:
    with zipfile.ZipFile(root / "images_evaluation.zip") as archive:
        prefix = f"images_evaluation/{character}/"
        names = sorted(n for n in archive.namelist() if n.startswith(prefix) and n.endswith(".png"))
        paths = []
        for i in which:
            paths.append(folder / f"{character.replace('/', '-')}-{i}.png")
            paths[-1].write_bytes(archive.read(names[i]))
    return paths


def test_api_registers_three_classes_and_classifies_held_out_drawings(
    client: Any, omniglot_root: Path, tmp_path: Path
) -> None:
    held_out = {}
    for label, character in CHARACTERS.items():
        example, query = omniglot_drawings(omniglot_root, character, [0, 10], tmp_path)
        status = add(client, example, label)
        held_out[label] = query
    assert "3 images, 3 classes" in status
    for label, query in held_out.items():
        result = classify(client, query)
        assert result["label"] == label, result
        assert sum(item["weight"] for item in result["attention"]) == pytest.approx(1, abs=1e-4)
        assert sum(result["probs"].values()) == pytest.approx(1, abs=1e-4)
        assert [item["label"] for item in result["attention"]][0] == label


def test_api_k_shot_remove_and_clear(client: Any, tmp_path: Path) -> None:
    paths = []
    for seed in range(3):
        paths.append(tmp_path / f"{seed}.png")
        strokes(seed).save(paths[-1])
    add(client, paths[0], "a")
    add(client, paths[1], "b")
    status = add(client, paths[2], "a")
    assert "3 images, 2 classes (a x2, b x1)" in status
    assert len(classify(client, paths[2])["attention"]) == 3
    gallery, _, status = client.predict(1, api_name="/remove")  # #2, the "b"
    assert len(gallery) == 2 and "1 class" in status
    gallery, _, status = client.predict(api_name="/clear")
    assert gallery == [] and "empty" in status


def test_api_loads_an_alphabet(client: Any, omniglot_root: Path, tmp_path: Path) -> None:
    gallery, _, status = client.predict("Angelic", api_name="/load_alphabet")
    assert len(gallery) == 20 and "20 images, 20 classes" in status
    (query,) = omniglot_drawings(omniglot_root, "Angelic/character07", [12], tmp_path)
    result = classify(client, query)
    assert len(result["probs"]) == 20
    top5 = sorted(result["probs"], key=result["probs"].get, reverse=True)[:5]
    assert "Angelic 07" in top5, result["probs"]


def test_page_opens_with_the_brush_picked_and_an_alphabet_chosen(client: Any, omniglot_root: Path) -> None:
    """Gradio's editor opens an empty canvas on its image tool ("select the draw tool to start"), a canvas
    with a page on the brush: both canvases start on a blank page, and clearing one brings it back. The
    alphabet list starts on its first alphabet, so "Load alphabet" works with one click."""
    from matchnet.demo.alphabets import Alphabets
    from matchnet.demo.app import BLANK_PAGE, CANVAS_SIZE, blank_page, build_app

    model = DemoModel.from_checkpoint(SHIPPED_CKPT)
    alphabets = Alphabets(omniglot_root)
    app = build_app(model, alphabets)
    components = {block.elem_id: block for block in app.blocks.values() if block.elem_id}
    for elem_id in ("demo-support-canvas", "demo-query-canvas"):
        canvas = components[elem_id]
        assert canvas.value["background"] is not None, elem_id
        (cleared,) = [f for f in app.fns.values() if (canvas._id, "clear") in f.targets]
        assert cleared.fn is blank_page and [o.elem_id for o in cleared.outputs] == [elem_id]
    assert BLANK_PAGE.size == CANVAS_SIZE and BLANK_PAGE.getextrema() == ((255, 255), (255, 255), (255, 255))
    with pytest.raises(MatchnetError, match="The drawing canvas is empty"):
        model.prepare(blank_page(), "The drawing canvas")  # an untouched page is no drawing
    first = alphabets.names[0]
    assert components["demo-alphabet"].value == first
    gallery, _, status = client.predict(api_name="/load_alphabet")  # the list's initial value
    count = len(alphabets.characters(first))
    assert len(gallery) == count and f"{count} images, {count} classes" in status


@pytest.fixture
def two_classes(client: Any, tmp_path: Path) -> Path:
    """Register two classes in ``client``'s session; returns a query image that classifies."""
    for seed, label in ((1, "one"), (2, "two")):
        strokes(seed).save(tmp_path / f"{label}.png")
        add(client, tmp_path / f"{label}.png", label)
    return tmp_path / "one.png"


def bad_upload(kind: str, folder: Path) -> Path:
    if kind == "not an image":
        path = folder / "notes.png"
        path.write_text("these are notes, not a drawing")
    elif kind == "too many bytes":
        path = folder / "huge.bmp"
        path.write_bytes(b"BM" + bytes(11 * 2**20))
    else:
        path = folder / "wide.png"
        Image.new("1", (5000, 4000)).save(path)
    return path


BAD_INPUTS = {
    "empty label": ("add", "label is empty"),
    "empty add canvas": ("add", "The drawing canvas is empty"),
    "blank add canvas": ("add", "The drawing canvas is empty"),
    "empty query canvas": ("classify", "The query canvas is empty"),
    "blank query canvas": ("classify", "The query canvas is empty"),
    "not an image": ("classify", "notes.png is not an image"),
    "too many bytes": ("classify", "huge.bmp is 11.0 MB; the limit is 10 MB"),
    "too many pixels": ("classify", "5000x4000 pixels; the limit is 4096x4096"),
    "nothing to remove": ("remove", "No example is chosen"),
    "no alphabet": ("load_alphabet", "No alphabet is chosen"),
}


def try_bad_input(client: Any, case: str, good: Path, folder: Path) -> None:
    """Send the bad input ``case`` (a key of BAD_INPUTS) to the page."""
    endpoint = BAD_INPUTS[case][0]
    blank = folder / "blank.png"
    Image.new("RGB", (400, 400), "white").save(blank)
    if case == "empty label":
        add(client, good, "  ")
    elif endpoint == "add":
        add(client, blank if case.startswith("blank") else None, "three")
    elif endpoint == "classify" and "canvas" in case:
        classify(client, blank if case.startswith("blank") else None)
    elif endpoint == "classify":
        classify(client, good, upload=bad_upload(case, folder))
    else:
        client.predict(None, api_name=f"/{endpoint}")


def test_api_bad_inputs_get_messages_and_the_page_keeps_working(
    client: Any, two_classes: Path, tmp_path: Path
) -> None:
    """Every bad input in turn, in one page session: a clear message each time, and the page still answers."""
    from gradio_client.exceptions import AppError

    for case, (_, message) in BAD_INPUTS.items():
        with pytest.raises(AppError, match=message) as raised:
            try_bad_input(client, case, two_classes, tmp_path)
        assert "Traceback" not in str(raised.value), case
        assert classify(client, two_classes)["label"] == "one", case  # still answering
    assert "3 images, 2 classes" in add(client, two_classes, "one")  # the support set is intact


@pytest.mark.parametrize("have", [0, 1])
def test_api_classify_needs_two_classes(have: int, client: Any, tmp_path: Path) -> None:
    from gradio_client.exceptions import AppError

    strokes(0).save(tmp_path / "a.png")
    for _ in range(have):
        add(client, tmp_path / "a.png", "a")
    expected = "1 class \\('a'\\)" if have else "no examples"
    with pytest.raises(AppError, match=f"The support set has {expected}; classifying needs at least two"):
        classify(client, tmp_path / "a.png")
    strokes(1).save(tmp_path / "b.png")
    add(client, tmp_path / "a.png", "a")
    add(client, tmp_path / "b.png", "b")
    assert classify(client, tmp_path / "b.png")["label"] == "b"


def test_uploaded_image_is_classified_instead_of_the_drawing(
    client: Any, two_classes: Path, tmp_path: Path
) -> None:
    strokes(2).save(tmp_path / "upload.png")
    assert classify(client, two_classes, upload=tmp_path / "upload.png")["label"] == "two"


def test_entry_point_refuses_a_missing_checkpoint_and_a_busy_port(tmp_path: Path) -> None:
    import socket

    from omegaconf import OmegaConf

    from matchnet.demo.app import build_app, launch, run_demo

    cfg = OmegaConf.create({"ckpt_path": str(tmp_path / "missing.ckpt"), "host": "127.0.0.1", "port": None})
    with pytest.raises(MatchnetError, match="missing.ckpt does not exist"):
        run_demo(cfg, tmp_path)
    app = build_app(DemoModel.from_checkpoint(save_checkpoint(tmp_path / "plain.ckpt", fce=False)))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        expected = f"Cannot serve the demo on 127.0.0.1:{port}.*pass another port"
        with pytest.raises(MatchnetError, match=expected):
            launch(app, port=port, quiet=True)


def test_a_network_without_the_attention_readout_is_refused(tmp_path: Path) -> None:
    classifier = OneShotClassifier.from_checkpoint(save_checkpoint(tmp_path / "plain.ckpt", fce=False))
    classifier.net.readout = "prototype"  # class scores from class means: attention would not decide
    with pytest.raises(MatchnetError, match="readout='prototype'.*attention readout"):
        DemoModel(classifier)
