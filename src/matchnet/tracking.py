"""What a run tells its user and its dashboard: the config tree at start-up, W&B groups, names and
tags, the resolved config and parameter counts when fitting starts, and the value a sweeper optimises.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import rich
import rich.console
import rich.syntax
import rich.tree
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from matchnet.errors import MatchnetError
from matchnet.hydra_job import in_multirun
from matchnet.io import write_text_atomic

log = logging.getLogger(__name__)

CONFIG_TREE_FILE = "config_tree.log"
MAX_NAME_CHARS = 64
# Shown first in the start-up tree; the other top-level keys follow in config order.
TREE_ORDER = ("data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger")


def sweeper_optimises() -> bool:
    """Whether this job belongs to a sweep that optimises the returned value (Optuna, Nevergrad, Ax)."""
    if not in_multirun():
        return False
    sweeper = HydraConfig.get().sweeper
    return any(key in sweeper for key in ("direction", "optim", "ax_config"))


def config_tree(cfg: DictConfig) -> rich.tree.Tree:
    """The resolved config as a rich tree, one branch per top-level key (as lightning-hydra-template)."""
    tree = rich.tree.Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in TREE_ORDER if k in cfg] + [k for k in cfg if k not in TREE_ORDER]
    for key in keys:
        branch = tree.add(str(key), style="bold", guide_style="dim")
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else f"{node}\n"
        branch.add(rich.syntax.Syntax(text, "yaml", theme="ansi_dark", word_wrap=True))
    return tree


def print_config_tree(cfg: DictConfig, run_dir: Path | None) -> None:
    """Print the resolved config as a tree and save it as ``<run_dir>/config_tree.log``."""
    tree = config_tree(cfg)
    rich.print(tree)
    if run_dir is not None:
        console = rich.console.Console(record=True, file=io.StringIO(), width=120)
        console.print(tree)
        write_text_atomic(run_dir / CONFIG_TREE_FILE, console.export_text())


def _hydra_job() -> Any:
    return HydraConfig.get().job if HydraConfig.initialized() else None


def wandb_group(cfg: DictConfig) -> str:
    """One W&B group per sweep: ``<task_name>-<sweep folder>``; a single run's group is its task name."""
    if not in_multirun():
        return str(cfg.task_name)
    sweep_dir = Path(HydraConfig.get().sweep.dir).resolve()
    return f"{cfg.task_name}-{sweep_dir.parent.name}-{sweep_dir.name}"


def wandb_name(cfg: DictConfig) -> str:
    """A short, readable run name: the task, the job number in a sweep, and the overrides when they fit."""
    name = str(cfg.task_name)
    job = _hydra_job()
    if job is None:
        return name
    if in_multirun():
        name += f"#{job.num}"
    overrides = str(job.override_dirname)
    if overrides and len(name) + 1 + len(overrides) <= MAX_NAME_CHARS:
        name += f" {overrides}"
    return name


def wandb_settings(cfg: DictConfig) -> DictConfig:
    """``cfg.logger`` with the W&B group and name filled in where the config leaves them null."""
    group = OmegaConf.create(OmegaConf.to_container(cfg.logger, resolve=True))
    node = group.get("wandb")
    if isinstance(node, DictConfig) and "_target_" in node:
        if node.get("group") is None:
            node.group = wandb_group(cfg)
        if node.get("name") is None:
            node.name = wandb_name(cfg)
    return group


def parameter_counts(module: pl.LightningModule) -> dict[str, int]:
    """Parameters of the whole network, its encoder g' = f' and its Full Context Embeddings (0 without)."""
    net = module.net

    def count(part: Any) -> int:
        return sum(p.numel() for p in part.parameters()) if part is not None else 0

    fce = count(getattr(net, "context", None)) + count(getattr(net, "attention_lstm", None))
    return {"total": count(net), "encoder": count(getattr(net, "encoder", None)), "fce": fce}


class RunInfo(pl.Callback):
    """When fitting (or, for ``src/eval.py``, testing) starts: logs the full resolved config and the
    parameter counts to every logger, and prints the run folder and the W&B run once (rank 0).

    Logging at the start, not at the end, means a crashed or interrupted run shows its whole config.
    """

    def __init__(self, cfg: DictConfig, run_dir: Path, loggers: list[Logger]) -> None:
        self.config: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        self.run_dir = run_dir
        self.loggers = loggers  # the run's own: under fast_dev_run, trainer.loggers are placeholders
        self.done = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.done or not trainer.is_global_zero:
            return
        self.done = True
        counts = parameter_counts(pl_module)
        for logger in self.loggers:
            logger.log_hyperparams(self.config | {"params": counts})
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update({f"params/{k}": v for k, v in counts.items()})
        lines = [f"Run folder: {self.run_dir}"]
        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                run = logger.experiment
                mode = "offline" if run.offline else "online"
                files = Path(run.dir).parent
                lines.append(f"W&B run: {run.path} ({mode}, group {run.group}, files in {files})")
        for line in lines:  # once, on the console and in the run's log file
            log.info("%s", line)
        log.info("Parameters: %s", counts)


def optimized_value(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value of ``cfg.optimized_metric`` among the metrics logged while fitting.

    Raises:
        MatchnetError: the metric was never logged (a run without validation) and a sweeper optimises it.
    """
    name = cfg.get("optimized_metric")
    if not name:
        return None
    value = metrics.get(name)
    if value is None:
        message = (
            f"optimized_metric={name!r} was not logged by this run (it has no validation: check "
            "trainer.limit_val_batches, trainer.check_val_every_n_epoch and trainer.max_epochs), so there "
            f"is nothing to optimise. Enable validation, or set optimized_metric to one of: "
            f"{', '.join(sorted(metrics)) or 'none logged'}."
        )
        if sweeper_optimises():
            raise MatchnetError(message)
        log.warning("%s", message)
        return None
    value = float(value)
    return None if math.isnan(value) else value
