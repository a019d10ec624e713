"""End to end: src/predict.py run as a user runs it, on checkpoints made here and on the shipped one."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers.scripts import run_main, run_script
from helpers.small_models import save_checkpoint, strokes
from matchnet.errors import MatchnetError
from matchnet.predicting import predict_task

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CKPT = ROOT / "checkpoints" / "omniglot-lake-20w1s.ckpt"
# The shipped checkpoint; MATCHNET_SHIPPED_CKPT points the test at another one (e.g. a fresh training run).
SHIPPED_CKPT = Path(os.environ.get("MATCHNET_SHIPPED_CKPT", DEFAULT_CKPT))
CLASSES = {"alpha": 1, "beta": 2, "gamma": 1}  # class folder -> number of support images (K varies)


def predict(*overrides: str, cwd: Path, fresh_process: bool = False) -> subprocess.CompletedProcess[str]:
    """Run src/predict.py from ``cwd`` (in this process unless ``fresh_process``), job folder ``cwd/run``."""
    run = run_script if fresh_process else run_main
    return run("predict.py", *overrides, f"hydra.run.dir={cwd / 'run'}", cwd=cwd, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (
        f"predict.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc


def last_line(stdout: str) -> str:
    return stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sharp (low-temperature, no FCE) random checkpoint, a support folder and a query folder.

    Support images are black-on-white PNGs and one JPEG of various sizes; each query is an exact copy
    of one support image, named ``<n>_<label>.<ext>``, so its expected label is known.
    """
    root = tmp_path_factory.mktemp("predict")
    save_checkpoint(root / "model.ckpt", fce=False, temperature=0.01)
    support, queries = root / "support", root / "queries"
    queries.mkdir()
    seed = 0
    for label, shots in CLASSES.items():
        (support / label).mkdir(parents=True)
        for k in range(shots):
            seed += 1
            drawing = strokes(seed, size=(40 + 20 * seed, 50))
            if seed == 2:
                path = support / label / f"{k}.jpg"
                drawing.convert("RGB").save(path, quality=95)
            else:
                path = support / label / f"{k}.png"
                drawing.save(path)
            shutil.copy(path, queries / f"{seed}_{label}{path.suffix}")
    return root


def test_prints_predictions_for_a_query_folder(workspace: Path, tmp_path: Path) -> None:
    proc = ok(
        predict(
            f"support_dir={workspace / 'support'}",
            f"query={workspace / 'queries'}",
            f"ckpt_path={workspace / 'model.ckpt'}",
            cwd=tmp_path,
        )
    )
    result = json.loads(last_line(proc.stdout))
    files = sorted((workspace / "queries").iterdir())
    assert isinstance(result, list) and len(result) == len(files) == 4
    assert [item["query"] for item in result] == [str(f) for f in files]
    for item, file in zip(result, files, strict=True):
        assert set(item) == {"query", "label", "probs"}
        assert list(item["probs"]) == sorted(CLASSES)
        assert sum(item["probs"].values()) == pytest.approx(1.0, abs=1e-4)
        assert item["label"] == max(item["probs"], key=item["probs"].get)
        assert item["label"] == file.stem.split("_", 1)[1]  # an exact copy of a support image
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["status"] == "ok" and summary["queries"] == 4 and summary["classes"] == 3
    assert summary["support_images"] == 4
    assert json.loads((tmp_path / "run" / "predictions.json").read_text()) == result
    assert "Traceback" not in proc.stderr


def test_single_query_written_to_output_file(workspace: Path, tmp_path: Path) -> None:
    query = workspace / "support" / "beta" / "1.png"
    out = tmp_path / "results" / "preds.json"
    proc = ok(
        predict(
            f"support_dir={workspace / 'support'}",
            f"query={query}",
            f"ckpt_path={workspace / 'model.ckpt'}",
            f"output={out}",
            cwd=tmp_path,
        )
    )
    assert str(out) in last_line(proc.stdout) and "Wrote 1 prediction" in last_line(proc.stdout)
    written = json.loads(out.read_text())
    assert len(written) == 1 and written[0]["query"] == str(query) and written[0]["label"] == "beta"
    assert sorted(p.name for p in out.parent.iterdir()) == ["preds.json"]  # no temporary file left


