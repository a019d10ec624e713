"""benchmarks/recipe_report.py: validation-only recipe comparison with paired statistics."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from scipy import stats

from matchnet.module import MatchingNetModule

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.data


def load_script():
    spec = importlib.util.spec_from_file_location("recipe_report", ROOT / "benchmarks" / "recipe_report.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["recipe_report"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def make_run(folder: Path, cfg, seed: int, overrides: list[str], steps: int = 7) -> Path:
    """A run folder like src/train.py leaves: overrides, config, best.ckpt (random weights)."""
    (folder / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), folder / ".hydra" / "overrides.yaml")
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")
    torch.manual_seed(seed)
    module = MatchingNetModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3},
        data=OmegaConf.to_container(cfg.data, resolve=True),
    )
    (folder / "checkpoints").mkdir()
    torch.save(
        {"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict(), "global_step": steps},
        folder / "checkpoints" / "best.ckpt",
    )
    return folder


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture
def config(compose_config, omniglot_root: Path):
    cfg = compose_config("train", ["data.way=5", "model.fce=false", f"data.root={omniglot_root}"])
    return OmegaConf.create(
        {group: OmegaConf.to_container(cfg[group], resolve=True) for group in ("model", "data")}
    )


def test_a_copy_of_a_run_differs_by_exactly_zero(script, config, tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", config, seed=0, overrides=["x=1"])
    shutil.copytree(base, tmp_path / "same")
    other = make_run(tmp_path / "other", config, seed=1, overrides=["x=1", "y=2"])
    out = tmp_path / "recipe.md"
    argv = [str(base), str(tmp_path / "same"), str(other), "--val-episodes", "4", "--out", str(out)]
    assert script.main(argv) == 0
    text = out.read_text()
    assert "Overrides of every run: `x=1`." in text
    assert "| same | (none) | 7 | 7 |" in text and "| other | `y=2` | 7 | 7 |" in text
    assert "- `same`: no difference detected from `base` (+0.00 points" in text
    assert "validation episodes" in text and "test split is never read" in text


def test_paired_statistics_are_scipys(script, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.uniform(0.8, 1.0, 50)
    b = np.clip(a - rng.uniform(0.0, 0.1, 50), 0, 1)
    runs = [
        script.Run(name, tmp_path, [], 1, 1, torch.tensor(values)) for name, values in (("a", a), ("b", b))
    ]
    diff, low, high, p = script.paired(runs[0], runs[1])
    reference = stats.ttest_rel(a, b)
    assert diff == pytest.approx(100 * (a - b).mean())
    ci = reference.confidence_interval(0.95)
    assert (low, high) == pytest.approx((100 * ci.low, 100 * ci.high))
    assert p == pytest.approx(reference.pvalue)
    assert low > 0  # a is better on every episode
    assert script.words("a", "b", diff, low, high, p).startswith("above `b` by ")


def test_a_missing_checkpoint_is_a_clear_error(script, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="best.ckpt does not exist"):
        script.main([str(tmp_path), "--out", str(tmp_path / "x.md")])
    assert not (tmp_path / "x.md").exists()
