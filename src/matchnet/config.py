"""Start-up validation of the composed Hydra config: bad values fail before any data is loaded.

Hydra's struct mode already rejects a typo'd key on the command line (``data.wya=5``). This module
checks what struct mode cannot: the keys of every ``_target_`` node against the signature of what it
builds (so ``+data.wya=5`` fails too), the type and range of every known setting (``model.fce_steps``
>= 0, ``optimizer.lr`` > 0, ...), and the choices of the enumerated ones (``model.distance``,
``nan_policy``). Every failure is a :class:`~matchnet.errors.MatchnetError` that names the key, the
value and what is allowed.

A rule (:class:`~matchnet.rules.Rule`) is declared once. The data group's rules are the fields of its settings
dataclasses (``matchnet.data.settings``): ``validate_data`` builds them, as the DataModule does, so the
config and the Python API share every data rule (and its unknown-key check). The model, optimizer,
scheduler and trainer are checked here against the tables below; the model's constructor keeps its own
checks for its Python API.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from matchnet.data import EpisodeDataModule
from matchnet.errors import MatchnetError
from matchnet.model import DISTANCES, INITIAL_READS, READOUTS
from matchnet.rules import FLAG, SEED, Rule, choice, integer, is_int, number

NAN_POLICIES = ("stop", "skip")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")


MODEL_RULES = {
    "fce": FLAG,
    "fce_steps": integer(0),
    "distance": choice(sorted(DISTANCES)),
    "temperature": number(0, inclusive=False),
    "learn_temperature": FLAG,
    "readout": choice(READOUTS),
    "fce_initial_read": choice(INITIAL_READS),
    "encoder.in_channels": integer(1),
    "encoder.hidden": integer(1),
    "encoder.blocks": integer(1),
    "encoder.image_size": integer(1),
}


OPTIMIZER_RULES = {
    "lr": number(0, inclusive=False),
    "weight_decay": number(0),
    "momentum": number(0),
    "eps": number(0, inclusive=False),
}
SCHEDULER_RULES = {
    "step_size": integer(1),
    "gamma": number(0, inclusive=False),
    "T_max": integer(1),
    "eta_min": number(0),
}
TRAINER_RULES = {
    "max_epochs": integer(-1, optional=True),
    "max_steps": integer(-1),
    "check_val_every_n_epoch": integer(1, optional=True),
    "log_every_n_steps": integer(1),
    "gradient_clip_val": number(0, optional=True),
    "num_nodes": integer(1),
    "accelerator": choice(ACCELERATORS),
    "deterministic": Rule(lambda v: isinstance(v, bool) or v == "warn", "true, false or warn", True),
}
TOP_RULES = {
    "optimized_metric": Rule(
        lambda v: isinstance(v, str) and v != "" and not v.startswith("test"),
        "a metric logged while fitting, e.g. val/acc_best or val/loss, never a test metric (tuning must not "
        "see the test set), or null",
        True,
    ),
    "tags": Rule(
        lambda v: isinstance(v, (list, tuple)) and all(isinstance(t, str) and t != "" for t in v),
        "a list of non-empty strings, e.g. [omniglot, 5w1s, fce]",
    ),
    "seed": SEED,
    "nan_policy": choice(NAN_POLICIES),
    "ckpt_path": Rule(lambda v: isinstance(v, str) and v != "", "a checkpoint path, last or auto", True),
}


def _value(node: DictConfig, key: str, prefix: str) -> Any:
    try:
        value = OmegaConf.select(node, key, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise MatchnetError(f"{prefix}{key} cannot be resolved ({err}); set it explicitly.") from err
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def check_rules(node: DictConfig | None, rules: Mapping[str, Rule], prefix: str) -> None:
    """Check every key of ``rules`` that ``node`` has; ``prefix`` (``"data."``) names the group."""
    if node is None:
        return
    for key, rule in rules.items():
        if OmegaConf.select(node, key, default="__absent__", throw_on_missing=False) == "__absent__":
            continue
        rule.validate(f"{prefix}{key}", _value(node, key, prefix))


def _target(node: DictConfig | dict[str, Any], prefix: str) -> Callable[..., Any]:
    path = node.get("_target_")
    try:
        return get_object(path)
    except Exception as err:  # Hydra raises ImportError or ValueError, wrapped differently by version
        raise MatchnetError(
            f"{prefix}_target_={path!r} cannot be imported ({type(err).__name__}); check the spelling "
            "of the class path, e.g. matchnet.model.MatchingNetwork."
        ) from err


def check_keys(node: DictConfig | None, prefix: str) -> None:
    """Every key of a ``_target_`` node (recursively) must be a parameter of what it builds."""
    if isinstance(node, DictConfig) and "_target_" in node:
        _check_target_keys(OmegaConf.to_container(node, resolve=False), prefix)


def _is_data_module(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, EpisodeDataModule)


def _check_target_keys(node: dict[str, Any], prefix: str) -> None:
    target = _target(node, prefix)
    if _is_data_module(target):  # its settings dataclasses say which keys it has
        target.check_keys([k for k in node if not k.startswith("_")], name=node["_target_"])
        return
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins without a signature: let them judge
        return
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    positional = inspect.Parameter.VAR_POSITIONAL
    names = None if open_ended else [name for name, p in params.items() if p.kind is not positional]
    for key, child in node.items():
        if isinstance(key, str) and key.startswith("_") and key.endswith("_"):
            continue
        if names is not None and key not in names:
            raise MatchnetError(
                f"{prefix}{key} is not a setting of {node['_target_']}; known settings: "
                f"{', '.join(sorted(names))}. Remove it or fix its spelling."
            )
        if isinstance(child, dict) and "_target_" in child:
            _check_target_keys(child, f"{prefix}{key}.")


def _group_nodes(group: DictConfig | None) -> Iterable[tuple[str, DictConfig]]:
    """``(name, node)`` of every ``_target_`` entry of a group of several (callbacks, logger)."""
    if not isinstance(group, DictConfig):
        return []
    return [(str(k), v) for k, v in group.items() if isinstance(v, DictConfig) and "_target_" in v]


def validate_data(data: DictConfig | None) -> None:
    """Check the data group's keys and settings (train and eval): a DataModule of ``matchnet.data``
    checks them itself (``check_settings``), without loading any data."""
    if data is None:
        raise MatchnetError("The data group is missing; choose one, e.g. data=omniglot.")
    check_keys(data, "data.")
    target = _target(data, "data.")
    if _is_data_module(target):
        settings = {key: _value(data, key, "data.") for key in data if not key.startswith("_")}
        target.check_settings(settings, name=data.get("_target_"))


def _check_encoder_size(model: DictConfig | None) -> None:
    """An encoder of ``blocks`` halving blocks needs images of at least ``2**blocks`` pixels."""
    encoder = model.get("encoder") if model is not None else None
    if not isinstance(encoder, DictConfig) or "blocks" not in encoder or "image_size" not in encoder:
        return
    size = _value(encoder, "image_size", "model.encoder.")
    blocks = _value(encoder, "blocks", "model.encoder.")
    if size < 2**blocks:
        raise MatchnetError(
            f"model.encoder.image_size={size} (data.image_size) is too small for "
            f"model.encoder.blocks={blocks}: "
            f"each block halves the image, so it must be at least 2**blocks = {2**blocks}. Raise "
            "data.image_size or lower model.encoder.blocks."
        )


def _check_nan_policy(cfg: DictConfig) -> None:
    """``nan_policy=skip`` needs one process: a rank that skips would stall the others' all-reduce."""
    trainer = cfg.get("trainer")
    if cfg.get("nan_policy") != "skip" or not isinstance(trainer, DictConfig):
        return
    devices, nodes = trainer.get("devices", 1), trainer.get("num_nodes", 1)
    several = (is_int(devices) and devices > 1) or isinstance(devices, ListConfig) and len(devices) > 1
    if several or (is_int(nodes) and nodes > 1):
        raise MatchnetError(
            f"nan_policy=skip with trainer.devices={devices} and trainer.num_nodes={nodes} is not supported: "
            "under DDP a process that skips an episode leaves the others waiting for its gradients. "
            "Use nan_policy=stop with several processes."
        )


