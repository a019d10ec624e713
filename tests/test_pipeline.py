"""pipeline: which data settings an evaluation uses."""

from __future__ import annotations

from omegaconf import OmegaConf

from matchnet.pipeline import data_config_for_eval

OMNIGLOT = "matchnet.data.OmniglotDataModule"


def test_eval_keeps_the_checkpoint_episodes_but_this_machines_data_location() -> None:
    cfg = OmegaConf.create({"data": {"_target_": OMNIGLOT, "root": "/here", "way": 5, "num_workers": 2}})
    stored = {"_target_": OMNIGLOT, "root": "/elsewhere", "way": 20, "num_workers": 0}
    merged = data_config_for_eval(cfg, stored)
    assert (merged.root, merged.way, merged.num_workers) == ("/here", 20, 2)


def test_eval_of_another_data_module_keeps_its_stored_location() -> None:
    cfg = OmegaConf.create({"data": {"_target_": OMNIGLOT, "root": "/here", "way": 5}})
    stored = {"_target_": "matchnet.data.MiniImageNetDataModule", "root": "/mini", "way": 5}
    assert data_config_for_eval(cfg, stored).root == "/mini"
