"""Distributed training (``trainer=ddp``): 2 Gloo processes on CPU, episode splits, rank-0 outputs, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from helpers.callbacks import episode_hash
from helpers.fixture_types import ComposeConfig
from helpers.scripts import last_json, pythonpath_with_tests, run_main, run_script
from matchnet import distributed
from matchnet.data import OmniglotDataModule
from matchnet.errors import MatchnetError

# Two CPU processes with Gloo; E = 5 training episodes per epoch -> 2 per rank (one dropped), 7 test
# episodes -> 4 + 3 (no padding), 3 validation episodes -> 2 + 1.
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
TINY = [
    "debug=tiny",
    "logger=wandb",  # one W&B run per job, not per rank
    "data.train_way=null",  # training episodes like the DataModule built below (constructor defaults)
    "data.train_episodes_per_epoch=5",
    "data.val_episodes=3",
    "data.test_episodes=7",
]


def run(*overrides: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``src/train.py`` with ``overrides`` from ``cwd``; ``tests/`` is importable (for the probe callback)."""
    return run_script(
        "train.py",
        *overrides,
        cwd=cwd,
        check=check,
        timeout=300,
        env=pythonpath_with_tests() | {distributed.ENTRY_POINT_ENV: None},
    )


def ddp_cpu_ok() -> bool:
    return distributed._available_cpus() >= 2


needs_two_cpus = pytest.mark.skipif(not ddp_cpu_ok(), reason="needs 2 CPU cores for 2 DDP processes")


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
@pytest.mark.e2e
@needs_two_cpus
def test_ddp_sweep_splits_episodes_and_each_job_writes_one_run(omniglot_root: Path, tmp_path: Path) -> None:
    """A two-job sweep, each job on two Gloo processes: the ranks draw disjoint episodes, every validation
    and test episode is counted once, and each job's ranks share the job's folder (no rank starts a sweep)."""
    sweep = tmp_path / "multirun"
    proc = run(
        "-m",
        *DDP,
        *TINY,
        "model.fce=true,false",
        "+callbacks.probe._target_=helpers.callbacks.EpisodeProbe",
        "+callbacks.probe.out_dir=${hydra:runtime.output_dir}/probe",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert {p.name for p in tmp_path.iterdir()} == {"multirun"}, "one sweep directory"
    # Job folders only: with logger=wandb the sweep summary's own W&B run sits beside them in wandb/.
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit()) == ["0", "1"]
    assert (sweep / "summary.csv").read_text().count(",ok,") == 2
    # One result line per job: rank 1 prints nothing.
    assert sum(line.startswith('{"') for line in proc.stdout.splitlines()) == 2, proc.stdout[-3000:]

    # Each rank draws its own episodes of the one seeded stream: epoch e, rank r -> e * 5 + r, e * 5 + 2 + r.
    datamodule = OmniglotDataModule(
        root=str(omniglot_root), download=False, train_episodes_per_epoch=5, val_episodes=3, test_episodes=7
    )
    datamodule.setup()
    train, val, test = (datamodule.dataset(stage) for stage in ("train", "val", "test"))
    for job in ("0", "1"):
        run_dir = sweep / job
        result = json.loads((run_dir / "result.json").read_text())
        # Every test episode counted exactly once over both ranks. train_episodes are the tested (best
        # validation) checkpoint's: after epoch 1 or 2 (2 ranks x 2 steps each).
        assert result["status"] == "ok" and result["episodes"] == 7, result
        assert result["train_episodes"] in {2 * 2, 2 * 2 * 2}

        ranks = [json.loads((run_dir / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
        for rank, seen in enumerate(ranks):
            expected = [[e, episode_hash(train[e * 5 + i])] for e in (0, 1) for i in (rank, rank + 2)]
            assert seen["train"] == expected
        train_hashes = [h for seen in ranks for _, h in seen["train"]]
        assert len(set(train_hashes)) == len(train_hashes) == 8
        # Validation and test: disjoint shares, together exactly the fixed episodes (no padding).
        assert sorted(ranks[0]["test"] + ranks[1]["test"]) == sorted(episode_hash(test[n]) for n in range(7))
        assert (len(ranks[0]["test"]), len(ranks[1]["test"])) == (4, 3)
        for epoch in (0, 1):
            shares = [[h for e, h in seen["val"] if e == epoch] for seen in ranks]
            assert sorted(shares[0] + shares[1]) == sorted(episode_hash(val[n]) for n in range(3))

        # One run directory per job: one checkpoint folder, one W&B run, one result, rank 0's .hydra only.
        assert [p for p in run_dir.rglob("checkpoints") if p.is_dir()] == [run_dir / "checkpoints"]
        assert Path(result["ckpt_path"]).parent == run_dir / "checkpoints"
        assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1
        assert len(list(run_dir.rglob("result.json"))) == 1
        assert len(list(run_dir.rglob(".hydra"))) == 1

    # The metrics were reduced over both ranks: one process on the same checkpoint agrees exactly.
    result = json.loads((sweep / "0" / "result.json").read_text())
    single = last_json(
        run_main(
            "eval.py",
            f"ckpt_path={result['ckpt_path']}",
            "trainer.accelerator=cpu",
            "logger=none",
            f"hydra.run.dir={tmp_path}/eval",
            cwd=tmp_path,
        )
    )
    assert (single["test_acc"], single["test_acc_ci95"], single["episodes"]) == (
        result["test_acc"],
        result["test_acc_ci95"],
        7,
    )


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["trainer.accelerator=gpu", "trainer.devices=64"], "trainer.devices"),
        (["trainer.accelerator=cpu", f"trainer.devices={distributed._available_cpus() + 1}"], "CPU cores"),
        (["trainer.accelerator=cpu", "trainer.devices=2", "data.test_episodes=1"], "data.test_episodes=1"),
        (
            ["trainer.accelerator=cpu", "trainer.devices=2", "data.train_episodes_per_epoch=1"],
            "train_episodes",
        ),
    ],
)
def test_bad_ddp_settings_fail_cleanly(tmp_path: Path, overrides: list[str], needle: str) -> None:
    if "trainer.devices=2" in overrides and not ddp_cpu_ok():
        pytest.skip("needs 2 CPU cores")
    # They fail before any rank is started: no second process is involved.
    proc = run_main(
        "train.py", "trainer=ddp", *overrides, "logger=none", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- units


def test_child_command_reenters_the_job_not_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compose_config: ComposeConfig
) -> None:
    monkeypatch.setenv(distributed.ENTRY_POINT_ENV, json.dumps(["python", "/src/train.py"]))
    overrides = ["trainer=ddp", "model.fce=false"]
    cfg = compose_config("train", [*overrides, "hydra/launcher=submitit_local"], hydra=True)
    hydra_cfg = cfg.hydra
    with open_dict(hydra_cfg):
        hydra_cfg.runtime.output_dir = str(tmp_path / "sweep it" / "3")
        hydra_cfg.runtime.cwd = str(tmp_path)
        hydra_cfg.job.name = "train"
        hydra_cfg.job.config_name = "train"
        hydra_cfg.overrides.task = overrides
        hydra_cfg.overrides.hydra = [
            "hydra.sweep.dir=/elsewhere",
            "hydra/launcher=submitit_local",
            "hydra.mode=MULTIRUN",
            "hydra.job.chdir=false",
        ]
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = distributed.child_command(1)
    finally:
        HydraConfig.instance().cfg = saved
    assert command[:2] == ["python", "/src/train.py"]
    assert "-m" not in command and "--multirun" not in command
    assert command[2:] == [
        "--config-name=train",
        "trainer=ddp",
        "model.fce=false",
        "hydra.job.chdir=false",
        f"hydra.run.dir='{tmp_path / 'sweep it' / '3'}'",
        "hydra.output_subdir=null",
        "hydra.job.name=train_rank1",
    ]
    assert cwd == str(tmp_path)


