"""benchmarks/omniglot_report.py without training: the baselines' table and the rule for shipped files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report():
    path = ROOT / "benchmarks" / "omniglot_report.py"
    spec = importlib.util.spec_from_file_location("omniglot_report", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["omniglot_report"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def eval_run(folder: Path, way: int, shot: int, acc: float, ci: float, encoder: str) -> dict:
    """What src/eval.py leaves for one setting: its composed config (the part the report reads)."""
    (folder / ".hydra").mkdir(parents=True)
    config = OmegaConf.create({"model": {"encoder": {"_target_": encoder}}})
    OmegaConf.save(config, folder / ".hydra" / "config.yaml")
    return {
        "status": "ok", "way": way, "shot": shot, "query": 15 if way == 5 else 5, "episodes": 1000,
        "test_acc": acc, "test_acc_ci95": ci, "split": "vinyals", "readout": "nearest", "fce": False,
        "distance": "cosine", "run_dir": str(folder),
    }  # fmt: skip


def test_pixels_row_beside_the_papers_with_margins(report, tmp_path: Path) -> None:
    accuracies = {(5, 1): 0.41, (5, 5): 0.70, (20, 1): 0.267, (20, 5): 0.40}
    tests = {
        s: eval_run(tmp_path / f"{s[0]}w{s[1]}s", *s, acc, 0.01, "matchnet.model.pixels.Pixels")
        for s, acc in accuracies.items()
    }
    model = report.Model("pixels", [], None, tests)
    assert model.method == "pixels" and model.split == "vinyals"
    lines = report.baselines_section([model])
    table = "\n".join(lines)
    assert "| 5-way 1-shot | 41.00 ± 1.00 | 41.7 |" in table
    assert "| 20-way 5-shot | 40.00 ± 1.00 | 42.6 |" in table
    assert "`pixels` 5w1s: vs Pixels within the CI of 41.7 (-0.70)" in table
    assert "`pixels` 5w5s: vs Pixels above 63.2 (+6.80)" in table
    assert "`pixels` 20w5s: vs Pixels below 42.6 (-2.60)" in table
    assert "no training" in table


def test_a_trained_encoder_is_not_taken_for_pixels(report, tmp_path: Path) -> None:
    tests = {(5, 1): eval_run(tmp_path / "5w1s", 5, 1, 0.9, 0.01, "matchnet.model.Conv4")}
    assert report.Model("untrained_conv4", [], None, tests).method == "matchnet"


def shipped_file(path: Path, val_episodes: int, val_acc: float | None) -> Path:
    data = {"split": "vinyals", "way": 20, "shot": 1, "query": 5, "val_episodes": val_episodes,
            "within_alphabet": False, "rotations": True, "image_size": 28, "seed": 0}  # fmt: skip
    checkpoint = {"state_dict": {}, "hyper_parameters": {"model": {}, "data": data}}
    if val_acc is not None:
        checkpoint["val_acc_best"] = val_acc
    torch.save(checkpoint, path)
    return path


def test_shipped_file_replaced_only_when_higher_on_the_same_validation(report, tmp_path: Path) -> None:
    old = shipped_file(tmp_path / "old.ckpt", 500, 0.95)
    better = report.verdict(old, shipped_file(tmp_path / "better.ckpt", 500, 0.96))
    assert better.replace and better.words == "replace" and "same validation settings" in better.basis
    worse = report.verdict(old, shipped_file(tmp_path / "worse.ckpt", 500, 0.94))
    assert not worse.replace and worse.words == "keep the shipped one"
    unknown = report.verdict(old, shipped_file(tmp_path / "unknown.ckpt", 500, None))
    assert not unknown.replace and unknown.words.startswith("not comparable")


def test_other_validation_counts_are_scored_again_on_the_candidates_episodes(
    report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = []

    def rescored(ckpt: Path, settings: tuple) -> float:
        scored.append((ckpt.name, dict(settings)))
        return {"old.ckpt": 0.97, "new.ckpt": 0.96}[ckpt.name]

    monkeypatch.setattr(report, "rescored", rescored)
    # The shipped file's stored accuracy (on 100 episodes) is lower, but on the same 500 it is higher.
    judged = report.verdict(
        shipped_file(tmp_path / "old.ckpt", 100, 0.90), shipped_file(tmp_path / "new.ckpt", 500, 0.96)
    )
    assert not judged.replace and (judged.old, judged.new) == (0.97, 0.96)
    assert "500 validation episodes" in judged.basis
    assert [name for name, _ in scored] == ["old.ckpt", "new.ckpt"]
    assert all(s["val_episodes"] == 500 and s["way"] == 20 for _, s in scored)


def test_a_file_not_retrained_keeps_its_earlier_entry(report, tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(
        "# Trained\n\n## a.ckpt\n\n- model: A\n- test: **1 %**\n\n## b.ckpt\n\n- model: B\n"
    )
    shipped_file(tmp_path / "omniglot-lake-20w1s.ckpt", 100, 0.8)
    assert report.previous_entry(tmp_path / "README.md", "b.ckpt") == ["- model: B"]
    lines = report.ship([], tmp_path)
    kept = lines[lines.index("## omniglot-lake-20w1s.ckpt") :]
    assert kept[2].startswith("Kept from an earlier round (`lake_fce` has no tested checkpoint")
    assert "Not written: `vinyals_fce` has no tested checkpoint yet." in lines  # no file, no run


def training_job(report, folder: Path, best_val: float, overrides: list[str]):
    folder.mkdir(parents=True)
    return report.Job(folder, {"status": "ok", "overrides": overrides}, [(2500, best_val)])


def test_the_candidate_of_several_runs_is_the_best_on_validation(report, tmp_path: Path) -> None:
    def model(name: str, best_val: float | None):
        job = None if best_val is None else training_job(report, tmp_path / name / "0", best_val, [])
        return report.Model(name, [job] if job else [], job, {})

    runs = [model("vinyals_fce", 0.9647), model("vinyals_fce_init", 0.9671), model("siamese", 0.99)]
    name, chosen = report.candidate(("vinyals_fce", "vinyals_fce_init"), runs)
    assert name == "vinyals_fce_init" and chosen is runs[1]
    assert report.candidate(("vinyals_fce", "vinyals_fce_init"), runs[:1])[0] == "vinyals_fce"
    tie = [model("a", 0.95), model("b", 0.95)]
    assert report.candidate(("a", "b"), tie)[0] == "a"  # the first named on ties
    untrained = [model("vinyals_fce", None)]
    assert report.candidate(("vinyals_fce", "vinyals_fce_init"), untrained) == ("vinyals_fce", untrained[0])


def test_the_retrain_command_names_a_variant_folder(report, tmp_path: Path) -> None:
    overrides = ["experiment=results_vinyals_fce", "ckpt_path=auto", "model.encoder_init=checkpoints/b.ckpt"]
    job = training_job(report, tmp_path / "0", 0.96, overrides)
    assert report.retrain_command("vinyals_fce_init", job) == (
        "NAME=vinyals_fce_init OMP_NUM_THREADS=1 bash benchmarks/omniglot_results.sh vinyals_fce "
        "model.encoder_init=checkpoints/b.ckpt"
    )
    siamese = ["experiment=results_siamese", "data.val_episodes=500"]
    plain = training_job(report, tmp_path / "1", 0.96, siamese)
    assert report.retrain_command("siamese", plain) == (
        "OMP_NUM_THREADS=1 bash benchmarks/omniglot_results.sh siamese data.val_episodes=500"
    )
