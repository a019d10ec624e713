"""SIGTERM and SIGINT during training: finish the current episode, save ``last.ckpt``, exit cleanly.

Lightning already turns SIGTERM into a stop at the next episode boundary (``trainer.received_sigterm``,
broadcast to every rank under DDP) and raises ``SIGTERMException``. :class:`PreemptionCheckpoint`
adds what matchnet needs on top:

- SIGINT (Ctrl+C) is handled like SIGTERM instead of raising ``KeyboardInterrupt`` at an arbitrary
  point; a second Ctrl+C aborts at once, without a checkpoint.
- A signal that arrives during validation is held until validation ends, so the checkpoint is never
  taken mid-validation (Lightning would otherwise stop there and a resumed run would validate on a
  different set of episodes).
- On the stop, ``<checkpoint dir>/last.ckpt`` is written (atomically, see ``AtomicCheckpointIO``);
  ``src/train.py ... ckpt_path=last`` resumes from it with the same episodes as an uninterrupted run.

The entry point then exits with status 128 + signal number (143 for SIGTERM, 130 for SIGINT) and a
one-line message naming the checkpoint (:class:`RunInterrupted`, handled in ``matchnet.cli``).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from matchnet.errors import MatchnetError

log = logging.getLogger(__name__)
LAST = "last.ckpt"


class RunInterrupted(Exception):
    """Training stopped on a signal after saving ``ckpt_path`` (None when nothing could be saved)."""

    def __init__(self, signum: int, ckpt_path: str | None) -> None:
        self.signum = signum
        self.ckpt_path = ckpt_path
        name = signal.Signals(signum).name
        saved = f"the last checkpoint is {ckpt_path}" if ckpt_path else "no checkpoint was saved"
        super().__init__(f"Interrupted by {name}; {saved}.")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class PreemptionCheckpoint(pl.Callback):
    """Save ``last.ckpt`` when training is stopped by SIGTERM or SIGINT (see the module docstring).

    Args:
        dirpath: where to write ``last.ckpt``; default: the ModelCheckpoint's folder, else
            ``<trainer.default_root_dir>/checkpoints``.
        every_n_train_steps: also write ``last.ckpt`` after every N-th training episode, so a run
            killed outright (SIGKILL, power loss) loses at most N episodes; None: only on signals
            (the ModelCheckpoint writes it after every validation).
    """

    def __init__(self, dirpath: str | None = None, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and (
            isinstance(every_n_train_steps, bool)
            or not isinstance(every_n_train_steps, int)
            or every_n_train_steps < 1
        ):
            raise MatchnetError(
                f"callbacks.preemption.every_n_train_steps={every_n_train_steps!r} is invalid: it must be "
                "an integer >= 1 or null."
            )
        self.dirpath = dirpath
        self.every_n_train_steps = every_n_train_steps
        self.signum: int | None = None
        self.saved: str | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}
        self._trainer: pl.Trainer | None = None

    # ------------------------------------------------------------------ signal handlers

    def _lightning_sigterm(self, signum: int, frame: FrameType | None) -> None:
        handler = self._previous.get(signal.SIGTERM)
        if callable(handler):
            handler(signum, frame)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # a second Ctrl+C: abort now
        self.signum = signum
        log.warning(
            "Received %s: stopping after the current episode and saving %s",
            signal.Signals(signum).name,
            self._last_path(self._trainer),
        )
        trainer = self._trainer
        if trainer is not None and trainer.validating and not trainer.sanity_checking:
            self._deferred = True  # let validation finish; see on_validation_end
            return
        self._lightning_sigterm(signal.SIGTERM, frame)

    def _install(self, trainer: pl.Trainer) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self._trainer = trainer
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def _uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        self._trainer = None

    # ------------------------------------------------------------------ hooks

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its SIGTERM handler (in Trainer._run), which this one wraps.
        self.signum, self.saved, self._deferred = None, None, False
        self._install(trainer)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        every = self.every_n_train_steps
        if every and trainer.global_step % every == 0 and trainer.global_step > 0:
            self._save_last(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._deferred:
            self._deferred = False
            self._lightning_sigterm(signal.SIGTERM, None)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._uninstall()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        try:
            if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
                path = self._save_last(trainer)
                self.saved = str(path)
                log.warning("Saved %s; resume with ckpt_path=last (same hydra.run.dir)", path)
        finally:
            self._uninstall()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._uninstall()

    # ------------------------------------------------------------------ helpers

    def _save_last(self, trainer: pl.Trainer) -> Path:
        """Write ``last.ckpt``; tell the ModelCheckpoint it is its own (so it does not make last-v1.ckpt)."""
        path = self._last_path(trainer)
        checkpoint = trainer.checkpoint_callback
        owned = isinstance(checkpoint, ModelCheckpoint) and checkpoint.save_last and checkpoint.dirpath
        if owned and Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}.ckpt" == path:
            checkpoint.last_model_path = str(path)
        trainer.save_checkpoint(path)
        return path

    def _last_path(self, trainer: pl.Trainer | None) -> Path:
        if self.dirpath:
            return Path(self.dirpath) / LAST
        dirpath = getattr(trainer.checkpoint_callback, "dirpath", None) if trainer else None
        root = trainer.default_root_dir if trainer else "."
        return Path(dirpath) / LAST if dirpath else Path(root) / "checkpoints" / LAST

    def interruption(self) -> RunInterrupted:
        """The :class:`RunInterrupted` to raise after ``fit`` stopped on a signal."""
        return RunInterrupted(self.signum or signal.SIGTERM, self.saved)
