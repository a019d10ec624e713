"""``conf/data/<name>.yaml`` against its DataModule's constructor: one key per argument, at its default."""

from __future__ import annotations

import inspect
from collections.abc import Collection

from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig, OmegaConf

from helpers.paths import CONF


def check_config_matches_constructor(name: str, cls: type, own: Collection[str] = ()) -> DictConfig:
    """Assert that ``conf/data/<name>.yaml`` targets ``cls``, has exactly its constructor's arguments as
    keys, and gives each the constructor's default: except interpolated keys (``seed: ${seed}``, a root from
    the environment), which follow the run, and the keys in ``own``, which the caller checks. Returns the
    config."""
    config = OmegaConf.load(CONF / "data" / f"{name}.yaml")
    parameters = inspect.signature(cls).parameters
    assert get_class(config._target_) is cls, config._target_
    assert sorted(config.keys())[1:] == sorted(parameters)  # "_target_" sorts first
    for key, parameter in parameters.items():
        if key in own or OmegaConf.is_interpolation(config, key):
            continue
        value, default = config[key], parameter.default
        if isinstance(value, ListConfig) and default is not None:  # a list in YAML, a list or tuple in Python
            value, default = tuple(value), tuple(default)
        assert value == default, key
    return config
