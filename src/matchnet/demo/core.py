"""The demo's support set and inference, independent of the web page.

Images are prepared by :class:`matchnet.classifier.OneShotClassifier` (the conversion ``src/predict.py``
uses: the checkpoint's image size and channels, ink bright on a dark background). The support set is
kept class by class in order of first appearance, as ``OneShotClassifier.fit`` orders it, so the
probabilities are the classifier's. What the demo adds is the split of one forward pass in two:

- support side, once per support set: g(x_i, S), the encoder g' and, with Full Context Embeddings,
  the bidirectional LSTM over the whole support set; cached in the :class:`SupportSet` until it changes;
- query side, per query: f'(x^), the attention LSTM over the cached g (with FCE), and the attention
  a(x^, x_i) = softmax_i c(f(x^), g(x_i)), whose sum over each class is P(y = c | x^, S).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from matchnet.classifier import OneShotClassifier
from matchnet.errors import MatchnetError

#: Largest uploaded file accepted, in bytes.
MAX_UPLOAD_BYTES = 10 * 2**20
#: Largest uploaded image accepted, in pixels (width x height).
MAX_UPLOAD_PIXELS = 4096 * 4096
#: Most images a support set may hold.
MAX_SUPPORT = 200
#: Longest label accepted, in characters.
MAX_LABEL = 40
#: A prepared image whose values span less than this is taken to be blank.
MIN_CONTRAST = 0.2
#: Side in pixels of the enlarged previews of what the network sees.
PREVIEW_SIDE = 84


def clean_label(label: str | None) -> str:
    """The label with surrounding spaces removed; an empty or overlong label raises MatchnetError."""
    text = (label or "").strip()
    if not text:
        raise MatchnetError(
            "The label is empty; type the name of the class this drawing shows (e.g. 'alpha') in the label "
            "box, then press 'Add to support' again."
        )
    if len(text) > MAX_LABEL:
        raise MatchnetError(
            f"The label {text[:20]!r}... has {len(text)} characters; use at most {MAX_LABEL}."
        )
    return text


def read_upload(
    path: str | os.PathLike[str], max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_UPLOAD_PIXELS
) -> Image.Image:
    """Open an uploaded image file, refusing files that are too large or not images (MatchnetError)."""
    file = Path(path)
    size = file.stat().st_size
    if size > max_bytes:
        raise MatchnetError(
            f"The uploaded file {file.name} is {size / 2**20:.1f} MB; the limit is "
            f"{max_bytes / 2**20:.0f} MB. "
            "Upload a smaller image: a drawing needs no more than a few hundred pixels a side."
        )
    try:
        image = Image.open(file)
        if image.width * image.height > max_pixels:
            side = math.isqrt(max_pixels)
            raise MatchnetError(
                f"The uploaded image {file.name} is {image.width}x{image.height} pixels; the limit is "
                f"{side}x{side}. Upload a smaller image."
            )
        image.load()
    except MatchnetError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MatchnetError(
            f"The uploaded file {file.name} is not an image that can be read ({type(err).__name__}); upload "
            "a PNG or JPEG image of a drawing."
        ) from err
    return image


def preview(x: Tensor, side: int = PREVIEW_SIDE) -> Image.Image:
    """A prepared image ``[C, S, S]`` as the network sees it, enlarged without smoothing to ``side``."""
    pixels = (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    image = Image.fromarray(pixels[0]) if pixels.shape[0] == 1 else Image.fromarray(pixels.transpose(1, 2, 0))
    return image.resize((side, side), Image.Resampling.NEAREST)


@dataclass(frozen=True)
class Example:
    """One support image: its label, the prepared tensor ``[C, S, S]`` and where it came from."""

    label: str
    x: Tensor
    source: str = "drawing"


class SupportSet:
    """The labelled support images of one page session, and their cached embeddings.

    ``examples`` is in the order they were added; :meth:`episode_order` puts them class by class
    (classes in order of first appearance), which is the order the network reads them in.
    Every change bumps ``version``, which invalidates the cached embeddings.
    """

    def __init__(self, max_size: int = MAX_SUPPORT) -> None:
        self.max_size = max_size
        self.examples: list[Example] = []
        self.version = 0
        self._cache: tuple[int, int, Tensor] | None = None  # (version, model id, g [S, D])

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def classes(self) -> list[str]:
        """The labels in order of first appearance."""
        return list(dict.fromkeys(example.label for example in self.examples))

    def _changed(self) -> None:
        self.version += 1
        self._cache = None

    def add(self, example: Example) -> None:
        if len(self.examples) >= self.max_size:
            raise MatchnetError(
                f"The support set already holds {len(self.examples)} images, the most it can hold; remove "
                "some or clear it first."
            )
        self.examples.append(example)
        self._changed()

    def extend(self, examples: Iterable[Example]) -> None:
        for example in examples:
            self.add(example)

    def remove(self, index: int) -> Example:
        """Remove and return example ``index`` (0-based, in the order added)."""
        if not 0 <= index < len(self.examples):
            raise MatchnetError(
                f"There is no support example #{index + 1}; the support set has {len(self.examples)}. "
                "Choose one from the list."
            )
        example = self.examples.pop(index)
        self._changed()
        return example

    def clear(self) -> None:
        self.examples.clear()
        self._changed()

    def episode_order(self) -> list[int]:
        """Indices into ``examples``, class by class (as ``OneShotClassifier.fit`` orders a support set)."""
        index = {label: i for i, label in enumerate(self.classes)}
        return sorted(range(len(self.examples)), key=lambda i: index[self.examples[i].label])

    def cached(self, model_id: int) -> Tensor | None:
        if self._cache is not None and self._cache[:2] == (self.version, model_id):
            return self._cache[2]
        return None

    def store(self, model_id: int, g: Tensor) -> None:
        self._cache = (self.version, model_id, g)

    def __deepcopy__(self, memo: dict[int, Any]) -> SupportSet:
        copy = SupportSet(self.max_size)
        copy.examples = list(self.examples)  # examples are immutable
        copy.version = self.version
        return copy


@dataclass(frozen=True)
class Prediction:
    """One classified query.

    ``probs[c]`` is P(y = classes[c] | x^, S); ``attention`` lists ``(index, a)`` for every support
    example (``index`` into ``SupportSet.examples``), highest weight first; ``server_ms`` is the time
    the classification took.
    """

    label: str
    classes: list[str]
    probs: list[float]
    attention: list[tuple[int, float]]
    server_ms: float

    def as_dict(self, support: SupportSet) -> dict[str, Any]:
        return {
            "label": self.label,
            "probs": {c: round(p, 6) for c, p in zip(self.classes, self.probs, strict=True)},
            "attention": [
                {"index": i, "label": support.examples[i].label, "weight": round(a, 6)}
                for i, a in self.attention
            ],
            "server_ms": round(self.server_ms, 2),
        }


class DemoModel:
    """A trained Matching Network with the support embeddings split from the per-query work."""

    def __init__(self, classifier: OneShotClassifier) -> None:
        readout = getattr(classifier.net, "readout", "attention")
        if readout != "attention":
            raise MatchnetError(
                f"The checkpoint classifies with model.readout={readout!r}; the demo shows the attention "
                "over the support images, which only decides the class with readout='attention'. Pass a "
                "checkpoint trained with the attention readout (e.g. one of checkpoints/*.ckpt)."
            )
        self.classifier = classifier
        self.net = classifier.net.eval()

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> DemoModel:
        return cls(OneShotClassifier.from_checkpoint(path, device=device))

    @property
    def image_size(self) -> int:
        return self.classifier.image_size

    @property
    def channels(self) -> int:
        return self.classifier.channels

    def prepare(self, image: Image.Image, what: str = "The image") -> Tensor:
        """``image`` converted like the training images, ``[C, S, S]``; a blank image raises MatchnetError."""
        x = self.classifier.prepare(image)[0]
        if float(x.max() - x.min()) < MIN_CONTRAST:
            raise MatchnetError(
                f"{what} is empty (no strokes found); draw a character with the brush, or upload an image "
                "of one, then try again."
            )
        return x

    def _encode(self, x: Tensor) -> Tensor:
        x = x.to(self.classifier.device)
        if self.net.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net.encoder(x)

    @torch.no_grad()
    def embed_support(self, support_x: Tensor) -> Tensor:
        """g(x_i, S) ``[S, D]``: the encoder and, with FCE, the bidirectional LSTM over the whole set."""
        g = self._encode(support_x)
        return self.net.context(g) if self.net.context is not None else g

    @torch.no_grad()
    def log_attention(self, g: Tensor, query_x: Tensor) -> Tensor:
        """``log a(x^, x_i)`` ``[Q, S]`` from support embeddings ``g [S, D]`` (see ``embed_support``)."""
        f = self._encode(query_x)
        if self.net.attention_lstm is not None:
            f = self.net.attention_lstm(f, g)
        return self.net.kernel(f, g)

    def support_embeddings(self, support: SupportSet) -> tuple[list[int], Tensor]:
        """The episode order of ``support`` and its embeddings, computed once per version of the set."""
        order = support.episode_order()
        g = support.cached(id(self))
        if g is None:
            g = self.embed_support(torch.stack([support.examples[i].x for i in order]))
            support.store(id(self), g)
        return order, g

    def classify(self, support: SupportSet, query: Tensor) -> Prediction:
        """Classify one prepared query ``[C, S, S]`` against ``support`` (at least two classes)."""
        classes = support.classes
        if len(classes) < 2:
            have = f"1 class ({classes[0]!r})" if classes else "no examples"
            raise MatchnetError(
                f"The support set has {have}; classifying needs at least two classes. Add a drawing with "
                "another label, or load an alphabet."
            )
        started = time.perf_counter()
        order, g = self.support_embeddings(support)
        weights = self.log_attention(g, query.unsqueeze(0))[0].exp().cpu()  # [S] in episode order
        index = {label: c for c, label in enumerate(classes)}
        members = torch.tensor([index[support.examples[i].label] for i in order])
        probs = torch.zeros(len(classes)).index_add_(0, members, weights)
        ranked = sorted(zip(order, weights.tolist(), strict=True), key=lambda item: -item[1])
        label = classes[int(probs.argmax())]
        elapsed = (time.perf_counter() - started) * 1000
        return Prediction(label, classes, probs.tolist(), ranked, elapsed)
