"""Figures: an episode with its predictions, attention heatmaps, learning curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402

RIGHT, WRONG, SUPPORT = (0.0, 0.6, 0.0), (0.85, 0.0, 0.0), (0.75, 0.75, 0.75)  # frame colours (RGB)
_FRAME = 2  # frame width in image pixels
_LABEL = 12  # height of a label strip in image pixels


def _tile(image: Tensor, frame: tuple[float, float, float]) -> np.ndarray:
    """An image ``[C, H, W]`` in [0, 1] as RGB ``[H + 4, W + 4, 3]``, framed: one channel is drawn dark on
    white (ink), three channels as they are."""
    array = image.detach().float().cpu().permute(1, 2, 0).numpy().clip(0, 1)
    rgb = np.repeat(1 - array, 3, axis=-1) if array.shape[-1] == 1 else array
    tile = np.empty((rgb.shape[0] + 2 * _FRAME, rgb.shape[1] + 2 * _FRAME, 3))
    tile[:] = frame
    tile[_FRAME:-_FRAME, _FRAME:-_FRAME] = rgb
    return tile


def plot_episode(
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    predicted: Tensor,
    max_queries: int = 10,
) -> Figure:
    """The support set on top, a column per class and a row per shot, headed ``y=<class>``; below, up to
    ``max_queries`` queries framed green (right) or red (wrong), each labelled ``p=<predicted> y=<true>``.

    One image in one axes (a 20-way 5-shot episode has 100 support images; an axes each took seconds).

    Args:
        support_x: ``[S, C, H, W]``; support_y: ``[S]``; query_x: ``[Q, C, H, W]``;
        query_y: ``[Q]``; predicted: ``[Q]`` predicted labels.
    """
    classes = sorted({int(y) for y in support_y})
    by_class = [[i for i in range(len(support_y)) if int(support_y[i]) == c] for c in classes]
    n_query = min(len(query_x), max_queries)
    cols = max(len(classes), 1)
    shots, query_rows = max(map(len, by_class)), -(-n_query // cols)
    th, tw = support_x.shape[2] + 2 * _FRAME, support_x.shape[3] + 2 * _FRAME
    gap = _FRAME
    top = _LABEL + shots * (th + gap) + _LABEL  # where the queries start
    canvas = np.ones((top + query_rows * (th + _LABEL), cols * (tw + gap), 3))
    labels: list[tuple[float, float, str, tuple[float, float, float]]] = []  # x, y, text, colour
    for col, (label, members) in enumerate(zip(classes, by_class, strict=True)):
        x = col * (tw + gap)
        labels.append((x + tw / 2, _LABEL / 2, f"y={label}", (0, 0, 0)))
        for row, index in enumerate(members):
            y = _LABEL + row * (th + gap)
            canvas[y : y + th, x : x + tw] = _tile(support_x[index], SUPPORT)
    for i in range(n_query):
        colour = RIGHT if int(predicted[i]) == int(query_y[i]) else WRONG
        x, y = (i % cols) * (tw + gap), top + (i // cols) * (th + _LABEL)
        canvas[y : y + th, x : x + tw] = _tile(query_x[i], colour)
        labels.append((x + tw / 2, y + th + _LABEL / 2, f"p={int(predicted[i])} y={int(query_y[i])}", colour))
    scale = 2.5 / 100  # inches per image pixel at the default 100 dpi: 2.5 screen pixels each
    fig = plt.figure(figsize=(canvas.shape[1] * scale, canvas.shape[0] * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for x, y, text, colour in labels:
        ax.text(x, y, text, ha="center", va="center", fontsize=6, color=colour)
    return fig


def plot_attention(weights: Tensor, support_y: Tensor, query_y: Tensor) -> Figure:
    """Heatmap of attention weights ``[Q, S]`` (rows: queries, columns: support), labelled by class."""
    weights_np = weights.detach().float().cpu().numpy()
    fig, ax = plt.subplots(
        figsize=(min(12, 1 + 0.3 * weights_np.shape[1]), min(12, 1 + 0.2 * weights_np.shape[0]))
    )
    image = ax.imshow(weights_np, aspect="auto", cmap="viridis", vmin=0)
    ax.set_xticks(range(len(support_y)), [str(int(y)) for y in support_y], fontsize=6)
    ax.set_yticks(range(len(query_y)), [str(int(y)) for y in query_y], fontsize=6)
    ax.set_xlabel("support (class)")
    ax.set_ylabel("query (true class)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """Render a figure to an ``[H, W, 3]`` uint8 array and close it."""
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array
