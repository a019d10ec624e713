"""Start-up validation of the composed Hydra config: bad values fail before any data is loaded.

Hydra's struct mode already rejects a typo'd key on the command line (``data.wya=5``). This module
checks what struct mode cannot: the keys of every ``_target_`` node against the signature of what it
builds (so ``+data.wya=5`` fails too), the type and range of every known setting (``model.fce_steps``
>= 0, ``optimizer.lr`` > 0, ...), and the choices of the enumerated ones (``model.distance``,
``nan_policy``). Every failure is a :class:`~matchnet.errors.MatchnetError` that names the key, the
value and what is allowed.

Each rule has one home, and this module only asks it:

- a setting's type: the annotation of the parameter it fills (``fce: bool``, ``max_epochs: int | None``),
  read with :func:`~matchnet.rules.from_annotation`;
- the data group: the fields of its settings dataclasses (``matchnet.data.settings``), which
  ``validate_data`` builds as the DataModule does, without loading any data;
- the model's ranges and choices: its constructors (``matchnet.model``), run on the meta device by
  :func:`check_model`, which costs no memory;
- ranges of third-party settings (optimizer, scheduler, trainer) and of the top-level keys: the tables
  below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from matchnet.data import EpisodeDataModule
from matchnet.data.splits import STAGES
from matchnet.errors import MatchnetError
from matchnet.module import ENCODER_INIT, NAN_POLICIES, MatchingNetModule, network_config
from matchnet.rules import SEED, Rule, choice, from_annotation, integer, is_int, number

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu", "hpu")


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
#: Keys of the model group that are the module's, not the network constructor's.
MODEL_OWN_RULES = {
    ENCODER_INIT: Rule(
        lambda v: isinstance(v, str) and v != "",
        "the path of a checkpoint written by src/train.py, whose encoder weights start this model's, or null",
        True,
    ),
}


def _value(node: DictConfig, key: str, prefix: str) -> Any:
    try:
        value = OmegaConf.select(node, key, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise MatchnetError(f"{prefix}{key} cannot be resolved ({err}); set it explicitly.") from err
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _resolved(node: DictConfig, name: str) -> dict[str, Any]:
    """``node`` as a resolved plain dict; ``name`` (``model``) names it in the error."""
    try:
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise MatchnetError(f"{name} cannot be resolved ({err}); set its values explicitly.") from err


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


def check_keys(node: DictConfig | None, prefix: str, own: Mapping[str, Rule] | None = None) -> None:
    """Every key of a ``_target_`` node (recursively) must be a parameter of what it builds, of the type
    its annotation gives (``int``, ``float | None``, ``bool``, ...). ``own``: top-level keys that are not
    passed to the target (``model.encoder_init``), each checked by its rule instead."""
    if isinstance(node, DictConfig) and "_target_" in node:
        raw = OmegaConf.to_container(node, resolve=False)
        for key, rule in (own or {}).items():
            if key in raw:
                rule.validate(f"{prefix}{key}", _value(node, key, prefix))
                del raw[key]
        _check_target(node, raw, prefix)


def _is_data_module(target: Any) -> bool:
    return isinstance(target, type) and issubclass(target, EpisodeDataModule)


def _parameters(target: Callable[..., Any]) -> Mapping[str, inspect.Parameter] | None:
    """``target``'s parameters with their annotations evaluated (as strings when they cannot be), or None
    for a builtin without a signature."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without a signature: let them judge
        return None
    try:
        return inspect.signature(target, eval_str=True).parameters
    except (NameError, AttributeError, TypeError, SyntaxError):
        # An annotation its module cannot evaluate at run time (a name imported for type checking only):
        # the keys are still checked, the types are left to the constructor.
        return signature.parameters


