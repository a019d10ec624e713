"""Small checkpoints and drawings made on the fly: what the classifier, demo, predict and baseline tests
feed the library instead of a trained model and real Omniglot images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw

from helpers.model_configs import load_model_config
from matchnet.module import MatchingNetModule

SIZE = 28


def model_config(**overrides: object) -> dict:
    cfg = load_model_config()
    cfg.encoder.image_size = SIZE
    return OmegaConf.to_container(OmegaConf.merge(cfg, overrides), resolve=True)


def save_checkpoint(path: Path, data: dict | None = None, seed: int = 0, **model: object) -> Path:
    """A checkpoint like src/train.py writes (randomly initialised weights, data settings stored)."""
    torch.manual_seed(seed)
    module = MatchingNetModule(
        model=model_config(**model),
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
        data={"image_size": SIZE, "way": 5, "shot": 1} if data is None else data,
    )
    torch.save(
        {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(), "global_step": 0}, path
    )
    return path


def strokes(seed: int, size: tuple[int, int] = (60, 45)) -> Image.Image:
    """A random black-on-white line drawing, like an Omniglot character."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        points = [(int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))) for _ in range(3)]
        draw.line(points, fill=0, width=3)
    return image


def images(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 1, 28, 28]`` random prepared images (ink 1, background 0)."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, SIZE, SIZE, generator=gen) > 0.7).float()
