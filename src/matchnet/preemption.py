"""SIGTERM and SIGINT during training: finish the current episode, save ``last.ckpt``, exit cleanly.

Lightning does most of it: its SIGTERM handler stops training at the next episode boundary
(``trainer.received_sigterm``, broadcast to every rank under DDP) by raising ``SIGTERMException``, and
the ``callbacks.last`` ModelCheckpoint (``save_on_exception=true``) then writes ``last.ckpt``
(atomically, see ``AtomicCheckpointIO``). :class:`Preemption` adds what Lightning lacks:

- SIGINT (Ctrl+C) is handled like SIGTERM instead of raising ``KeyboardInterrupt`` at an arbitrary
  point; a second Ctrl+C aborts at once (Lightning's own shutdown).
- A signal that arrives during validation is held until validation ends, so training never stops
  mid-validation (a resumed run would validate on a different set of episodes).

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

log = logging.getLogger(__name__)


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


class Preemption(pl.Callback):
    """Treat SIGINT like SIGTERM and hold either until validation ends (see the module docstring).

    ``signum`` is the signal that stopped training (None while none did).
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferred = False
        self._previous: dict[int, Any] = {}
        self._trainer: pl.Trainer | None = None

    def _lightning_sigterm(self, frame: FrameType | None) -> None:
        handler = self._previous.get(signal.SIGTERM)
        if callable(handler):
            handler(signal.SIGTERM, frame)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.signum is not None:
            raise KeyboardInterrupt  # a second Ctrl+C: abort now
        self.signum = signum
        log.warning("Received %s: stopping after the current episode", signal.Signals(signum).name)
        trainer = self._trainer
        if trainer is not None and trainer.validating and not trainer.sanity_checking:
            self._deferred = True  # let validation finish; see on_validation_end
            return
        self._lightning_sigterm(frame)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After Lightning registered its SIGTERM handler (in Trainer._run), which this one wraps.
        self.signum, self._deferred = None, False
        if threading.current_thread() is not threading.main_thread():
            return
        self._trainer = trainer
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._handle)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._deferred:
            self._deferred = False
            self._lightning_sigterm(None)

    def _uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        self._trainer = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._uninstall()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._uninstall()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._uninstall()


def interruption(trainer: pl.Trainer, last: Path) -> RunInterrupted:
    """The :class:`RunInterrupted` to raise after ``fit`` or ``test`` stopped on a signal.

    ``last``: the ``last.ckpt`` that the ModelCheckpoint with ``save_on_exception`` writes.
    """
    signum = next((c.signum for c in trainer.callbacks if isinstance(c, Preemption) and c.signum), None)
    return RunInterrupted(signum or signal.SIGTERM, str(last) if last.is_file() else None)
