"""Start-up validation (matchnet.config): a bad setting fails before any data is loaded, naming the
key, the value and what is allowed; in a sweep a bad job fails alone and the summary lists it."""

from __future__ import annotations

import csv
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from helpers.paths import DATA_ROOT
from helpers.scripts import run_main
from matchnet.config import validate, validate_data
from matchnet.errors import MatchnetError
from matchnet.model import Conv4, MatchingNetwork

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def config(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def _experiment_schedulers() -> list[tuple[str | None, str | None]]:
    """Every experiment with every scheduler, except that an experiment which sets its own scheduler
    (``override /scheduler``, with keys of its own such as ``T_max``) is taken as it is."""
    pairs: list[tuple[str | None, str | None]] = []
    for path in [None, *sorted((CONF / "experiment").glob("*.yaml"))]:
        own = path is not None and "override /scheduler" in path.read_text()
        for scheduler in [None] if own else [None, "cosine", "step"]:
            pairs.append((path.stem if path else None, scheduler))
    return pairs


@pytest.mark.parametrize(("experiment", "scheduler"), _experiment_schedulers())
def test_shipped_configs_are_valid(experiment: str | None, scheduler: str | None) -> None:
    overrides = [f"experiment={experiment}"] if experiment else []
    overrides += [f"scheduler={scheduler}"] if scheduler else []
    validate(config("train", *overrides), "train")


@pytest.mark.parametrize(
    "group_option",
    [
        f"{group}={path.stem}"
        for group in ("data", "trainer", "model/encoder")
        for path in sorted((CONF / group).glob("*.yaml"))
    ],
)
def test_shipped_group_options_are_valid(group_option: str) -> None:
    cfg = config("train", group_option)  # every shipped option composes on its own
    try:
        validate(cfg, "train")
    except MatchnetError as err:
        assert "cannot be resolved" in str(err) or "???" in str(err), err  # mandatory values left open


@pytest.mark.parametrize("logger", ["csv", "wandb", "none"])
def test_eval_config_is_valid(logger: str) -> None:
    validate(config("eval", f"logger={logger}", "ckpt_path=x.ckpt"), "eval")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("data.way=1", "data.way=1 is invalid: it must be an integer >= 2"),
        ("data.way=abc", "data.way='abc' is invalid: it must be an integer >= 2"),
        ("data.shot=0", "data.shot=0 is invalid: it must be an integer >= 1"),
        ("data.query=0", "data.query=0 is invalid: it must be an integer >= 1"),
        ("data.train_way=1", "data.train_way=1 is invalid: it must be an integer >= 2 or null"),
        ("data.split=omniglot", "data.split='omniglot' is invalid: it must be one of vinyals, lake"),
        ("data.image_size=200", "data.image_size=200 is invalid: it must be an integer from 1 to 105"),
        ("data.rotations=[dev]", "data.rotations=['dev'] is invalid"),
        ("data.num_workers=-1", "data.num_workers=-1 is invalid: it must be an integer >= 0"),
        ("data.pin_memory=3", "data.pin_memory=3 is invalid: it must be true or false"),
        ("data.val_episodes=0", "data.val_episodes=0 is invalid: it must be an integer >= 1"),
        ("model.fce_steps=-1", "model.fce_steps=-1 must be a non-negative integer"),
        ("model.fce_steps=2.5", "model.fce_steps=2.5 is invalid: it must be an integer"),
        ("model.distance=bogus", "model.distance='bogus' is not a known distance; choose one of: cos"),
        ("model.temperature=0", "model.temperature=0 must be a positive finite number"),
        ("model.temperature=hot", "model.temperature='hot' is invalid: it must be a number"),
        ("model.fce=maybe", "model.fce='maybe' is invalid: it must be true or false"),
        ("model.readout=mean", "model.readout='mean' is invalid: it must be one of attention, prototype"),
        ("model.fce_initial_read=mean", "model.fce_initial_read='mean' is invalid: it must be one of attent"),
        ("data.augment=-1", "data.augment=-1 is invalid: it must be a number from 0 (off) to 3"),
        ("data.augment=strong", "data.augment='strong' is invalid: it must be a number from 0 (off) to 3"),
        ("data.train_within_alphabet=2", "data.train_within_alphabet=2 is invalid: it must be true or false"),
        ("model.encoder.blocks=0", "model.encoder.blocks=0 must be a positive integer"),
        ("model.encoder.blocks=5", "model.encoder.image_size=28 is too small for model.encoder.blocks=5"),
        ("model.encoder.hidden=1.5", "model.encoder.hidden=1.5 is invalid: it must be an integer"),
        ("trainer.deterministic=sometimes", "trainer.deterministic='sometimes' is invalid: it must be true"),
        ("optimizer.lr=0", "optimizer.lr=0 is invalid: it must be a number > 0"),
        ("optimizer.lr=-0.1", "optimizer.lr=-0.1 is invalid: it must be a number > 0"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1 is invalid: it must be a number >= 0"),
        ("trainer.max_epochs=-2", "trainer.max_epochs=-2 is invalid"),
        ("trainer.accelerator=tpuu", "trainer.accelerator='tpuu' is invalid: it must be one of auto, cpu"),
        ("nan_policy=ignore", "nan_policy='ignore' is invalid: it must be one of stop, skip"),
        ("seed=abc", "seed='abc' is invalid: it must be an integer"),
        ("nan_policy=skip trainer.devices=2", "nan_policy=skip with trainer.devices=2"),
        ("+data.wya=5", "data.wya is not a setting of matchnet.data.OmniglotDataModule; known settings:"),
        ("+model.fce_step=3", "model.fce_step is not a setting of matchnet.model.MatchingNetwork"),
        ("+optimizer.learning_rate=1", "optimizer.learning_rate is not a setting of torch.optim.Adam"),
        ("+trainer.max_epoch=3", "trainer.max_epoch is not a setting of pytorch_lightning.Trainer"),
        ("model._target_=matchnet.model.Nope", "model._target_='matchnet.model.Nope' cannot be imported"),
    ],
)
def test_bad_train_settings_are_named(override: str, needle: str) -> None:
    with pytest.raises(MatchnetError) as raised:
        validate(config("train", *override.split()), "train")
    assert needle in str(raised.value)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["scheduler=step", "scheduler.gamma=0"], "scheduler.gamma=0 is invalid: it must be a number > 0"),
        (["scheduler=cosine", "scheduler.T_max=0"], "scheduler.T_max=0 is invalid: it must be an integer"),
        (["+callbacks.checkpoint.every_n_step=1"], "callbacks.checkpoint.every_n_step is not a setting"),
        (["logger=csv", "+logger.csv.nme=x"], "logger.csv.nme is not a setting"),
    ],
)
def test_bad_group_settings_are_named(overrides: list[str], needle: str) -> None:
    with pytest.raises(MatchnetError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        validate(config("train", *overrides), "train")


def test_eval_checks_data_settings() -> None:
    with pytest.raises(MatchnetError, match="data.shot=0 is invalid"):
        validate_data(config("eval", "data.shot=0").data)


@pytest.mark.parametrize(
    ("override", "build"),
    [
        ("model.fce_steps=-1", lambda: MatchingNetwork(Conv4(), fce_steps=-1)),
        ("model.distance=bogus", lambda: MatchingNetwork(Conv4(), distance="bogus")),
        ("model.readout=mean", lambda: MatchingNetwork(Conv4(), readout="mean")),
        ("model.encoder.hidden=0", lambda: Conv4(hidden=0)),
        ("model.encoder.blocks=6", lambda: Conv4(blocks=6)),
    ],
)
def test_model_rules_are_the_constructors(override: str, build: Callable[[], object]) -> None:
    """The config check runs the model's own constructors: one rule, one message."""
    with pytest.raises(MatchnetError) as from_config:
        validate(config("train", override), "train")
    with pytest.raises(MatchnetError) as from_python:
        build()
    assert str(from_config.value) == str(from_python.value)


def _run(*args: str, cwd: Path, data_root: Path = DATA_ROOT) -> subprocess.CompletedProcess[str]:
    """``src/train.py args...`` as a user runs it (in this process), with ``data_root`` as the data."""
    return run_main("train.py", *args, cwd=cwd, check=False, env={"MATCHNET_DATA_ROOT": str(data_root)})


@pytest.mark.slow
def test_cli_reports_bad_keys_and_values_before_loading_data(tmp_path: Path) -> None:
    empty = tmp_path / "no-data"  # were data loaded first, the error would be about missing archives
    empty.mkdir()
    typo = _run("data.wya=5", f"hydra.run.dir={tmp_path}/a", cwd=tmp_path, data_root=empty)
    assert typo.returncode != 0
    assert "data.wya" in typo.stderr and "Traceback" not in typo.stderr
    added = _run(
        "+data.wya=5", "data.download=false", f"hydra.run.dir={tmp_path}/b", cwd=tmp_path, data_root=empty
    )
    assert added.returncode == 2, added.stderr[-3000:]
    assert "error: data.wya is not a setting of matchnet.data.OmniglotDataModule" in added.stderr
    assert "Traceback" not in added.stderr and "archives" not in added.stderr.lower()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.data
def test_sweep_with_a_bad_job_finishes_the_others(omniglot_root: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    proc = _run(
        "-m",
        "model.distance=cosine,bogus,dot",
        "trainer.fast_dev_run=true",
        "logger=none",
        "data.test_episodes=2",
        "callbacks.progress_bar.refresh_rate=0",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [row["status"][:6] for row in rows] == ["ok", "failed", "ok"]
    assert "model.distance='bogus' is not a known distance" in rows[1]["status"]
    assert json.loads((sweep / "1" / "result.json").read_text())["status"] == "failed"
    distances = [json.loads((sweep / j / "result.json").read_text()).get("distance") for j in "02"]
    assert distances == ["cosine", "dot"]
    assert "failed: model.distance='bogus' is not a known distance" in (sweep / "summary.md").read_text()
