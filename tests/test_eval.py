"""src/eval.py checks the data of the split it reads (test) only; src/train.py checks every split."""

from __future__ import annotations

import subprocess
from pathlib import Path

import hydra
import pytest

from helpers.demo_server import SHIPPED_CKPT
from helpers.fixture_types import ComposeConfig
from helpers.scripts import last_json, run_main
from matchnet.config import validate_data
from matchnet.errors import MatchnetError
from matchnet.pipeline import EVAL_STAGES

pytestmark = pytest.mark.data

# The Lake split has 659 test classes (the evaluation alphabets; at most 47 in one alphabet) but only
# 172 validation classes.
WAY = 200


def evaluate(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """The shipped Lake checkpoint (trained on within-alphabet episodes) tested on 2 episodes."""
    if not SHIPPED_CKPT.is_file():
        pytest.fail(f"{SHIPPED_CKPT} does not exist; this test needs the shipped Lake checkpoint.")
    return run_main(
        "eval.py",
        f"ckpt_path={SHIPPED_CKPT}",
        *overrides,
        "data.query=1",
        "data.test_episodes=2",
        "logger=none",
        f"hydra.run.dir={tmp_path}/eval",
        cwd=tmp_path,
        check=False,
    )


def test_eval_class_count_check_reads_only_the_test_split(
    omniglot_root: Path, compose_config: ComposeConfig
) -> None:
    """The check alone, without a model: the eval config's data, built for the stages ``evaluate`` reads,
    accepts a way that only the validation split is too small for; built for every stage (as training
    builds it) it refuses that way and names the split."""
    data = compose_config(
        "eval", [f"data.root={omniglot_root}", "data.split=lake", f"data.way={WAY}", "data.download=false"]
    ).data
    validate_data(data, EVAL_STAGES)
    assert hydra.utils.instantiate(data, stages=EVAL_STAGES).num_classes("test") >= WAY
    with pytest.raises(MatchnetError, match=f"data.way={WAY} but the lake val split has only 172 classes"):
        hydra.utils.instantiate(data).num_classes("test")


def test_eval_checks_only_the_test_split(omniglot_root: Path, tmp_path: Path) -> None:
    proc = evaluate(tmp_path, f"data.way={WAY}", "data.within_alphabet=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = last_json(proc.stdout)
    assert (result["split"], result["way"], result["episodes"]) == ("lake", WAY, 2)
    # Within one alphabet the test split itself is too small, and the message says so.
    proc = evaluate(tmp_path, f"data.way={WAY}")
    assert proc.returncode == 2
    assert f"data.way={WAY} with data.within_alphabet=true, but the largest alphabet of the lake test " in (
        proc.stderr
    )


def test_train_still_checks_every_split(omniglot_root: Path, tmp_path: Path) -> None:
    proc = run_main(
        "train.py",
        "data.split=lake",
        f"data.way={WAY}",
        "debug=fdr",
        "logger=none",
        f"hydra.run.dir={tmp_path}/train",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"data.way={WAY} but the lake val split has only 172 classes" in proc.stderr
    assert "Traceback" not in proc.stderr