def _bad_input(case: str, workspace: Path, tmp: Path) -> tuple[list[str], str]:
    """Overrides for one bad input, and the path the error must name."""
    support, queries, ckpt = workspace / "support", workspace / "queries", workspace / "model.ckpt"
    if case == "missing support":
        return [f"support_dir={tmp / 'nowhere'}", f"query={queries}", f"ckpt_path={ckpt}"], str(
            tmp / "nowhere"
        )
    if case == "empty support":
        (tmp / "empty").mkdir()
        return [f"support_dir={tmp / 'empty'}", f"query={queries}", f"ckpt_path={ckpt}"], str(tmp / "empty")
    if case in ("class without images", "not an image"):
        copy = tmp / "support"
        shutil.copytree(support, copy)
        if case == "class without images":
            (copy / "delta").mkdir()
            return [f"support_dir={copy}", f"query={queries}", f"ckpt_path={ckpt}"], str(copy / "delta")
        (copy / "beta" / "notes.txt").write_text("not an image")
        return [f"support_dir={copy}", f"query={queries}", f"ckpt_path={ckpt}"], str(
            copy / "beta" / "notes.txt"
        )
    if case == "missing query":
        return [f"support_dir={support}", f"query={tmp / 'q.png'}", f"ckpt_path={ckpt}"], str(tmp / "q.png")
    if case == "empty query folder":
        (tmp / "q").mkdir()
        return [f"support_dir={support}", f"query={tmp / 'q'}", f"ckpt_path={ckpt}"], str(tmp / "q")
    if case == "missing checkpoint":
        return [f"support_dir={support}", f"query={queries}", f"ckpt_path={tmp / 'no.ckpt'}"], str(
            tmp / "no.ckpt"
        )
    if case == "foreign checkpoint":
        torch.save({"weights": torch.zeros(3)}, tmp / "foreign.ckpt")
        return [
            f"support_dir={support}",
            f"query={queries}",
            f"ckpt_path={tmp / 'foreign.ckpt'}",
        ], "foreign.ckpt"
    if case == "incompatible checkpoint":
        save_checkpoint(tmp / "fce.ckpt", fce=True)
        state = torch.load(tmp / "fce.ckpt", weights_only=False)
        state["hyper_parameters"]["model"]["fce"] = False  # weights of an FCE net, settings of a plain one
        torch.save(state, tmp / "fce.ckpt")
        return [f"support_dir={support}", f"query={queries}", f"ckpt_path={tmp / 'fce.ckpt'}"], "fce.ckpt"
    if case == "support_dir not set":
        return [f"query={queries}", f"ckpt_path={ckpt}"], "support_dir"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("missing support", marks=pytest.mark.e2e),  # the one case in a fresh process
        "empty support",
        "class without images",
        "not an image",
        "missing query",
        "empty query folder",
        "missing checkpoint",
        "foreign checkpoint",
        "incompatible checkpoint",
        "support_dir not set",
    ],
)
def test_bad_input_exits_2_naming_the_path(case: str, workspace: Path, tmp_path: Path) -> None:
    overrides, named = _bad_input(case, workspace, tmp_path)
    # One case in a real process: the exit status a shell sees.
    proc = predict(*overrides, cwd=tmp_path, fresh_process=case == "missing support")
    assert proc.returncode == 2, (
        f"{case}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    )
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and named in errors[0], proc.stderr[-3000:]


def test_missing_default_checkpoint_is_a_clear_error(workspace: Path, tmp_path: Path) -> None:
    """A project without the released checkpoint: the error names where it was looked for."""
    cfg = OmegaConf.create(
        {"support_dir": str(workspace / "support"), "query": str(workspace / "queries"), "ckpt_path": None}
    )
    with pytest.raises(MatchnetError, match=re.escape(str(tmp_path / DEFAULT_CKPT.relative_to(ROOT)))):
        predict_task(cfg, project_root=tmp_path)


@pytest.mark.skipif(not DEFAULT_CKPT.is_file(), reason=f"{DEFAULT_CKPT} is not in this checkout")
def test_without_ckpt_path_the_released_checkpoint_is_used(workspace: Path, tmp_path: Path) -> None:
    proc = ok(predict(f"support_dir={workspace / 'support'}", f"query={workspace / 'queries'}", cwd=tmp_path))
    assert json.loads((tmp_path / "run" / "result.json").read_text())["ckpt_path"] == str(DEFAULT_CKPT)
    assert len(json.loads(last_line(proc.stdout))) == len(list((workspace / "queries").iterdir()))


# ---------------------------------------------------------------------- the shipped checkpoint

ALPHABET = "Angelic"  # an evaluation alphabet: never seen in training under the Lake split
CHARACTERS = [f"character{i:02d}" for i in range(1, 6)]


@pytest.mark.skipif(
    not SHIPPED_CKPT.is_file(),
    reason=f"{SHIPPED_CKPT} does not exist yet (it is produced by training omniglot-lake-20w1s)",
)
def test_shipped_checkpoint_classifies_held_out_characters(omniglot_root: Path, tmp_path: Path) -> None:
    """5 held-out characters, one drawing each as support and another as query: at least 4 of 5 right."""
    support, queries = tmp_path / "support", tmp_path / "queries"
    queries.mkdir()
    with zipfile.ZipFile(omniglot_root / "images_evaluation.zip") as archive:
        names = archive.namelist()
        for character in CHARACTERS:
            prefix = f"images_evaluation/{ALPHABET}/{character}/"
            drawings = sorted(n for n in names if n.startswith(prefix) and n.endswith(".png"))
            assert len(drawings) == 20, (character, drawings[:3])
            (support / character).mkdir(parents=True)
            (support / character / "1.png").write_bytes(archive.read(drawings[0]))
            (queries / f"{character}.png").write_bytes(archive.read(drawings[10]))
    proc = ok(
        predict(f"support_dir={support}", f"query={queries}", f"ckpt_path={SHIPPED_CKPT}", cwd=tmp_path)
    )
    result = json.loads(last_line(proc.stdout))
    right = [Path(item["query"]).stem == item["label"] for item in result]
    assert len(right) == 5 and sum(right) >= 4, result
