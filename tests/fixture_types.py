"""Types of the shared fixtures of ``tests/conftest.py``, for the tests' annotations."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
from omegaconf import DictConfig

#: ``compose_config(name="train", overrides=(), hydra=False)``
ComposeConfig = Callable[..., DictConfig]
#: ``make_trainer(**trainer_arguments)``
MakeTrainer = Callable[..., pl.Trainer]
