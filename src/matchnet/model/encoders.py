"""Image embeddings g' = f' of Matching Networks: the four-block ConvNet of Vinyals et al. (2016) and
the ResNet-12 of later few-shot work (TADAM, MetaOptNet), each after an optional per-channel
normalisation of its [0, 1] input images."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from matchnet.errors import MatchnetError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel; the identity when ``mean`` and ``std`` are None.

    The constants are config values (``model.encoder.mean`` / ``std``, stored with the checkpoint),
    so they are non-persistent buffers: state dicts are the same with and without them.

    Shapes: ``[B, C, H, W] -> [B, C, H, W]``, ``C = len(mean)``.
    """

    def __init__(
        self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None, channels: int = 1
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise MatchnetError("model.encoder.mean and model.encoder.std must be set together or both null.")
        self.active = mean is not None
        if mean is None or std is None:
            return
        mean, std = [float(v) for v in mean], [float(v) for v in std]
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise MatchnetError(
                f"model.encoder.mean={mean} / std={std} must have one value per input channel "
                f"({channels}), std > 0; set them (or data.mean / data.std) accordingly."
            )
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std if self.active else x


def _check_input(name: str, x: Tensor, channels: int, image_size: int) -> None:
    expected = (channels, image_size, image_size)
    if x.dim() != 4 or tuple(x.shape[1:]) != expected:
        raise MatchnetError(
            f"{name} expects images of shape [B, {', '.join(map(str, expected))}] "
            f"(model.encoder.in_channels, model.encoder.image_size) but got {list(x.shape)}; "
            "set them to match the data (data.image_size)."
        )


class Conv4(nn.Module):
    """``blocks`` x [conv3x3(hidden, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2)], then flatten.

    Each block halves the side (floor), so 28x28 -> 1x1 (64 features) and 84x84 -> 5x5 (1600).
    ``mean`` / ``std`` (one value per channel, or None): inputs are normalised first (``Normalize``).

    Shapes: ``[B, in_channels, image_size, image_size] -> [B, embedding_dim]``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        blocks: int = 4,
        image_size: int = 28,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("in_channels", in_channels), ("hidden", hidden), ("blocks", blocks)):
            if value < 1:
                raise MatchnetError(f"model.encoder.{key}={value} must be a positive integer.")
        if image_size < 2**blocks:
            raise MatchnetError(
                f"model.encoder.image_size={image_size} is too small for model.encoder.blocks={blocks}: "
                f"each block halves the image, so it must be at least 2**blocks = {2**blocks}."
            )
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = self.output_dim(image_size, hidden, blocks)
        layers: list[nn.Module] = []
        for i in range(blocks):
            layers += [
                nn.Conv2d(in_channels if i == 0 else hidden, hidden, kernel_size=3, padding=1),
                nn.BatchNorm2d(hidden),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.normalize = Normalize(mean, std, in_channels)

    @staticmethod
    def output_dim(image_size: int, hidden: int = 64, blocks: int = 4) -> int:
        """Length of the embedding of an ``image_size`` x ``image_size`` image."""
        side = image_size
        for _ in range(blocks):
            side //= 2
        return hidden * side * side

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, embedding_dim]``."""
        _check_input("Conv4", x, self.in_channels, self.image_size)
        return self.features(self.normalize(x))


class ResidualBlock(nn.Module):
    """ResNet-12 block: 3 x [conv3x3 - BatchNorm2d] with LeakyReLU(0.1) between and after, plus a
    conv1x1-BatchNorm2d shortcut, then MaxPool2d(2).

    Shapes: ``[B, in_channels, H, W] -> [B, out_channels, H // 2, W // 2]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [
                nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
            ]
            if i < 2:
                layers.append(nn.LeakyReLU(0.1))
        self.body = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(nn.Module):
    """ResNet-12 (Oreshkin et al. 2018; Lee et al. 2019): four ``ResidualBlock`` s of ``channels``
    filters (64, 160, 320, 640), each halving the side, then global average pooling.

    84x84 -> 5x5 x 640 -> 640 features (``embedding_dim = channels[-1]``). Far heavier than Conv4:
    meant for GPUs. ``mean`` / ``std``: inputs are normalised first (``Normalize``).

    Shapes: ``[B, in_channels, image_size, image_size] -> [B, embedding_dim]``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 160, 320, 640),
        image_size: int = 84,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        widths = [int(c) for c in channels]
        if in_channels < 1 or not widths or min(widths) < 1:
            raise MatchnetError(
                f"model.encoder.in_channels={in_channels} and model.encoder.channels={widths} must be "
                "positive integers (channels: one width per residual block, e.g. [64, 160, 320, 640])."
            )
        if image_size < 2 ** len(widths):
            raise MatchnetError(
                f"model.encoder.image_size={image_size} is too small for {len(widths)} residual blocks: each "
                f"halves the image, so it must be at least {2 ** len(widths)}."
            )
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = widths[-1]
        self.normalize = Normalize(mean, std, in_channels)
        blocks = [ResidualBlock(a, b) for a, b in zip([in_channels, *widths[:-1]], widths, strict=True)]
        self.features = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, embedding_dim]``."""
        _check_input("ResNet12", x, self.in_channels, self.image_size)
        return self.features(self.normalize(x))
