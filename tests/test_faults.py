"""Numerical and file faults: NaN/inf losses (nan_policy), atomic and finite checkpoints, corrupt
images and checkpoints. In-process and on small random tensors; no real data needed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, Dataset

from helpers.fixture_types import MakeTrainer
from helpers.model_configs import load_model_config
from helpers.omniglot_fakes import FAKE_COUNTS, fake_members, write_fake_set
from matchnet.checkpoints import AtomicCheckpointIO, load_module, non_finite_weights
from matchnet.data import Episode, omniglot
from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule, NonFiniteLossError
from matchnet.preemption import Preemption, interruption
from matchnet.resume import check_compatible


def small_module(nan_policy: str = "stop", **model: object) -> MatchingNetModule:
    cfg = load_model_config()
    cfg.encoder.image_size = 28
    cfg.encoder.hidden = 8
    cfg.fce = False
    config = OmegaConf.to_container(OmegaConf.merge(cfg, model), resolve=True)
    optimizer = {"_target_": "torch.optim.Adam", "lr": 1e-3}
    return MatchingNetModule(model=config, optimizer=optimizer, nan_policy=nan_policy)


class Episodes(Dataset):
    """3-way 1-shot episodes of random images; the episodes in ``poisoned`` hold a NaN pixel."""

    def __init__(self, n: int, poisoned: frozenset[int] = frozenset()) -> None:
        self.n, self.poisoned = n, poisoned

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Episode:
        gen = torch.Generator().manual_seed(i)
        query = torch.rand(6, 1, 28, 28, generator=gen)
        if i in self.poisoned:
            query[0, 0, 0, 0] = float("nan")
        labels = torch.arange(3)
        return Episode(torch.rand(3, 1, 28, 28, generator=gen), labels, query, labels.repeat(2), 3)


def last_checkpoint(dirpath: Path, **kwargs: object) -> ModelCheckpoint:
    """``callbacks.last`` of conf/callbacks/default.yaml (``periodic`` with ``every_n_train_steps``)."""
    return ModelCheckpoint(
        dirpath=dirpath, filename="last", save_on_exception=True, enable_version_counter=False, **kwargs
    )


def fit(
    make_trainer: MakeTrainer, module: MatchingNetModule, root: Path, poisoned: frozenset[int]
) -> pl.Trainer:
    trainer = make_trainer(
        max_epochs=1,
        default_root_dir=root,
        limit_val_batches=0,
        callbacks=[last_checkpoint(root / "checkpoints", every_n_train_steps=1)],
        plugins=[AtomicCheckpointIO()],
    )
    trainer.fit(module, train_dataloaders=DataLoader(Episodes(6, poisoned), batch_size=None))
    return trainer


def test_nan_loss_stops_before_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, make_trainer: MakeTrainer
) -> None:
    module = small_module("stop")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at epoch 0, episode 3.*nan_policy=skip"):
        fit(make_trainer, module, tmp_path, frozenset({3}))
    assert isinstance(NonFiniteLossError("x"), MatchnetError)  # printed cleanly by the entry points
    assert non_finite_weights(module.state_dict()) == []  # no optimiser step on the NaN episode
    kept = load_module(tmp_path / "checkpoints" / "last.ckpt")
    assert kept.trained_episodes == 3
    assert non_finite_weights(kept.state_dict()) == []


def test_nan_loss_skip_drops_only_that_episode(tmp_path: Path, make_trainer: MakeTrainer) -> None:
    module = small_module("skip")
    trainer = fit(make_trainer, module, tmp_path, frozenset({1, 4}))
    assert module.skipped_episodes == 2
    assert non_finite_weights(module.state_dict()) == []
    assert trainer.fit_loop.epoch_loop.batch_progress.current.completed == 6
    adam_steps = {int(s["step"]) for s in trainer.optimizers[0].state.values()}
    assert adam_steps == {4}  # 6 episodes, 2 skipped: 4 optimiser steps


def test_unknown_nan_policy_is_named() -> None:
    with pytest.raises(MatchnetError, match="nan_policy='ignore' is invalid"):
        small_module("ignore")


def test_checkpoint_io_refuses_non_finite_weights_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, path)
    with pytest.raises(MatchnetError, match=r"NaN or infinite \(w\) at global step 2.*last good"):
        io.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("inf")])}, "global_step": 2}, path)
    assert torch.load(path, weights_only=False)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_checkpoint_io_crash_mid_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}, "global_step": 1}, path)

    def crash(obj: object, handle: object) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["global_step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (lambda good: good[: len(good) // 2], "not a readable checkpoint"),
        (lambda good: b"", "not a readable checkpoint"),
        (lambda good: b"random bytes, not a checkpoint", "not a readable checkpoint"),
    ],
)
def test_truncated_or_foreign_checkpoints_are_named(
    tmp_path: Path, make_trainer: MakeTrainer, content: Callable[[bytes], bytes], needle: str
) -> None:
    module = small_module()
    trainer = make_trainer(max_epochs=0)
    trainer.strategy.connect(module)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, good)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content(good.read_bytes()))
    for load in (load_module, lambda p: check_compatible(p, module.hparams["model"], None)):
        with pytest.raises(MatchnetError) as raised:
            load(bad)
        assert str(bad) in str(raised.value) and needle in str(raised.value)
    assert load_module(good).hparams["model"] == module.hparams["model"]


def test_corrupt_image_in_an_extracted_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(omniglot, "EXPECTED_COUNTS", FAKE_COUNTS)
    for set_name in omniglot.SETS:
        members = fake_members(set_name)
        if set_name == "background":
            broken = sorted(members)[11]
            members[broken] = members[broken][:40]  # a truncated PNG
        write_fake_set(tmp_path, set_name, folder=True, members=members)
    catalog = omniglot.find_sources(tmp_path, download=False)
    with pytest.raises(MatchnetError, match=f"{broken}.*not a readable PNG"):
        omniglot.load_images(catalog, 28)
    assert not omniglot.cache_path(tmp_path, 28).exists()  # nothing half-built is trusted later


class SignalDuringValidation(pl.Callback):
    """Sends this process SIGTERM after the first real validation episode; records what ran."""

    def __init__(self) -> None:
        self.val_batches = 0
        self.sent = False

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: object, **kwargs: object) -> None:
        if trainer.sanity_checking:
            return
        self.val_batches += 1
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_during_validation_waits_for_its_end_then_saves(
    tmp_path: Path, make_trainer: MakeTrainer
) -> None:
    probe = SignalDuringValidation()
    preemption = Preemption()
    trainer = make_trainer(
        max_epochs=3,
        num_sanity_val_steps=0,
        callbacks=[probe, preemption, last_checkpoint(tmp_path / "checkpoints")],
        plugins=[AtomicCheckpointIO()],
    )
    module = small_module()
    train, val = DataLoader(Episodes(4), batch_size=None), DataLoader(Episodes(3), batch_size=None)
    with pytest.raises(SIGTERMException):
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
    assert probe.val_batches == 3  # validation was not cut short
    stop = interruption(trainer, tmp_path / "checkpoints" / "last.ckpt")
    assert stop.signum == signal.SIGTERM and stop.exit_code == 143
    assert stop.ckpt_path == str(tmp_path / "checkpoints" / "last.ckpt")
    assert load_module(stop.ckpt_path).trained_episodes == 4  # after epoch 0, not mid-validation
    assert signal.getsignal(signal.SIGTERM) is not preemption._handle  # handlers restored


class SeenEpisodes(pl.Callback):
    """Records ``(epoch, first query pixel sum)`` of every training episode."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: object, batch: Episode, i: int) -> None:
        self.seen.append((trainer.current_epoch, round(float(batch.query_x.sum()), 3)))


