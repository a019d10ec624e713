"""Fixtures with fake Omniglot archives (see tests/helpers/omniglot_fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.omniglot_fakes import FAKE_COUNTS, fake_members, write_fake_set
from matchnet.data import OmniglotDataModule, omniglot


@pytest.fixture(scope="session")
def fake_sets() -> dict[str, dict[str, bytes]]:
    """Both fake sets, member path -> PNG bytes (made once)."""
    return {set_name: fake_members(set_name) for set_name in omniglot.SETS}


@pytest.fixture
def write_fake(fake_sets: dict[str, dict[str, bytes]]) -> Callable[..., Path]:
    """``write_fake(root, set_name, folder=False, members=None)``: a fake zip (or extracted folder)."""

    def write(
        root: Path, set_name: str, folder: bool = False, members: dict[str, bytes] | None = None
    ) -> Path:
        return write_fake_set(root, set_name, folder, fake_sets[set_name] if members is None else members)

    return write


@pytest.fixture
def fake_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake archives' counts the expected ones."""
    monkeypatch.setattr(omniglot, "EXPECTED_COUNTS", FAKE_COUNTS)


@pytest.fixture
def fake_root(tmp_path: Path, write_fake: Callable[..., Path], fake_counts: None) -> Path:
    """A writable data root holding both fake zips."""
    root = tmp_path / "omniglot"
    for set_name in omniglot.SETS:
        write_fake(root, set_name)
    return root


@pytest.fixture
def fake_datamodule(fake_root: Path) -> Callable[..., OmniglotDataModule]:
    """``fake_datamodule(**settings)``: a set-up OmniglotDataModule on the fake archives."""

    def make(**settings: object) -> OmniglotDataModule:
        datamodule = OmniglotDataModule(root=str(fake_root), download=False, **settings)
        datamodule.setup()
        return datamodule

    return make
