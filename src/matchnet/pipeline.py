"""What ``src/train.py`` and ``src/eval.py`` run: build the parts from the config, fit, test."""

from __future__ import annotations

import logging
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import Logger, WandbLogger
from pytorch_lightning.utilities.exceptions import SIGTERMException

from matchnet.checkpoints import AtomicCheckpointIO, load_module
from matchnet.comparisons import write_test_episodes
from matchnet.config import validate, validate_data
from matchnet.distributed import check_episodes, instantiate_trainer, is_global_zero
from matchnet.errors import MatchnetError
from matchnet.hydra_job import job_overrides, output_dir
from matchnet.module import ENCODER_INIT, MatchingNetModule
from matchnet.overrides import override_keys
from matchnet.preemption import interruption
from matchnet.resume import LAST, ResumeEpisodes, check_compatible, checkpoint_dir, resolve_ckpt_path
from matchnet.tracking import RunInfo, optimized_value, print_config_tree, wandb_settings

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
    """Loggers of ``cfg.logger``; a null W&B ``group`` or ``name`` gets one per sweep / a short name
    (:func:`matchnet.tracking.wandb_settings`). W&B's mode is wandb.init's own ``mode`` argument."""
    if not cfg.get("logger"):
        return []
    return instantiate_group(wandb_settings(cfg))


def _trainer(cfg: DictConfig, loggers: list[Logger]) -> pl.Trainer:
    callbacks = instantiate_group(cfg.get("callbacks"))
    if not loggers:  # Lightning's LearningRateMonitor refuses a trainer without loggers
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks += [RunInfo(cfg, output_dir(), loggers), ResumeEpisodes()]
    return instantiate_trainer(
        cfg.trainer, logger=loggers or False, callbacks=callbacks, plugins=[AtomicCheckpointIO()]
    )


def _resume_path(cfg: DictConfig) -> str | None:
    """``cfg.ckpt_path`` for ``trainer.fit`` (``"last"``, a file or None), checked against the model."""
    checkpoints = checkpoint_dir(cfg, output_dir())
    path = resolve_ckpt_path(cfg.get("ckpt_path"), checkpoints)
    if path is not None:
        check_compatible(
            checkpoints / LAST if path == "last" else path,
            OmegaConf.to_container(cfg.model, resolve=True),  # type: ignore[arg-type]
            OmegaConf.to_container(cfg.data, resolve=True),  # type: ignore[arg-type]
        )
    return path


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
        "fce": module.net.fce,
        "fce_steps": model.get("fce_steps", 0),
        "distance": module.net.kernel.distance_name,
        "readout": model.get("readout", "attention"),
        "split": datamodule.split,
        "train_episodes": module.trained_episodes,
        "world_size": trainer.world_size,  # processes, each training one episode per step
        "seed": cfg.seed,
        "episode_seed": datamodule.episode_seed,
    } | (module.result_fields() if hasattr(module, "result_fields") else {})


def _keep_test_episodes(module: MatchingNetModule, datamodule: Any) -> None:
    """Write the per-episode test accuracies and what identifies the episodes beside ``result.json``
    (``test_episodes.csv`` and ``.json``, see :mod:`matchnet.comparisons`); global rank 0 only."""
    if is_global_zero():
        summary = module.test_summary
        settings = datamodule.test_episode_settings()
        write_test_episodes(output_dir(), summary["episode_numbers"], summary["episode_accuracies"], settings)


def _log_result(loggers: list[Logger], result: dict[str, Any], cfg: DictConfig) -> None:
    """Send the final figures to every logger, also when Lightning replaced them (fast_dev_run).

    Global rank 0 only: under DDP the other ranks' loggers are placeholders. The config was logged
    when the run started (:class:`matchnet.tracking.RunInfo`).
    """
    if not is_global_zero():
        return
    metrics = {"test/acc_final": result["test_acc"], "test/acc_ci95_final": result["test_acc_ci95"]}
    for logger in loggers:
        logger.log_metrics(metrics)
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(result)
        logger.finalize("success")