def test_mid_epoch_resume_continues_with_the_next_episode(tmp_path: Path, make_trainer: MakeTrainer) -> None:
    from matchnet.data.episodes import EpisodeSampler
    from matchnet.resume import ResumeEpisodes

    checkpoints = tmp_path / "checkpoints"

    def run(max_steps: int, ckpt_path: str | None) -> list[tuple[int, float]]:
        seen = SeenEpisodes()
        trainer = make_trainer(
            max_epochs=2,
            max_steps=max_steps,
            limit_val_batches=0,
            callbacks=[seen, ResumeEpisodes(), last_checkpoint(checkpoints, every_n_train_steps=1)],
            plugins=[AtomicCheckpointIO()],
        )
        episodes = Episodes(5)
        loader = DataLoader(episodes, batch_size=None, sampler=EpisodeSampler(episodes))
        trainer.fit(small_module(), train_dataloaders=loader, ckpt_path=ckpt_path)
        return seen.seen

    whole = run(-1, None)
    first = run(3, None)  # stops mid-epoch 0; last.ckpt holds step 3
    rest = run(-1, str(checkpoints / "last.ckpt"))
    assert len(whole) == 10 and first + rest == whole


def test_last_ckpt_follows_every_epoch_even_without_improvement(
    tmp_path: Path, make_trainer: MakeTrainer
) -> None:
    """Lightning's ``save_last`` on the best-checkpoint callback refreshes last.ckpt only when val/acc
    improves; the ``last`` callback of conf/callbacks/default.yaml writes it after every epoch."""
    # A monitored value that never improves after epoch 0 (as val/acc may not).
    best = ModelCheckpoint(dirpath=tmp_path / "checkpoints", filename="best", monitor="epoch", mode="min")
    trainer = make_trainer(
        max_epochs=3,
        num_sanity_val_steps=0,
        callbacks=[best, last_checkpoint(tmp_path / "checkpoints")],
        plugins=[AtomicCheckpointIO()],
    )
    train, val = DataLoader(Episodes(2), batch_size=None), DataLoader(Episodes(2), batch_size=None)
    trainer.fit(small_module(), train_dataloaders=train, val_dataloaders=val)
    assert trainer.global_step == 6
    assert torch.load(best.best_model_path, weights_only=False)["global_step"] == 2
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
