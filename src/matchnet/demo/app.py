"""The demo page (Gradio): draw and label support examples, draw or upload a query, see the attention.

:func:`build_app` makes the page for a :class:`DemoModel`; :func:`launch` serves it (bound to
127.0.0.1 unless told otherwise, no public share link unless asked); :func:`run_demo` is what
``src/demo.py`` runs. Every event is also an API endpoint (``gradio_client``): ``/add``, ``/remove``,
``/clear``, ``/load_alphabet`` and ``/classify``. Bad input (an empty canvas, an empty label, fewer
than two classes, an upload that is not an image or is too large) is answered with a message on the
page (``gr.Error``), never a stack trace, and the page keeps working.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from omegaconf import DictConfig
from PIL import Image

from matchnet.classifier import DEFAULT_CHECKPOINT
from matchnet.demo.alphabets import Alphabets
from matchnet.demo.core import (
    MAX_UPLOAD_BYTES,
    DemoModel,
    Example,
    Prediction,
    SupportSet,
    clean_label,
    preview,
    read_upload,
)
from matchnet.errors import MatchnetError

log = logging.getLogger(__name__)

try:
    import gradio as gr
except ImportError as err:  # pragma: no cover - depends on the installation
    raise MatchnetError(
        "The demo needs Gradio, which is not installed; run `make install` (or pip install -e .)."
    ) from err

F = TypeVar("F", bound=Callable[..., Any])

CANVAS_SIZE = (400, 400)
BRUSH_SIZE = 12
#: The page the canvases start from. Gradio's editor opens an empty canvas (and one cleared with its bin
#: icon) on its image tool, behind "select the draw tool to start"; on a blank page it picks the brush.
BLANK_PAGE = Image.new("RGB", CANVAS_SIZE, "white")
# System fonts only: the page works offline.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)
CSS = """
#demo-attention table { border-collapse: collapse; width: 100%; }
#demo-attention td { padding: 2px 6px; vertical-align: middle; }
#demo-attention img { width: 42px; height: 42px; image-rendering: pixelated; border: 1px solid #888; }
#demo-attention .bar { background: #f97316; height: 12px; border-radius: 2px; }
#demo-prediction h3 { margin: 0; }
#demo-gallery img { image-rendering: pixelated; }
"""
INTRO = """# Matching Networks: one-shot learning in the browser
Draw a character on the left canvas, give it a label and **add it to the support set**: one
example makes a new class (one-shot), more examples of the same label make it K-shot (the bin icon
clears the canvas for the next drawing). With two or more classes, draw a query
(or upload an image) and **classify** it. The network compares the query with every support image;
the attention a(x&#770;, x<sub>i</sub>) over the support set decides the class: P(y = c) is the sum
of the attention over the examples of c."""


def _page_errors(fn: F) -> F:
    """Show a :class:`MatchnetError` as a message on the page instead of failing the event."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MatchnetError as err:
            raise gr.Error(str(err), title="Cannot do that") from None

    return wrapper  # type: ignore[return-value]


def _png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _canvas_image(value: Any) -> Image.Image | None:
    """The drawing of a Sketchpad value (a dict with a ``composite`` image), None when there is none."""
    if value is None:
        return None
    image = value.get("composite") if isinstance(value, dict) else value
    if image is None:
        return None
    if isinstance(image, Image.Image):
        return image
    return Image.fromarray(image)


def blank_page() -> Image.Image:
    """What a canvas shows when it opens and after it is cleared."""
    return BLANK_PAGE


def support_summary(support: SupportSet) -> str:
    """One line describing the support set."""
    if not support.examples:
        return "The support set is empty: draw a character, type its label and press 'Add to support'."
    counts: dict[str, int] = {}
    for example in support.examples:
        counts[example.label] = counts.get(example.label, 0) + 1
    shots = ", ".join(f"{label} x{n}" for label, n in counts.items())
    n = len(support)
    classes = len(counts)
    ready = "" if classes >= 2 else " Add a second class to classify."
    return f"Support set: {n} image{'s' * (n != 1)}, {classes} class{'es' * (classes != 1)} ({shots}).{ready}"


def attention_html(support: SupportSet, prediction: Prediction) -> str:
    """The attention over each support image, highest first, with the images beside their weights."""
    top = max((a for _, a in prediction.attention), default=1.0) or 1.0
    rows = []
    for rank, (i, a) in enumerate(prediction.attention, 1):
        example = support.examples[i]
        rows.append(
            f"<tr><td>{rank}</td><td><img src='{_png_data_uri(preview(example.x))}' "
            f"alt='support #{i + 1}'></td>"
            f"<td>{html.escape(example.label)}</td><td style='width:45%'><div class='bar' "
            f"style='width:{100 * a / top:.1f}%'></div></td><td>{a:.3f}</td></tr>"
        )
    return (
        "<table><thead><tr><th>#</th><th>support image</th><th>label</th><th colspan='2'>"
        "attention a(x&#770;, x<sub>i</sub>)</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def classify_query(
    model: DemoModel, support: SupportSet, canvas: Any, upload: str | None = None
) -> tuple[str, dict[str, float], str, Image.Image, dict[str, Any], str]:
    """Everything the server does for "Classify": the uploaded image when there is one, else the drawing.

    Returns the headline, ``{class: probability}``, the attention table (HTML), the query as the
    network sees it, the numbers (``Prediction.as_dict``) and a status line.
    """
    if upload:
        x = model.prepare(read_upload(upload), f"The uploaded image {Path(upload).name}")
        source = f"the uploaded image {Path(upload).name}"
    else:
        image = _canvas_image(canvas)
        if image is None:
            raise MatchnetError(
                "The query canvas is empty; draw a character (or upload an image) to classify."
            )
        x = model.prepare(image, "The query canvas")
        source = "the drawing"
    reused = support.cached(id(model)) is not None
    prediction = model.classify(support, x)
    probs = dict(zip(prediction.classes, prediction.probs, strict=True))
    headline = f"### Prediction: **{html.escape(prediction.label)}** (P = {probs[prediction.label]:.2f})"
    status = (
        f"Classified {source} against {len(support)} support images in {prediction.server_ms:.1f} ms "
        f"(support embeddings {'reused' if reused else 'computed'})."
    )
    return (
        headline,
        probs,
        attention_html(support, prediction),
        preview(x),
        prediction.as_dict(support),
        status,
    )


def build_app(
    model: DemoModel, alphabets: Alphabets | None = None, title: str = "matchnet demo"
) -> gr.Blocks:
    """The demo page for ``model``; ``alphabets`` offers Omniglot evaluation alphabets to load."""
    alphabets = alphabets or Alphabets(None)
    net = model.net
    about = (
        f"Checkpoint images: {model.image_size}x{model.image_size}, "
        f"{'Full Context Embeddings' if net.context is not None else 'no FCE'}, "
        f"{net.kernel.distance_name} attention."
    )

    def views(support: SupportSet) -> tuple[Any, ...]:
        gallery = [(preview(e.x), f"#{i + 1} {e.label}") for i, e in enumerate(support.examples)]
        choices = [(f"#{i + 1} {e.label}", i) for i, e in enumerate(support.examples)]
        return support, gallery, gr.Dropdown(choices=choices, value=None), support_summary(support)

    @_page_errors
    def add(canvas: Any, label: str, support: SupportSet) -> tuple[Any, ...]:
        text = clean_label(label)
        image = _canvas_image(canvas)
        if image is None:
            raise MatchnetError("The drawing canvas is empty; draw a character before 'Add to support'.")
        x = model.prepare(image, "The drawing canvas")
        support.add(Example(text, x))
        return views(support)

    @_page_errors
    def remove(choice: int | None, support: SupportSet) -> tuple[Any, ...]:
        if choice is None or choice == "":
            raise MatchnetError(
                "No example is chosen; pick the support example to remove from the list first."
            )
        support.remove(int(choice))
        return views(support)

    @_page_errors
    def clear(support: SupportSet) -> tuple[Any, ...]:
        support.clear()
        return views(support)

    @_page_errors
    def load_alphabet(alphabet: str | None, support: SupportSet) -> tuple[Any, ...]:
        if not alphabets.available:
            raise MatchnetError(f"No Omniglot data to load alphabets from: {alphabets.problem}")
        if not alphabet:
            raise MatchnetError("No alphabet is chosen; pick one from the list first.")
        drawings = alphabets.drawings(alphabet)
        examples = [
            Example(label, model.prepare(image, label), f"Omniglot {alphabet}") for label, image in drawings
        ]
        support.clear()
        support.extend(examples)
        return views(support)

    @_page_errors
    def classify(canvas: Any, upload: str | None, support: SupportSet) -> tuple[Any, ...]:
        return classify_query(model, support, canvas, upload)

    def canvas(label: str, elem_id: str) -> gr.Sketchpad:
        """A drawing canvas: black strokes of one brush size on a blank page, the brush picked, no layers
        or transforms; clearing it (the bin icon) brings the blank page, and the brush, back."""
        sketchpad = gr.Sketchpad(
            value=BLANK_PAGE,
            label=label,
            type="pil",
            canvas_size=CANVAS_SIZE,
            brush=gr.Brush(default_size=BRUSH_SIZE, colors=["#000000"], color_mode="fixed"),
            layers=False,
            transforms=(),
            elem_id=elem_id,
        )
        sketchpad.clear(blank_page, None, sketchpad, api_visibility="private", queue=False)
        return sketchpad

    with gr.Blocks(title=title, analytics_enabled=False) as app:
        support_state = gr.State(SupportSet())
        gr.Markdown(INTRO)
        gr.Markdown(about, elem_id="demo-about")
        status = gr.Markdown(support_summary(SupportSet()), elem_id="demo-status")
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("## 1. Support set")
                support_canvas = canvas("Draw an example", "demo-support-canvas")
                with gr.Row():
                    label_box = gr.Textbox(
                        label="Label", placeholder="e.g. alpha", elem_id="demo-label", scale=2
                    )
                    add_button = gr.Button("Add to support", variant="primary", elem_id="demo-add", scale=1)
                with gr.Row():
                    alphabet_choice = gr.Dropdown(
                        choices=alphabets.names,
                        value=alphabets.names[0] if alphabets.names else None,  # one click loads one
                        label="Load an alphabet (one drawing per character)",
                        info=None if alphabets.available else "No Omniglot data found.",
                        interactive=alphabets.available,
                        elem_id="demo-alphabet",
                        scale=2,
                    )
                    load_button = gr.Button("Load alphabet", elem_id="demo-load", scale=1)
                gallery = gr.Gallery(
                    label="Support set (what the network sees)",
                    columns=8,
                    fit_columns=False,
                    height=260,
                    allow_preview=False,
                    interactive=False,
                    format="png",
                    elem_id="demo-gallery",
                )
                with gr.Row():
                    remove_choice = gr.Dropdown(
                        choices=[], value=None, label="Example", elem_id="demo-remove-choice"
                    )
                    remove_button = gr.Button("Remove example", elem_id="demo-remove")
                    clear_button = gr.Button("Clear support set", variant="stop", elem_id="demo-clear")
            with gr.Column(scale=1):
                gr.Markdown("## 2. Query")
                query_canvas = canvas("Draw a query", "demo-query-canvas")
                upload = gr.File(
                    label="...or upload an image (used instead of the drawing; up to "
                    f"{MAX_UPLOAD_BYTES // 2**20} MB)",
                    type="filepath",
                    elem_id="demo-upload",
                )
                classify_button = gr.Button("Classify", variant="primary", elem_id="demo-classify")
                headline = gr.Markdown("### Prediction: -", elem_id="demo-prediction")
                with gr.Row():
                    probs = gr.Label(label="P(class | query)", elem_id="demo-probs", scale=3)
                    seen = gr.Image(
                        label="The query as the network sees it",
                        type="pil",
                        interactive=False,
                        height=140,
                        elem_id="demo-preview",
                        scale=1,
                    )
                attention = gr.HTML(elem_id="demo-attention")
                with gr.Accordion("Numbers (JSON)", open=False):
                    details = gr.JSON(elem_id="demo-details")

        support_views = [support_state, gallery, remove_choice, status]
        add_button.click(add, [support_canvas, label_box, support_state], support_views, api_name="add")
        remove_button.click(remove, [remove_choice, support_state], support_views, api_name="remove")
        clear_button.click(clear, [support_state], support_views, api_name="clear")
        load_button.click(
            load_alphabet, [alphabet_choice, support_state], support_views, api_name="load_alphabet"
        )
        classify_button.click(
            classify,
            [query_canvas, upload, support_state],
            [headline, probs, attention, seen, details, status],
            api_name="classify",
        )
    return app


def launch(
    app: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, share: bool = False, quiet: bool = False
) -> str:
    """Serve ``app`` in a background thread; returns its local address. ``port=None`` takes a free one.

    A port that is in use raises MatchnetError.
    """
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=share,
            prevent_thread_lock=True,
            quiet=quiet,
            show_error=False,
            ssr_mode=False,
            max_file_size=4 * MAX_UPLOAD_BYTES,
            theme=THEME,
            css=CSS,
        )
    except OSError as err:
        raise MatchnetError(
            f"Cannot serve the demo on {host}:{port} ({err}); pass another port=..., or port=null for a "
            "free one."
        ) from err
    return str(app.local_url)


def run_demo(cfg: DictConfig, project_root: Path) -> None:
    """What ``src/demo.py`` runs: load the checkpoint, serve the page until Ctrl+C."""
    ckpt = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else project_root / DEFAULT_CHECKPOINT
    if not ckpt.is_file():
        raise MatchnetError(
            f"ckpt_path={ckpt} does not exist; pass ckpt_path=PATH, a checkpoint written by src/train.py "
            "(e.g. one of checkpoints/*.ckpt)."
        )
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    model = DemoModel.from_checkpoint(ckpt, device=cfg.get("device") or "cpu")
    alphabets = Alphabets(cfg.get("data_root"))
    if not alphabets.available:
        log.warning("Loading alphabets is off: %s", alphabets.problem)
    app = build_app(model, alphabets, title=f"matchnet demo: {ckpt.name}")
    url = launch(app, host=cfg.host, port=cfg.get("port"), share=bool(cfg.get("share")), quiet=True)
    print(f"matchnet demo of {ckpt} running at {url} (Ctrl+C to stop)", flush=True)
    if getattr(app, "share_url", None):
        print(f"Public share link: {app.share_url}", flush=True)
    elif cfg.get("share"):
        print("No public share link could be made (it needs internet); the local address works.", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
