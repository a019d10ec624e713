"""The search and dashboard settings compose and validate: a search space of real keys, a tuned value
that is never a test metric, tags that W&B accepts."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from helpers.fixture_types import ComposeConfig
from helpers.paths import CONF
from matchnet.config import validate
from matchnet.errors import MatchnetError

SEARCHES = sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("search", SEARCHES)
def test_search_space_names_real_settings(compose_config: ComposeConfig, search: str) -> None:
    cfg = compose_config("train", [f"hparams_search={search}"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    assert sweeper.n_trials >= 1 and sweeper.max_failure_rate == 1.0
    assert cfg.optimized_metric.startswith("val/")
    assert {"optimizer.lr", "model.temperature", "model.learn_temperature", "model.fce_steps"} <= set(
        sweeper.params
    )
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, default="__missing__") != "__missing__", f"{key} is not a setting"
    for experiment in EXPERIMENTS:  # every experiment can be searched, with a debug budget
        composed = compose_config(
            "train", [f"hparams_search={search}", f"experiment={experiment}", "debug=limit"]
        )
        validate(composed, "train")


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiments_tag_their_runs(compose_config: ComposeConfig, experiment: str) -> None:
    """Every experiment is tagged first by its data set (the data module's name), then two more."""
    cfg = compose_config("train", [f"experiment={experiment}"])
    data_set = cfg.data._target_.rsplit(".", 1)[-1].removesuffix("DataModule").lower()
    assert cfg.tags[0] == data_set and len(cfg.tags) >= 3


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            "optimized_metric=test/acc",
            "optimized_metric='test/acc' is invalid: it must be a metric logged while",
        ),
        ("optimized_metric=''", "optimized_metric='' is invalid"),
        ("tags=[omniglot,'']", "tags=['omniglot', ''] is invalid: it must be a list of non-empty strings"),
        ("tags=omniglot", "tags='omniglot' is invalid"),
    ],
)
def test_bad_search_settings_are_named(compose_config: ComposeConfig, override: str, needle: str) -> None:
    cfg = compose_config("train", [override])
    with pytest.raises(MatchnetError) as raised:
        validate(cfg, "train")
    assert needle in str(raised.value)
