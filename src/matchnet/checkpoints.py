"""Loading checkpoints with errors that say what is wrong and how to fix it."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> MatchingNetModule:
    """Rebuild a :class:`MatchingNetModule` from a checkpoint written by ``src/train.py``."""
    path = Path(path)
    if not path.is_file():
        raise MatchnetError(
            f"ckpt_path={path} does not exist or is not a file; pass a checkpoint written by "
            "src/train.py (its run folder holds checkpoints/best.ckpt and last.ckpt)."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as err:
        raise MatchnetError(
            f"ckpt_path={path} is not a readable checkpoint ({type(err).__name__}: {err}); "
            "it may be truncated or not a PyTorch file. Point ckpt_path at a .ckpt written by src/train.py."
        ) from err
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not hparams or "model" not in hparams or "state_dict" not in checkpoint:
        raise MatchnetError(
            f"ckpt_path={path} was not written by matchnet's src/train.py "
            "(no model settings or weights in it); pass a checkpoint from a matchnet run."
        )
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