def test_entry_point_is_recorded_at_app_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.ENTRY_POINT_ENV, json.dumps(["python", "outer_app.py"]))
    assert distributed.entry_command() == ["python", "outer_app.py"]
    distributed.EntryPoint().on_multirun_start(config=None)  # type: ignore[arg-type]
    assert distributed.entry_command() == distributed._main_command()
    assert distributed.entry_command()[0] == sys.executable
    monkeypatch.delenv(distributed.ENTRY_POINT_ENV)
    assert distributed.entry_command() == distributed._main_command()


@pytest.mark.parametrize("world", [2, 3, 4])
def test_training_sampler_deals_disjoint_episodes(world: int) -> None:
    from matchnet.data.episodes import EpisodeSampler

    dataset = type("Fake", (), {"__len__": lambda self: 7})()
    for epoch in (0, 3):
        shares = []
        for rank in range(world):
            sampler = EpisodeSampler(dataset, num_replicas=world, rank=rank)
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        assert len({len(s) for s in shares}) == 1, "equal steps per rank"
        flat = [n for share in shares for n in share]
        assert len(set(flat)) == len(flat) == (7 // world) * world
        assert all(epoch * 7 <= n < (epoch + 1) * 7 for n in flat)


def test_check_episodes_names_the_setting() -> None:
    datamodule = SimpleNamespace(episodes={"train": 8, "val": 3, "test": 2})
    trainer = SimpleNamespace(world_size=3)
    distributed.check_episodes(trainer, datamodule, ("train", "val"))  # type: ignore[arg-type]
    with pytest.raises(MatchnetError, match=r"data.test_episodes=2 .* 3 DDP processes"):
        distributed.check_episodes(trainer, datamodule, ("test",))  # type: ignore[arg-type]
    distributed.check_episodes(SimpleNamespace(world_size=1), datamodule, ("test",))  # type: ignore[arg-type]
