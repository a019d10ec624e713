"""Shared fixtures: where the real Omniglot data is, and a set-up DataModule on it.

The data root is ``$MATCHNET_DATA_ROOT`` (default ``<project>/data/omniglot``), the Vinyals split
lists ``$MATCHNET_SPLITS_DIR`` (default ``<data root>/splits/vinyals``). Tests using these fixtures
get the ``data`` marker; without the data they are skipped, or fail when ``$CI`` is set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from matchnet.data import OmniglotDataModule

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_FIXTURES = {"omniglot_root", "vinyals_split_dir", "omniglot_datamodule"}


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)
