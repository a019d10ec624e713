"""Types of the shared fixtures of ``tests/conftest.py``, for the tests' annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: tests/conftest.py imports this module before any library
    import pytorch_lightning as pl
    from omegaconf import DictConfig

#: ``compose_config(name="train", overrides=(), hydra=False)``
ComposeConfig = Callable[..., "DictConfig"]
#: ``make_trainer(**trainer_arguments)``
MakeTrainer = Callable[..., "pl.Trainer"]