def validate(cfg: DictConfig, task: str = "train") -> None:
    """Check ``cfg`` before anything is built; a :class:`MatchnetError` names the first bad setting.

    Args:
        cfg: the composed config of ``src/train.py`` (``task="train"``) or ``src/eval.py`` (``"eval"``).
        task: which entry point; eval has no model, optimizer or callbacks groups.
    """
    check_rules(cfg, {k: r for k, r in TOP_RULES.items() if k in cfg}, "")
    # The trainer first: other groups interpolate its values (scheduler.T_max = trainer.max_epochs).
    check_keys(cfg.get("trainer"), "trainer.")
    check_rules(cfg.get("trainer"), TRAINER_RULES, "trainer.")
    if task == "train":
        validate_data(cfg.get("data"))
        for group in ("model", "optimizer", "scheduler"):
            node = cfg.get(group)
            if node is None and group != "scheduler":
                raise MatchnetError(f"The {group} group is missing; choose one (see conf/{group}/).")
            check_keys(node, f"{group}.")
        check_rules(cfg.get("model"), MODEL_RULES, "model.")
        _check_encoder_size(cfg.get("model"))
        _check_nan_policy(cfg)
        check_rules(cfg.get("optimizer"), OPTIMIZER_RULES, "optimizer.")
        check_rules(cfg.get("scheduler"), SCHEDULER_RULES, "scheduler.")
        for name, node in _group_nodes(cfg.get("callbacks")):
            check_keys(node, f"callbacks.{name}.")
    elif cfg.get("data") is not None:
        check_keys(cfg.data, "data.")
    for name, node in _group_nodes(cfg.get("logger")):
        check_keys(node, f"logger.{name}.")
