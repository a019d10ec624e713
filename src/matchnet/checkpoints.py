"""Writing checkpoints atomically, and reading them with errors that say what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import Tensor

from matchnet.errors import MatchnetError
from matchnet.io import atomic_open
from matchnet.module import MatchingNetModule


def non_finite_weights(state_dict: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` that hold a NaN or an infinity."""
    return [
        name
        for name, value in state_dict.items()
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written or non-finite checkpoint behind.

    A checkpoint is written to a temporary file beside its target, flushed to disk, then renamed over
    it (``os.replace`` is atomic), so a crash or SIGKILL mid-write leaves the previous file intact.
    A checkpoint whose weights hold NaN or inf is refused (MatchnetError): the last good one is kept.
    Remote paths (``s3://...``) fall back to Lightning's own writer.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        bad = non_finite_weights(checkpoint.get("state_dict", {}))
        if bad:
            names = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
            raise MatchnetError(
                f"The weights became NaN or infinite ({names}) at "
                f"global step {checkpoint.get('global_step')}; {path} was not written, so the last good "
                "checkpoint is kept. Lower optimizer.lr or set trainer.gradient_clip_val."
            )
        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """The content of a checkpoint written by ``src/train.py``; matchnet's one reader of checkpoint files.

    Raises:
        MatchnetError: the file is missing, unreadable (truncated, not a PyTorch file) or not
            matchnet's (no model settings or weights in it).
    """
    path = Path(path)
    if not path.is_file():
        raise MatchnetError(
            f"ckpt_path={path} does not exist or is not a file; pass a checkpoint written by "
            "src/train.py (its run folder holds checkpoints/best.ckpt and last.ckpt)."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    # Truncated files raise OSError or RuntimeError, foreign pickles UnpicklingError, ImportError,
    # AttributeError...: every failure here means "not a usable checkpoint".
    except Exception as err:
        raise MatchnetError(
            f"ckpt_path={path} is not a readable checkpoint ({type(err).__name__}: {err}); "
            "it may be truncated or not a PyTorch file. Point ckpt_path at a .ckpt written by src/train.py."
        ) from err
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, Mapping) or "model" not in hparams or "state_dict" not in checkpoint:
        raise MatchnetError(
            f"ckpt_path={path} was not written by matchnet's src/train.py "
            "(no model settings or weights in it); pass a checkpoint from a matchnet run."
        )
    return checkpoint


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> MatchingNetModule:
    """Rebuild a :class:`MatchingNetModule` from a checkpoint written by ``src/train.py``."""
    checkpoint = read_checkpoint(path, map_location)
    hparams = checkpoint["hyper_parameters"]
    module = MatchingNetModule(**{k: hparams.get(k) for k in ("model", "optimizer", "scheduler", "data")})
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise MatchnetError(
            f"ckpt_path={path} does not fit the model settings stored in it "
            f"({str(err).splitlines()[0]}); it was written by an incompatible version of matchnet. "
            "Retrain, or evaluate it with that version."
        ) from err
    module.on_load_checkpoint(checkpoint)
    return module
