"""The pixel baseline of Vinyals et al. (2016), Table 1: the image itself as its embedding.

``Pixels`` has no parameters: it flattens the (optionally per-channel normalised) image. In a
:class:`~matchnet.model.MatchingNetwork` without FCE, with the cosine kernel and the ``nearest``
read-out (``conf/model/pixels.yaml``), a query takes the class of the support image whose pixels have
the highest cosine similarity with its own: the paper's "Pixels" row (nearest neighbour, cosine).
Being parameter-free it needs no training and no checkpoint:

    python src/eval.py model=pixels data.way=20 data.shot=1

Polarity matters to a cosine on raw pixels. matchnet's Omniglot images are ink = 1 on a background of
0; the archives' PNGs are the other way round (black strokes on white). With the background at 1 every
image shares most of its pixels with every other, so the cosine separates characters less well:
``model.encoder.invert=true`` (x -> 1 - x) measures that variant, which comes much closer to the
paper's row (results/omniglot.md has both, measured on the same episodes).

    python src/eval.py model=pixels model.encoder.invert=true data.way=20 data.shot=1
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from matchnet.errors import MatchnetError
from matchnet.model.encoders import Normalize, _check_input


class Pixels(nn.Module):
    """The flattened image: ``[B, in_channels, image_size, image_size] -> [B, in_channels * image_size**2]``.

    ``mean`` / ``std`` (one value per channel, or None): inputs are normalised first, as in the other
    encoders (``Normalize``); the cosine kernel then normalises each embedding to unit length.
    ``invert``: use ``1 - x`` (images in [0, 1]) before normalising, i.e. the other polarity.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        invert: bool = False,
    ) -> None:
        super().__init__()
        for key, value in (("in_channels", in_channels), ("image_size", image_size)):
            if value < 1:
                raise MatchnetError(f"model.encoder.{key}={value} must be a positive integer.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = in_channels * image_size * image_size
        self.normalize = Normalize(mean, std, in_channels)
        self.invert = bool(invert)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, embedding_dim]``."""
        _check_input("Pixels", x, self.in_channels, self.image_size)
        if self.invert:
            x = 1 - x
        return self.normalize(x).flatten(1)
