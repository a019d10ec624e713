"""Fixtures with fake Omniglot archives (see omniglot_fakes.py)."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from omniglot_fakes import FAKE_COUNTS, fake_members

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
        members = fake_sets[set_name] if members is None else members
        root.mkdir(parents=True, exist_ok=True)
        if folder:
            for name, data in members.items():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
            return root / f"images_{set_name}"
        path = root / f"images_{set_name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return path

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
