"""matchnet.hydra_job: the job's output folder, overrides and sweep mode, inside and outside Hydra."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from matchnet.hydra_job import in_multirun, job_overrides, output_dir


@pytest.fixture
def hydra_job(tmp_path: Path) -> Iterator[Path]:
    """A Hydra runtime config as a job of a sweep sees it; cleared afterwards."""
    hydra = OmegaConf.structured(HydraConf)
    hydra.mode = RunMode.MULTIRUN
    hydra.runtime.output_dir = str(tmp_path / "3")
    hydra.overrides.task = ["model.fce=true", "+a='x=y'"]
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
    try:
        yield tmp_path / "3"
    finally:
        HydraConfig.instance().cfg = saved


def test_outside_hydra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert output_dir() == tmp_path
    assert job_overrides() == [] and not in_multirun()


def test_inside_a_sweep_job(hydra_job: Path) -> None:
    assert output_dir() == hydra_job
    assert job_overrides() == ["model.fce=true", "+a='x=y'"]
    assert in_multirun()
