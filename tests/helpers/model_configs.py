"""The model config as Hydra composes it, for tests that build modules without Hydra."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from helpers.paths import CONF

MODEL_CONF = CONF / "model"


def load_model_config(encoder: str = "conv4") -> DictConfig:
    """``conf/model/matchnet.yaml`` with ``conf/model/encoder/<encoder>.yaml`` as its ``encoder``.

    What ``model=matchnet model/encoder=<encoder>`` composes to (the defaults list resolved);
    interpolations such as ``${data.image_size}`` are left for the caller to set or resolve.
    """
    cfg = OmegaConf.load(MODEL_CONF / "matchnet.yaml")
    cfg.pop("defaults", None)
    cfg.encoder = OmegaConf.load(MODEL_CONF / "encoder" / f"{encoder}.yaml")
    return cfg
