"""What ``src/train.py`` and ``src/eval.py`` run: build the parts from the config, fit, test."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger

from matchnet.checkpoints import load_module
from matchnet.errors import MatchnetError
from matchnet.module import MatchingNetModule

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a group node that has a ``_target_`` (loggers, callbacks)."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(node)
        for node in group.values()
        if isinstance(node, DictConfig) and "_target_" in node
    ]


def build_loggers(cfg: DictConfig) -> list[Logger]:
    """Loggers of ``cfg.logger``; W&B goes online only when asked to (``WANDB_MODE=online``)."""
    loggers = instantiate_group(cfg.get("logger"))
    for logger in loggers:
        if isinstance(logger, WandbLogger) and os.environ.get("WANDB_MODE") == "online":
            logger._wandb_init["mode"] = "online"
    return loggers


def job_overrides() -> list[str]:
    """The command-line overrides of this job (empty outside a Hydra app)."""
    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def output_dir() -> Path:
    """This job's Hydra output directory."""
    return Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else Path.cwd()


def _trainer(cfg: DictConfig, loggers: list[Logger]) -> pl.Trainer:
    callbacks = instantiate_group(cfg.get("callbacks"))
    return hydra.utils.instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)


def _result(
    module: MatchingNetModule, datamodule: Any, trainer: pl.Trainer, cfg: DictConfig
) -> dict[str, Any]:
    summary = module.test_summary
    model = module.hparams.model
    return {
        "test_acc": summary["test_acc"],
        "test_acc_ci95": summary["test_acc_ci95"],
        "episodes": summary["episodes"],
        "way": datamodule.way,
        "shot": datamodule.shot,
        "query": datamodule.query,
        "fce": model["fce"],
        "fce_steps": model["fce_steps"],
        "distance": model["distance"],
        "split": datamodule.split,
        "train_episodes": module.trained_episodes,
        "seed": cfg.seed,
    }


def _log_result(loggers: list[Logger], result: dict[str, Any], cfg: DictConfig) -> None:
    """Send the final figures to every logger, also when Lightning replaced them (fast_dev_run)."""
    metrics = {"test/acc_final": result["test_acc"], "test/acc_ci95_final": result["test_acc_ci95"]}
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        logger.log_metrics(metrics)
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(result)
        logger.finalize("success")


def _finish_wandb(loggers: list[Logger]) -> None:
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit on training episodes, keep the best checkpoint by ``val/acc``, test it."""
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = MatchingNetModule(
        model=cfg.model, optimizer=cfg.optimizer, scheduler=cfg.get("scheduler"), data=cfg.data
    )
    loggers = build_loggers(cfg)
    try:
        trainer = _trainer(cfg, loggers)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        result = _result(module, datamodule, trainer, cfg) | {"ckpt_path": best or None}
        _log_result(loggers, result, cfg)
    finally:
        _finish_wandb(loggers)
    return result


def data_config_for_eval(cfg: DictConfig, stored: dict[str, Any] | None) -> DictConfig:
    """The checkpoint's data settings, with this run's explicit ``data.*`` overrides on top.

    Choosing another data group on the command line (``data=...``) replaces them whole.
    """
    overrides = job_overrides()
    if stored is None or any(o.split("=", 1)[0].lstrip("+~") == "data" for o in overrides):
        return cfg.data
    merged = OmegaConf.create(stored)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith("data."):
            OmegaConf.update(merged, key[len("data.") :], OmegaConf.select(cfg.data, key[len("data.") :]))
    return merged


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint on ``data.test_episodes`` episodes."""
    if not cfg.get("ckpt_path"):
        raise MatchnetError(
            "ckpt_path is not set; pass the checkpoint to evaluate, e.g. ckpt_path=PATH/best.ckpt."
        )
    module = load_module(cfg.ckpt_path)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(data_config_for_eval(cfg, module.hparams.get("data")))
    loggers = build_loggers(cfg)
    try:
        trainer = _trainer(cfg, loggers)
        trainer.test(module, datamodule=datamodule, verbose=False)
        result = _result(module, datamodule, trainer, cfg) | {"ckpt_path": str(cfg.ckpt_path)}
        _log_result(loggers, result, cfg)
    finally:
        _finish_wandb(loggers)
    return result
