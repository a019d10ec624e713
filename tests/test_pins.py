"""The installed versions must be those the suite was run on, and the private Lightning parts that
``matchnet.lightning_internals`` (the only module using them) relies on must still be there."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import pytorch_lightning as pl
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


def test_private_lightning_parts_still_fit() -> None:
    """Exactly the private parts of Lightning that ``matchnet.lightning_internals`` uses."""
    from lightning_fabric.plugins.environments import LightningEnvironment
    from lightning_fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
    from lightning_fabric.utilities.distributed import _set_num_threads_if_needed
    from pytorch_lightning.loops import _TrainingEpochLoop
    from pytorch_lightning.strategies import DDPStrategy
    from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    changed = []
    # HydraSubprocessLauncher overrides launch and _call_children_scripts and calls these.
    for cls, members in (
        (_SubprocessScriptLauncher, ("launch", "_call_children_scripts", "_check_can_spawn_children")),
        (_ChildProcessObserver, ("_run", "run", "start")),
        (DDPStrategy, ("_configure_launcher",)),
    ):
        changed += [f"{cls.__name__}.{m}" for m in members if not callable(getattr(cls, m, None))]
    init = inspect.signature(_ChildProcessObserver.__init__).parameters
    if not {"main_pid", "child_processes"} <= set(init):
        changed.append(f"_ChildProcessObserver.__init__{tuple(init)}")
    launch = inspect.signature(_SubprocessScriptLauncher.launch).parameters
    if "trainer" not in launch:
        changed.append(f"_SubprocessScriptLauncher.launch{tuple(launch)}")
    launcher = _SubprocessScriptLauncher(LightningEnvironment(), num_processes=2, num_nodes=1)
    changed += [
        f"_SubprocessScriptLauncher().{a}"
        for a in ("cluster_environment", "num_processes", "num_nodes", "procs")
        if not hasattr(launcher, a)
    ]
    if "num_processes" not in inspect.signature(_set_num_threads_if_needed).parameters:
        changed.append("_set_num_threads_if_needed(num_processes=...)")
    # HydraDDPStrategy._configure_launcher reads _start_method and sets _launcher, which the Trainer uses.
    strategy = DDPStrategy()
    changed += [f"DDPStrategy()._{a}" for a in ("start_method", "launcher") if not hasattr(strategy, f"_{a}")]
    if "_launcher" not in inspect.getsource(DDPStrategy.launcher.fget):
        changed.append("DDPStrategy.launcher (no longer returns _launcher)")
    # episodes_done_this_epoch reads trainer.fit_loop.epoch_loop.batch_progress.current.processed;
    # restart_training_iterator calls iter() on trainer.fit_loop._data_fetcher, as FitLoop.setup_data does.
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    fit_loop = trainer.fit_loop
    epoch_loop = fit_loop.epoch_loop
    if not isinstance(epoch_loop, _TrainingEpochLoop) or not hasattr(fit_loop, "restarting"):
        changed.append("Trainer.fit_loop.epoch_loop / fit_loop.restarting")
    elif not isinstance(getattr(epoch_loop.batch_progress.current, "processed", None), int):
        changed.append("fit_loop.epoch_loop.batch_progress.current.processed")
    if not hasattr(fit_loop, "_data_fetcher") or "iter(self._data_fetcher)" not in inspect.getsource(
        type(fit_loop).setup_data
    ):
        changed.append("FitLoop._data_fetcher (setup_data no longer creates the first iterator)")
    assert not changed, (
        f"Lightning's private parts that matchnet.lightning_internals uses changed: {', '.join(changed)}. "
        f"Installed pytorch-lightning {version('pytorch-lightning')}; pin the version the suite passed on "
        "(pyproject.toml) or adapt src/matchnet/lightning_internals.py."
    )


PRIVATE_IMPORT = re.compile(
    r"^\s*(?:from\s+(?:pytorch_lightning|lightning_fabric|lightning)\b[\w.]*\s+import\s+[^\n]*\b_\w+"
    r"|from\s+(?:pytorch_lightning|lightning_fabric|lightning)[\w.]*\._\w+)",
    re.M,
)
PRIVATE_USE = re.compile(r"\.(?:_launcher|_start_method|batch_progress|epoch_loop|_checkpoint_connector)\b")


def test_only_lightning_internals_touches_private_lightning_parts() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "src").rglob("*.py"))
        if path.name != "lightning_internals.py"
        and (PRIVATE_IMPORT.search(path.read_text()) or PRIVATE_USE.search(path.read_text()))
    ]
    assert not offenders, (
        f"{', '.join(offenders)} use private Lightning names; keep them in "
        "src/matchnet/lightning_internals.py "
        "(the one module tests/test_pins.py checks against the pinned Lightning)."
    )
