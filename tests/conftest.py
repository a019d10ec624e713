"""Shared fixtures: where the real Omniglot data is, a set-up DataModule on it, the project's composed
config (``compose_config``) and a quiet CPU trainer (``make_trainer``).

The data root is ``$MATCHNET_DATA_ROOT`` (default ``<project>/data/omniglot``), the Vinyals split
lists ``$MATCHNET_SPLITS_DIR`` (default ``<data root>/splits/vinyals``). Tests using these fixtures
get the ``data`` marker; without the data they are skipped, or fail when ``$CI`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from helpers.fixture_types import ComposeConfig, MakeTrainer

if TYPE_CHECKING:
    import pytorch_lightning as pl
    from omegaconf import DictConfig

    from matchnet.data import OmniglotDataModule

# The libraries are imported where they are used, not here: pytest-xdist's controlling process loads
# this file too, and importing torch and Lightning there would delay every worker's start by seconds.

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_FIXTURES = {"omniglot_root", "vinyals_split_dir", "omniglot_datamodule"}
#: Markers of the long tests (pyproject.toml describes them); ``make test-quick`` deselects ``e2e``.
LONG_MARKERS = ("slow", "e2e")


def _require(paths: list[Path], what: str) -> None:
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        message = (
            f"{what} not found: {', '.join(missing)}. Put the Omniglot archives (images_background.zip, "
            f"images_evaluation.zip) and splits/vinyals/*.txt in data/omniglot/ or point MATCHNET_DATA_ROOT "
            f"(and MATCHNET_SPLITS_DIR) at them."
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def omniglot_root() -> Path:
    """The folder with the real Omniglot archives."""
    root = Path(os.environ.get("MATCHNET_DATA_ROOT", PROJECT_ROOT / "data" / "omniglot"))
    _require([root / "images_background.zip", root / "images_evaluation.zip"], "Omniglot archives")
    return root


@pytest.fixture(scope="session")
def vinyals_split_dir(omniglot_root: Path) -> Path:
    """The folder with the published Vinyals split lists ``{train,val,test}.txt``."""
    folder = Path(os.environ.get("MATCHNET_SPLITS_DIR", omniglot_root / "splits" / "vinyals"))
    _require([folder / f"{stage}.txt" for stage in ("train", "val", "test")], "Vinyals split lists")
    return folder


@pytest.fixture(scope="session")
def omniglot_datamodule(omniglot_root: Path) -> OmniglotDataModule:
    """The default DataModule on the real data, set up (builds the cache once); do not modify it."""
    from matchnet.data import OmniglotDataModule

    datamodule = OmniglotDataModule(root=str(omniglot_root), download=False)
    datamodule.prepare_data()
    datamodule.setup()
    return datamodule


@pytest.fixture
def compose_config() -> ComposeConfig:
    """``compose_config(name="train", overrides=(), hydra=False)``: conf/<name>.yaml composed with the
    overrides as the entry points compose it (``hydra=True`` keeps the ``hydra`` node)."""

    def compose_(name: str = "train", overrides: Sequence[str] = (), hydra: bool = False) -> DictConfig:
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
            return compose(name, overrides=list(overrides), return_hydra_config=hydra)

    return compose_


@pytest.fixture
def make_trainer(tmp_path: Path) -> MakeTrainer:
    """``make_trainer(**settings)``: a CPU ``pl.Trainer`` writing under ``tmp_path``, without logger,
    progress bar or model summary; ``settings`` are further Trainer arguments (or replace these)."""

    def make(**settings: Any) -> pl.Trainer:
        import pytorch_lightning as pl

        quiet = {
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "default_root_dir": tmp_path,
        }
        return pl.Trainer(**(quiet | settings))

    return make


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its share of the cores for torch's threads: several
    workers with a thread per core each would oversubscribe the machine (several times slower)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)
    # Files with long tests (slow or e2e) first: pytest-xdist hands out whole files in this order, so the
    # long ones start early instead of finishing the run on one worker while the others sit idle.
    long_files = {item.path for item in items if any(item.get_closest_marker(m) for m in LONG_MARKERS)}
    items.sort(key=lambda item: item.path not in long_files)
