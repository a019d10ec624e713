"""Classify new images from a few labelled examples with a trained Matching Network.

    from matchnet.classifier import OneShotClassifier

    clf = OneShotClassifier.from_checkpoint("checkpoints/omniglot-lake-20w1s.ckpt")
    clf.fit(["a.png", "b.png", "b2.png"], ["alpha", "beta", "beta"])   # K-shot: repeat a label
    labels, probs = clf.predict(["query1.png", "query2.png"])           # probs: [Q, len(clf.classes)]

Images are converted exactly like the training images (``matchnet.data.images.load_image``:
grayscale with ink 1 on background 0, or RGB for 3-channel models) at the image size and channel
count stored in the checkpoint. The network runs in eval mode (BatchNorm
uses its running statistics, as ``src/eval.py`` does) without gradients.

What ``src/predict.py`` runs on folders of images is :mod:`matchnet.predicting`.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from matchnet.checkpoints import load_module
from matchnet.data.images import image_pixels, ink_tensor, load_image
from matchnet.errors import MatchnetError
from matchnet.model import MatchingNetwork

#: One image: a file path, a PIL image, or a prepared tensor ``[C, S, S]``
#: (a ``[N, C, S, S]`` tensor counts as N images).
ImageLike = str | os.PathLike | Image.Image | Tensor
DEFAULT_CHECKPOINT = Path("checkpoints") / "omniglot-lake-20w1s.ckpt"


def _image_size_and_channels(hparams: Any) -> tuple[int, int]:
    """``(image_size, channels)`` from a checkpoint's stored data settings, else from its encoder settings."""
    data = dict(hparams.get("data") or {})
    encoder = dict((hparams.get("model") or {}).get("encoder") or {})
    size = data.get("image_size", encoder.get("image_size"))
    channels = data.get("channels", encoder.get("in_channels", 1))
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise MatchnetError(
            f"The checkpoint stores no usable image size (data.image_size={size!r}); it was not written by "
            "matchnet's src/train.py. Pass a checkpoint from a matchnet training run."
        )
    return size, int(channels)


