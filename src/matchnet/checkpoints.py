"""Writing checkpoints atomically, and reading them with errors that say what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import Tensor, nn

from matchnet.errors import MatchnetError
from matchnet.io import atomic_open
from matchnet.module import ENCODER_INIT, MatchingNetModule

#: The checkpoint entry naming the LightningModule class that wrote it (a subclass of
#: MatchingNetModule, e.g. the baseline classifier's); absent: MatchingNetModule.
MODULE_CLASS = "matchnet_module"
#: The settings every module is rebuilt from; a subclass adds the stored ones its constructor takes.
MODULE_SETTINGS = ("model", "optimizer", "scheduler", "data")


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


def read_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False, setting: str = "ckpt_path"
) -> dict:
    """The content of a checkpoint written by ``src/train.py``; matchnet's one reader of checkpoint files.

    ``setting`` is the config key that named the file (``ckpt_path``, ``model.encoder_init``), for the
    error messages.

    Raises:
        MatchnetError: the file is missing, unreadable (truncated, not a PyTorch file) or not
            matchnet's (no model settings or weights in it).
    """
    path = Path(path)
    if not path.is_file():
        raise MatchnetError(
            f"{setting}={path} does not exist or is not a file; pass a checkpoint written by "
            "src/train.py (its run folder holds checkpoints/best.ckpt and last.ckpt)."
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    # Truncated files raise OSError or RuntimeError, foreign pickles UnpicklingError, ImportError,
    # AttributeError...: every failure here means "not a usable checkpoint".
    except Exception as err:
        raise MatchnetError(
            f"{setting}={path} is not a readable checkpoint ({type(err).__name__}: {err}); "
            f"it may be truncated or not a PyTorch file. Point {setting} at a .ckpt written by src/train.py."
        ) from err
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, Mapping) or "model" not in hparams or "state_dict" not in checkpoint:
        raise MatchnetError(
            f"{setting}={path} was not written by matchnet's src/train.py "
            "(no model settings or weights in it); pass a checkpoint from a matchnet run."
        )
    return checkpoint


def module_class(checkpoint: Mapping[str, Any], path: str | Path) -> type[MatchingNetModule]:
    """The LightningModule class that wrote ``checkpoint`` (``MODULE_CLASS``; MatchingNetModule if absent)."""
    name = checkpoint.get(MODULE_CLASS)
    if name is None:
        return MatchingNetModule
    try:
        cls = get_object(str(name))
    except Exception as err:  # ImportError, AttributeError or ValueError, by Hydra version
        raise MatchnetError(
            f"ckpt_path={path} was written by {name}, which this version of matchnet does not have; "
            "evaluate it with the version that trained it."
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, MatchingNetModule)):
        raise MatchnetError(f"ckpt_path={path} names {name} as its module, which is not a matchnet module.")
    return cls


def load_module(path: str | Path, map_location: str | torch.device = "cpu") -> MatchingNetModule:
    """Rebuild the module (a :class:`MatchingNetModule`, or the subclass that wrote it, e.g. the baseline
    classifier's) from a checkpoint written by ``src/train.py``; its ``net`` is a MatchingNetwork."""
    checkpoint = read_checkpoint(path, map_location)
    hparams = checkpoint["hyper_parameters"]
    cls = module_class(checkpoint, path)
    own = [k for k in getattr(cls, "STORED_SETTINGS", ()) if k in hparams]
    module = cls(**{k: hparams.get(k) for k in MODULE_SETTINGS}, **{k: hparams[k] for k in own})
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


def _encoder_description(model: Mapping[str, Any] | None) -> str:
    """``Target(key=value, ...)`` of a stored model config's encoder, for messages."""
    encoder = dict((model or {}).get("encoder") or {})
    target = encoder.pop("_target_", "?")
    return f"{target}({', '.join(f'{k}={v}' for k, v in encoder.items())})"


def load_encoder(encoder: nn.Module, path: str | Path) -> None:
    """Copy the encoder weights (``net.encoder.*``, BatchNorm statistics included) of the checkpoint at
    ``path`` into ``encoder``: ``model.encoder_init`` (a Matching Network starting from a baseline
    classifier's, or any matchnet model's, embedding).

    Raises:
        MatchnetError: the file is missing, not a checkpoint, not matchnet's, or its encoder has other
            layers or layer shapes than ``encoder``; each names ``model.encoder_init``.
    """
    setting = f"model.{ENCODER_INIT}"
    checkpoint = read_checkpoint(path, setting=setting)
    prefix = "net.encoder."
    stored = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    own = encoder.state_dict()
    missing, extra = sorted(own.keys() - stored.keys()), sorted(stored.keys() - own.keys())
    shapes = [
        f"{key}: checkpoint {list(stored[key].shape)}, this model {list(own[key].shape)}"
        for key in sorted(own.keys() & stored.keys())
        if stored[key].shape != own[key].shape
    ]
    if missing or extra or shapes:
        what = (
            shapes[:2]
            + [f"{key} missing from the checkpoint" for key in missing[:2]]
            + [f"{key} not in this model" for key in extra[:2]]
        )
        raise MatchnetError(
            f"{setting}={path} holds an encoder that does not fit this model's "
            f"{type(encoder).__name__} ({'; '.join(what)}). The checkpoint's encoder is "
            f"{_encoder_description(checkpoint['hyper_parameters'].get('model'))}; set model/encoder and "
            f"model.encoder.* to match it, or pass a checkpoint whose encoder has this model's settings."
        )
    encoder.load_state_dict(stored)
