"""The validation episode figure: the support set a column per class, the queries framed by correctness."""

from __future__ import annotations

import numpy as np
import torch

from matchnet.plots import RIGHT, SUPPORT, WRONG, figure_to_array, plot_episode


def test_episode_figure_has_a_column_per_class_and_framed_queries() -> None:
    way, shot, side = 3, 2, 8
    support_x = torch.zeros(way * shot, 1, side, side)  # no ink: white
    support_y = torch.arange(way).repeat_interleave(shot)
    query_x = torch.ones(4, 1, side, side)  # all ink: black
    query_y, predicted = torch.tensor([0, 1, 2, 0]), torch.tensor([0, 2, 2, 1])

    fig = plot_episode(support_x, support_y, query_x, query_y, predicted, max_queries=3)
    (ax,) = fig.axes
    labels = [(text.get_text(), text.get_color()) for text in ax.texts]
    assert labels == [
        ("y=0", (0, 0, 0)),
        ("y=1", (0, 0, 0)),
        ("y=2", (0, 0, 0)),
        ("p=0 y=0", RIGHT),
        ("p=2 y=1", WRONG),
        ("p=2 y=2", RIGHT),
    ]
    canvas = np.asarray(ax.images[0].get_array())
    frame = (side + 4) ** 2 - side**2  # pixels of one 2-pixel frame
    counts = {colour: int(np.all(canvas == colour, axis=-1).sum()) for colour in (SUPPORT, RIGHT, WRONG)}
    assert counts == {SUPPORT: way * shot * frame, RIGHT: 2 * frame, WRONG: frame}
    assert int(np.all(canvas == 0, axis=-1).sum()) == 3 * side**2  # the three queries shown, in ink
    image = figure_to_array(fig)
    # Rendered at 2.5 screen pixels per image pixel: 3 columns of framed images, 2 shots and 1 query row.
    assert canvas.shape == (12 + 2 * (side + 6) + 12 + (side + 4 + 12), 3 * (side + 6), 3)
    assert image.dtype == np.uint8 and image.shape == (canvas.shape[0] * 5 // 2, canvas.shape[1] * 5 // 2, 3)
