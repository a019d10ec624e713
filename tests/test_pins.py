"""matchnet subclasses private Lightning classes (``matchnet.distributed``): the installed versions must
be those the suite was run on, and those classes must still have what matchnet relies on."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PINNED = ("pytorch-lightning", "wandb", "hydra-core", "hydra-optuna-sweeper", "optuna", "sqlalchemy")


def requirements() -> dict[str, SpecifierSet]:
    """``name: specifier`` of every quoted requirement line of pyproject.toml."""
    lines = re.findall(
        r'^\s*"([A-Za-z0-9_.\-]+)((?:[<>=!~][^"]*)?)",', (ROOT / "pyproject.toml").read_text(), re.M
    )
    return {name.lower(): SpecifierSet(spec) for name, spec in lines}


@pytest.mark.parametrize("package", PINNED)
def test_installed_version_is_the_pinned_one(package: str) -> None:
    spec = requirements()[package]
    assert spec, f"{package} has no version pin in pyproject.toml"
    installed = version(package)
    assert installed in spec, (
        f"{package} {installed} is installed but pyproject.toml pins {package}{spec}, the versions the "
        "test suite was run on; reinstall with `make install`, or run the suite on the new version and "
        "move the pin."
    )


def test_private_lightning_classes_still_fit() -> None:
    from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
    from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    changed = []
    for cls, members in (
        (_SubprocessScriptLauncher, ("launch", "_call_children_scripts", "_check_can_spawn_children")),
        (_ChildProcessObserver, ("_run", "run")),
    ):
        changed += [f"{cls.__name__}.{m}" for m in members if not callable(getattr(cls, m, None))]
    init = inspect.signature(_ChildProcessObserver.__init__).parameters
    if not {"main_pid", "child_processes"} <= set(init):
        changed.append(f"_ChildProcessObserver.__init__{tuple(init)}")
    launch = inspect.signature(_SubprocessScriptLauncher.launch).parameters
    if "trainer" not in launch:
        changed.append(f"_SubprocessScriptLauncher.launch{tuple(launch)}")
    from lightning_fabric.plugins.environments import LightningEnvironment

    launcher = _SubprocessScriptLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)
    changed += [
        f"_SubprocessScriptLauncher().{a}"
        for a in ("cluster_environment", "num_processes", "num_nodes", "procs")
        if not hasattr(launcher, a)
    ]
    if "num_processes" not in inspect.signature(_set_num_threads_if_needed).parameters:
        changed.append("_set_num_threads_if_needed(num_processes=...)")
    assert not changed, (
        f"Lightning's private classes that matchnet.distributed subclasses changed: {', '.join(changed)}. "
        f"Installed pytorch-lightning {version('pytorch-lightning')}; pin the version the suite passed on "
        "(pyproject.toml) or adapt matchnet/distributed.py."
    )