class OneShotClassifier:
    """A trained Matching Network as a classifier of new classes, given a few labelled images of each.

    Args:
        net: the trained network; it is put in eval mode and moved to ``device``.
        image_size: side S that images are resized to (the training images' size).
        channels: image channels C the network expects.
        device: where the network runs.
        batch_size: queries classified per forward pass.
    """

    def __init__(
        self,
        net: MatchingNetwork,
        image_size: int,
        channels: int = 1,
        device: str | torch.device = "cpu",
        batch_size: int = 256,
    ) -> None:
        if batch_size < 1:
            raise MatchnetError(f"batch_size={batch_size} must be a positive integer.")
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.batch_size = int(batch_size)
        self.classes: list[Hashable] = []
        self._support_x: Tensor | None = None  # [S, C, H, W]
        self._support_y: Tensor | None = None  # [S] int64 indices into classes

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], device: str | torch.device = "cpu", batch_size: int = 256
    ) -> OneShotClassifier:
        """Load a checkpoint written by ``src/train.py``; image size and channels come from its settings.

        A missing, unreadable, foreign or incompatible checkpoint raises :class:`MatchnetError`.
        """
        module = load_module(path, map_location=device)
        size, channels = _image_size_and_channels(module.hparams)
        return cls(module.net, size, channels, device=device, batch_size=batch_size)

    # ------------------------------------------------------------------ images

    def _tensor(self, image: Tensor, name: str) -> Tensor:
        """A prepared ``[N, C, S, S]`` float tensor from a ``[C, S, S]`` or ``[N, C, S, S]`` tensor."""
        expected = (self.channels, self.image_size, self.image_size)
        batch = image.unsqueeze(0) if image.dim() == 3 else image
        if batch.dim() != 4 or tuple(batch.shape[1:]) != expected:
            raise MatchnetError(
                f"{name} is a tensor of shape {list(image.shape)}; the checkpoint expects prepared images "
                f"[C, S, S] or [N, C, S, S] with C, S = {self.channels}, {self.image_size}. Pass file paths "
                "or PIL images instead, and they are converted like the training images."
            )
        if batch.dtype == torch.uint8:
            return batch.float().div(255)
        if not batch.is_floating_point():
            raise MatchnetError(f"{name} has dtype {batch.dtype}; pass float images in [0, 1] (ink 1).")
        return batch.float()

    def _pil(self, image: Image.Image) -> Tensor:
        """A PIL image converted exactly like ``load_image`` converts a file: ``[C, S, S]``."""
        return ink_tensor(image_pixels(image, self.image_size, self.channels))

    def prepare(self, images: ImageLike | Iterable[ImageLike]) -> Tensor:
        """Convert images like the training images: ``[N, C, S, S]`` float32 in [0, 1] (gray: ink 1).

        ``images`` is one image or a sequence of them: file paths (any PIL-readable format), PIL
        images, prepared tensors ``[C, S, S]``, or one tensor ``[N, C, S, S]``.
        """
        if isinstance(images, (str, os.PathLike, Image.Image, Tensor)):
            images = [images]
        batches: list[Tensor] = []
        for i, image in enumerate(images):
            if isinstance(image, Tensor):
                batches.append(self._tensor(image, f"images[{i}]"))
            elif isinstance(image, Image.Image):
                batches.append(self._pil(image).unsqueeze(0))
            elif isinstance(image, (str, os.PathLike)):
                batches.append(load_image(image, self.image_size, self.channels).unsqueeze(0))
            else:
                raise MatchnetError(
                    f"images[{i}] is a {type(image).__name__}; pass file paths, PIL images or tensors "
                    "[C, S, S]."
                )
        if not batches:
            return torch.empty(0, self.channels, self.image_size, self.image_size)
        return torch.cat(batches)

    # ------------------------------------------------------------------ fit / predict

    def fit(self, images: ImageLike | Iterable[ImageLike], labels: Sequence[Hashable]) -> OneShotClassifier:
        """Store the support set: ``images[i]`` is an example of ``labels[i]``.

        Repeat a label for several examples of one class (K-shot). ``classes`` lists the labels in
        the order they first appear; it is the column order of :meth:`predict`'s probabilities.
        """
        x = self.prepare(images)
        labels = list(labels)
        if x.shape[0] == 0:
            raise MatchnetError("fit() got no support images; pass at least one labelled image per class.")
        if len(labels) != x.shape[0]:
            raise MatchnetError(
                f"fit() got {x.shape[0]} support images but {len(labels)} labels; pass one label per image."
            )
        classes = list(dict.fromkeys(labels))
        index = {label: i for i, label in enumerate(classes)}
        y = torch.tensor([index[label] for label in labels], dtype=torch.int64)
        order = torch.argsort(y, stable=True)  # class by class, as in a training episode
        self.classes = classes
        self._support_x, self._support_y = x[order].to(self.device), y[order].to(self.device)
        return self

    @torch.no_grad()
    def predict_proba(self, images: ImageLike | Iterable[ImageLike]) -> Tensor:
        """``P(y = c | x^, S)`` for each query: ``[Q, len(classes)]`` on the CPU, rows sum to 1."""
        if self._support_x is None or self._support_y is None:
            raise MatchnetError(
                "predict() was called before fit(); call fit(images, labels) with the support set first."
            )
        queries = self.prepare(images)
        self.net.eval()
        n_way = len(self.classes)
        out = [
            self.net(self._support_x, self._support_y, batch.to(self.device), n_way).exp().cpu()
            for batch in queries.split(self.batch_size)
        ]
        return torch.cat(out) if out else torch.empty(0, n_way)

    def predict(self, images: ImageLike | Iterable[ImageLike]) -> tuple[list[Hashable], Tensor]:
        """Classify queries: ``(labels [Q], probs [Q, len(classes)])``, probs in ``classes`` order."""
        probs = self.predict_proba(images)
        return [self.classes[i] for i in probs.argmax(dim=1).tolist()], probs
