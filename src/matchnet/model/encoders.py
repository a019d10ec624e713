"""Image embedding g' = f' of Matching Networks: the four-block ConvNet of Vinyals et al. (2016)."""

from __future__ import annotations

from torch import Tensor, nn

from matchnet.errors import MatchnetError


class Conv4(nn.Module):
    """``blocks`` x [conv3x3(hidden, padding=1) - BatchNorm2d - ReLU - MaxPool2d(2)], then flatten.

    Each block halves the side (floor), so 28x28 -> 1x1 (64 features) and 84x84 -> 5x5 (1600).

    Shapes: ``[B, in_channels, image_size, image_size] -> [B, embedding_dim]``.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, blocks: int = 4, image_size: int = 28) -> None:
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

    @staticmethod
    def output_dim(image_size: int, hidden: int = 64, blocks: int = 4) -> int:
        """Length of the embedding of an ``image_size`` x ``image_size`` image."""
        side = image_size
        for _ in range(blocks):
            side //= 2
        return hidden * side * side

    def forward(self, x: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, embedding_dim]``."""
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise MatchnetError(
                f"Conv4 expects images of shape [B, {', '.join(map(str, expected))}] "
                f"(model.encoder.in_channels, model.encoder.image_size) but got {list(x.shape)}; "
                "set them to match the data (data.image_size)."
            )
        return self.features(x)
