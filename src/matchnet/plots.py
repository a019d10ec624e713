"""Figures: an episode with its predictions, attention heatmaps, learning curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402


def _show(ax: plt.Axes, image: Tensor, title: str, color: str = "black") -> None:
    """Draw one image ``[C, H, W]`` in [0, 1] without axes."""
    array = image.detach().float().cpu().permute(1, 2, 0).numpy()
    ax.imshow(array.squeeze(-1) if array.shape[-1] == 1 else array.clip(0, 1), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title, fontsize=7, color=color)
    ax.axis("off")


def plot_episode(
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    query_y: Tensor,
    predicted: Tensor,
    max_queries: int = 10,
) -> Figure:
    """Support set on top, up to ``max_queries`` queries below (green: right, red: wrong).

    Args:
        support_x: ``[S, C, H, W]``; support_y: ``[S]``; query_x: ``[Q, C, H, W]``;
        query_y: ``[Q]``; predicted: ``[Q]`` predicted labels.
    """
    n_support, n_query = len(support_x), min(len(query_x), max_queries)
    cols = max(n_support, n_query)
    fig, axes = plt.subplots(2, cols, figsize=(0.9 * cols + 0.5, 2.2), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n_support):
        _show(axes[0, i], support_x[i], f"S y={int(support_y[i])}")
    for i in range(n_query):
        right = int(predicted[i]) == int(query_y[i])
        _show(
            axes[1, i], query_x[i], f"p={int(predicted[i])} y={int(query_y[i])}", "green" if right else "red"
        )
    fig.tight_layout()
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