def _finish_wandb(loggers: list[Logger]) -> None:
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def build_module(cfg: DictConfig) -> MatchingNetModule:
    """The LightningModule of ``cfg``: the Matching Network, or the training ``method``'s (a subclass of
    MatchingNetModule, e.g. the baseline classifier: ``conf/experiment/results_baseline.yaml``)."""
    settings = {
        "model": cfg.model,
        "optimizer": cfg.optimizer,
        "scheduler": cfg.get("scheduler"),
        "data": cfg.data,
        "nan_policy": cfg.get("nan_policy", "stop"),
    }
    method = cfg.get("method")
    if method is None:
        return MatchingNetModule(**settings)
    own = OmegaConf.to_container(method, resolve=True)
    assert isinstance(own, dict)
    return hydra.utils.get_class(own.pop("_target_"))(**settings, **own)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit on training episodes, keep the best checkpoint by ``val/acc``, test it.

    The result holds the test figures and ``optimized_value``, the value of ``cfg.optimized_metric``
    (a metric logged while fitting, ``val/acc_best`` by default) that ``src/train.py`` returns to Hydra.

    ``ckpt_path`` resumes an interrupted run (``last``, ``auto`` or a file; see ``matchnet.resume``).
    SIGTERM / SIGINT save ``last.ckpt`` and raise :class:`RunInterrupted`.
    """
    validate(cfg, "train")
    ckpt_path = _resume_path(cfg)
    if is_global_zero():
        print_config_tree(cfg, output_dir())
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = build_module(cfg)
    encoder_init = cfg.model.get(ENCODER_INIT)
    if encoder_init and ckpt_path is None:  # a resumed run has its weights from its checkpoint
        module.init_encoder(encoder_init)
        log.info("Encoder weights from %s (model.%s)", encoder_init, ENCODER_INIT)
    loggers = build_loggers(cfg)
    try:
        trainer = _trainer(cfg, loggers)
        check_episodes(trainer, datamodule, datamodule.stages)
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
            fitted = {name: float(value) for name, value in trainer.callback_metrics.items()}
            optimized = optimized_value(cfg, fitted)  # before testing: a run without validation stops here
            best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        except SIGTERMException as stop:
            raise interruption(trainer, checkpoint_dir(cfg, output_dir()) / LAST) from stop
        _keep_test_episodes(module, datamodule)
        result = _result(module, datamodule, trainer, cfg) | {
            "optimized_metric": cfg.get("optimized_metric"),
            "optimized_value": optimized,
            "ckpt_path": best or None,
        }
        _log_result(loggers, result, cfg)
    finally:
        _finish_wandb(loggers)
    return result


MACHINE_DATA_KEYS = ("root", "download", "num_workers", "pin_memory", "persistent_workers", "device")
#: The stages ``evaluate`` reads: the data is checked for these only (a way larger than the validation
#: split is no reason to refuse a test on the test split).
EVAL_STAGES = ("test",)


def data_config_for_eval(cfg: DictConfig, stored: dict[str, Any] | None) -> DictConfig:
    """The checkpoint's data settings, with this run's explicit ``data.*`` overrides on top.

    Where the data lives and how it is loaded (``MACHINE_DATA_KEYS``) are this machine's, not the
    checkpoint's, when both use the same data module. Choosing another data group on the command
    line (``data=...``) replaces the stored settings whole.
    """
    keys = override_keys(job_overrides())
    if stored is None or "data" in keys:
        return cfg.data
    merged = OmegaConf.create(stored)
    if "seed" in merged and "episode_seed" not in merged:  # written before data.episode_seed: then
        merged.episode_seed = merged.seed  # data.seed drew the val/test episodes too
    if merged.get("_target_") == cfg.data.get("_target_"):
        for key in MACHINE_DATA_KEYS:
            if key in merged and key in cfg.data:
                merged[key] = cfg.data[key]
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(merged, key[len("data.") :], OmegaConf.select(cfg.data, key[len("data.") :]))
    return merged


def _parameter_free_module(cfg: DictConfig) -> MatchingNetModule:
    """The module of ``model=...`` for ``src/eval.py`` without a checkpoint: only a model with nothing to
    train (``model=pixels``) can be tested so; any other needs its trained weights (``ckpt_path``)."""
    if cfg.get("ckpt_path"):
        raise MatchnetError(
            f"ckpt_path={cfg.ckpt_path} and a model group were both given; a checkpoint brings its own "
            "model settings. Drop the model=... override (it is only for parameter-free models such as "
            "model=pixels)."
        )
    module = MatchingNetModule(model=cfg.model, optimizer={})
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if trainable:
        raise MatchnetError(
            f"The model group ({cfg.model.get('_target_')} with encoder "
            f"{OmegaConf.select(cfg.model, 'encoder._target_')}) has {trainable} trainable parameters and no "
            "trained weights; pass ckpt_path=PATH (a checkpoint written by src/train.py) instead. model=... "
            "without a checkpoint is for parameter-free models such as model=pixels."
        )
    return module


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint (or a parameter-free ``model=...``, e.g. ``model=pixels``) on
    ``data.test_episodes`` episodes."""
    if not cfg.get("ckpt_path") and cfg.get("model") is None:
        raise MatchnetError(
            "ckpt_path is not set; pass the checkpoint to evaluate, e.g. ckpt_path=PATH/best.ckpt (or a "
            "parameter-free model without one, e.g. model=pixels)."
        )
    validate(cfg, "eval")
    module = load_module(cfg.ckpt_path) if cfg.get("model") is None else _parameter_free_module(cfg)
    if is_global_zero():
        print_config_tree(cfg, output_dir())
    pl.seed_everything(cfg.seed, workers=True)
    data = data_config_for_eval(cfg, module.hparams.get("data"))
    validate_data(data, EVAL_STAGES)
    datamodule = hydra.utils.instantiate(data, stages=EVAL_STAGES)
    loggers = build_loggers(cfg)
    try:
        trainer = _trainer(cfg, loggers)
        check_episodes(trainer, datamodule, datamodule.stages)
        trainer.test(module, datamodule=datamodule, verbose=False)
        _keep_test_episodes(module, datamodule)
        ckpt = cfg.get("ckpt_path")
        result = _result(module, datamodule, trainer, cfg) | {"ckpt_path": str(ckpt) if ckpt else None}
        _log_result(loggers, result, cfg)
    finally:
        _finish_wandb(loggers)
    return result