def _check_target(node: DictConfig, raw: dict[str, Any], prefix: str) -> None:
    """The keys of ``node`` (``raw``: its unresolved content) first, then their types and child nodes."""
    target = _target(raw, prefix)
    if _is_data_module(target):  # its settings dataclasses say which keys it has, and check their types
        target.check_keys([k for k in raw if not k.startswith("_")], name=raw["_target_"])
        return
    settings = [k for k in raw if not (isinstance(k, str) and k.startswith("_") and k.endswith("_"))]
    params = _parameters(target)
    if params is None:
        return
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        names = [name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        for key in settings:
            if key not in names:
                raise MatchnetError(
                    f"{prefix}{key} is not a setting of {raw['_target_']}; known settings: "
                    f"{', '.join(sorted(names))}. Remove it or fix its spelling."
                )
    for key in settings:
        child = raw[key]
        if isinstance(child, dict) and "_target_" in child:
            _check_target(node[key], child, f"{prefix}{key}.")
        elif key in params and (rule := from_annotation(params[key].annotation)) is not None:
            rule.validate(f"{prefix}{key}", _value(node, key, prefix))


def _group_nodes(group: DictConfig | None) -> Iterable[tuple[str, DictConfig]]:
    """``(name, node)`` of every ``_target_`` entry of a group of several (callbacks, logger)."""
    if not isinstance(group, DictConfig):
        return []
    return [(str(k), v) for k, v in group.items() if isinstance(v, DictConfig) and "_target_" in v]


def validate_data(data: DictConfig | None, stages: Sequence[str] = STAGES) -> None:
    """Check the data group's keys and settings (train and eval) for a run that reads ``stages``: a
    DataModule of ``matchnet.data`` checks them itself (``check_settings``), without loading any data."""
    if data is None:
        raise MatchnetError("The data group is missing; choose one, e.g. data=omniglot.")
    check_keys(data, "data.")
    target = _target(data, "data.")
    if _is_data_module(target):
        settings = {key: _value(data, key, "data.") for key in data if not key.startswith("_")}
        target.check_settings(settings, name=data.get("_target_"), stages=stages)


def check_model(model: DictConfig) -> torch.nn.Module:
    """Build the network on the meta device (no memory, no data): its constructors own the model's ranges
    and choices (``model.fce_steps >= 0``, ``model.distance``, the encoder's sizes), stated once there.
    Returns the (meta) network."""
    no_compile = {"compile": False} if "compile" in model else {}  # torch.compile: nothing to check, slow
    try:
        with torch.device("meta"):
            return hydra.utils.instantiate(network_config(_resolved(model, "model")) | no_compile)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, MatchnetError):
            raise MatchnetError(str(cause)) from cause
        raise MatchnetError(
            f"model.* cannot build {model.get('_target_')}: {cause or err}. Fix the model settings it names."
        ) from err


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


def _check_method(cfg: DictConfig) -> None:
    """The training method (``method``: a MatchingNetModule subclass, absent: the Matching Network) and its
    settings; it must train on what the data gives (episodes, or image batches with
    ``data.train_batch_size``)."""
    node = cfg.get("method")
    check_keys(node, "method.")
    target = _target(node, "method.") if node is not None else MatchingNetModule
    if not (isinstance(target, type) and issubclass(target, MatchingNetModule)):
        raise MatchnetError(
            f"method._target_={node.get('_target_')!r} is not a matchnet training module (a subclass of "
            "matchnet.module.MatchingNetModule); see conf/experiment/results_baseline.yaml for an example."
        )
    name = node.get("_target_") if node is not None else "the Matching Network (no method)"
    batch_size = OmegaConf.select(cfg, "data.train_batch_size", default=None)
    if getattr(target, "TRAINS_ON", "episodes") == "images":
        if batch_size is None:
            raise MatchnetError(
                f"{name} trains on mini-batches of training images, but data.train_batch_size is null; "
                "set it, e.g. data.train_batch_size=128."
            )
    elif batch_size is not None:
        raise MatchnetError(
            f"data.train_batch_size={batch_size} makes the training batches plain images, but {name} "
            "trains on episodes; set data.train_batch_size=null (or train the baseline classifier: "
            "experiment=results_baseline)."
        )
    check = getattr(target, "check_settings", None)
    if check is not None:
        settings = _resolved(node, "method") if node is not None else {}
        check({k: v for k, v in settings.items() if k != "_target_"}, _resolved(cfg.model, "model"))


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
            check_keys(node, f"{group}.", MODEL_OWN_RULES if group == "model" else None)
        if not any(p.requires_grad for p in check_model(cfg.model).parameters()):
            raise MatchnetError(
                f"The model ({cfg.model.get('_target_')} with encoder "
                f"{OmegaConf.select(cfg.model, 'encoder._target_')}) has no parameters to train; test a "
                "parameter-free model without training: python src/eval.py model=pixels."
            )
        _check_method(cfg)
        _check_nan_policy(cfg)
        check_rules(cfg.get("optimizer"), OPTIMIZER_RULES, "optimizer.")
        check_rules(cfg.get("scheduler"), SCHEDULER_RULES, "scheduler.")
        for name, node in _group_nodes(cfg.get("callbacks")):
            check_keys(node, f"callbacks.{name}.")
    else:
        if cfg.get("data") is not None:
            check_keys(cfg.data, "data.")
        if cfg.get("model") is not None:  # src/eval.py model=pixels: a parameter-free model, no checkpoint
            check_keys(cfg.model, "model.", MODEL_OWN_RULES)
            check_model(cfg.model)
    for name, node in _group_nodes(cfg.get("logger")):
        check_keys(node, f"logger.{name}.")
