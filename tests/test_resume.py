"""Interrupted training runs resume to exactly the weights and test accuracy of uninterrupted ones.

A run is killed outright (SIGKILL) after its first periodic ``last.ckpt``, or stopped by SIGTERM /
SIGINT (which save ``last.ckpt`` themselves); ``ckpt_path=last`` with the same ``hydra.run.dir`` then
resumes it, mid-epoch included. Entry points run as subprocesses, like ``test_entrypoints.py``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.scripts import fresh_environment, last_json, pythonpath_with_tests, run_main
from matchnet.checkpoints import load_module, read_checkpoint
from matchnet.errors import MatchnetError
from matchnet.resume import check_compatible, resolve_ckpt_path

ROOT = Path(__file__).resolve().parents[1]
EPISODES = 16  # 2 epochs of 8 episodes
RUN = [
    "debug=tiny",
    "data.train_episodes_per_epoch=8",
    "logger=none",
    "trainer.deterministic=true",
    "callbacks.progress_bar.refresh_rate=0",
    "callbacks.periodic.every_n_train_steps=3",
]

pytestmark = [pytest.mark.data, pytest.mark.slow, pytest.mark.e2e]


def train(run_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """An uninterrupted or resumed run: in this process, on one thread like the runs that are signalled."""
    return run_main("train.py", *RUN, f"hydra.run.dir={run_dir}", *overrides, cwd=run_dir.parent, check=check)


def start_slow(run_dir: Path, *overrides: str) -> tuple[subprocess.Popen[str], Path]:
    """A training run that sleeps 0.3 s per episode and reports its step in a marker file."""
    marker = run_dir.parent / f"{run_dir.name}.step"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "src" / "train.py"),
            *RUN,
            f"hydra.run.dir={run_dir}",
            "+callbacks.slow._target_=helpers.callbacks.SlowDown",
            f"+callbacks.slow.marker={marker}",
            *overrides,
        ],
        cwd=run_dir.parent,
        env=fresh_environment(pythonpath_with_tests()),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, marker


def wait_for(condition, proc: subprocess.Popen[str], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended before {what}:\n{out[-2000:]}\n{err[-4000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def global_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=False)["global_step"])


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"weights differ: {different[:5]}"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, omniglot_root: Path) -> tuple[dict, Path]:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    result = last_json(train(run_dir))
    assert result["train_episodes"] == EPISODES
    return result, run_dir / "checkpoints" / "last.ckpt"


def test_sigkill_then_resume_matches_uninterrupted(uninterrupted: tuple[dict, Path], tmp_path: Path) -> None:
    expected, expected_last = uninterrupted
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc, _ = start_slow(run_dir)
    wait_for(last.is_file, proc, "the first last.ckpt")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert 0 < global_step(last) < EPISODES  # a complete (atomically written) mid-run checkpoint

    resumed = last_json(train(run_dir, "ckpt_path=last"))
    assert resumed["train_episodes"] == EPISODES
    assert resumed["test_acc"] == expected["test_acc"]
    assert resumed["test_acc_ci95"] == expected["test_acc_ci95"]
    assert_same_weights(last, expected_last)


def test_sigterm_saves_last_ckpt_and_resumes(uninterrupted: tuple[dict, Path], tmp_path: Path) -> None:
    expected, expected_last = uninterrupted
    run_dir = tmp_path / "run"
    proc, marker = start_slow(run_dir, "logger=csv")
    wait_for(lambda: marker.is_file() and marker.read_text() in {"4", "5"}, proc, "episode 4")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "Interrupted by SIGTERM" in err and "ckpt_path=last" in err
    assert "Traceback" not in err
    last = run_dir / "checkpoints" / "last.ckpt"
    assert 4 <= global_step(last) < EPISODES
    assert load_module(last).trained_episodes == global_step(last)
    record = json.loads((run_dir / "result.json").read_text())
    assert record["status"] == "interrupted" and record["ckpt_path"] == str(last)

    resumed = last_json(train(run_dir, "ckpt_path=last", "logger=csv"))
    assert resumed["test_acc"] == expected["test_acc"]
    assert_same_weights(last, expected_last)
    # The resumed run logs beside the first part's CSV log, not over it: one version per start.
    assert sorted(p.name for p in (run_dir / "csv").iterdir()) == ["version_0", "version_1"]
    assert (run_dir / "csv" / "version_1" / "metrics.csv").is_file()


def test_sigint_saves_loadable_last_ckpt(omniglot_root: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc, marker = start_slow(run_dir)
    wait_for(lambda: marker.is_file() and marker.read_text() == "1", proc, "episode 1")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err[-3000:]
    assert "Interrupted by SIGINT" in err and "Traceback" not in err
    assert 1 <= load_module(run_dir / "checkpoints" / "last.ckpt").trained_episodes < EPISODES


def test_ckpt_path_last_and_auto_resolve_to_the_run_folder(tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(MatchnetError, match=r"ckpt_path=last but .*last.ckpt does not exist.*hydra.run.dir"):
        resolve_ckpt_path("last", checkpoints)
    assert resolve_ckpt_path("auto", checkpoints) is None  # nothing to resume: a fresh start
    assert resolve_ckpt_path(None, checkpoints) is None
    with pytest.raises(MatchnetError, match="ckpt_path=.*nope.ckpt does not exist"):
        resolve_ckpt_path(str(tmp_path / "nope.ckpt"), checkpoints)
    checkpoints.mkdir()
    (checkpoints / "last.ckpt").write_bytes(b"")
    # Lightning's own "last" then finds the file (the newest last*.ckpt of the ModelCheckpoint folder).
    assert resolve_ckpt_path("last", checkpoints) == "last"
    assert resolve_ckpt_path("auto", checkpoints) == "last"


def test_resume_with_other_model_settings_names_them(uninterrupted: tuple[dict, Path]) -> None:
    _, last = uninterrupted
    hparams = read_checkpoint(last)["hyper_parameters"]
    check_compatible(last, hparams["model"], hparams["data"])  # the same settings: fine
    other = hparams["model"] | {"fce": False, "distance": "dot"}
    with pytest.raises(MatchnetError) as raised:
        check_compatible(last, other, hparams["data"])
    message = str(raised.value)
    assert "model.fce: checkpoint True, now False" in message
    assert "model.distance: checkpoint 'cosine', now 'dot'" in message
    assert "model.fce_steps" not in message  # only what differs


def test_val_acc_best_survives_a_checkpoint(uninterrupted: tuple[dict, Path]) -> None:
    _, last = uninterrupted
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    module = load_module(last)
    assert float(module.val_acc_best.compute()) == pytest.approx(checkpoint["val_acc_best"])
