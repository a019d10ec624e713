"""Write results/omniglot.md, omniglot.csv and omniglot_curves.png from the results runs.

    python benchmarks/omniglot_report.py                       # every model under multirun/results
    python benchmarks/omniglot_report.py --best multirun/results/vinyals_fce   # the checkpoint to test

Layout (what the commands in the README's Results section make):

    <runs>/<model>/<job>/          jobs of `src/train.py -m experiment=results_<model> ...`
    <runs>/<model>/test/<setting>/ runs of `src/eval.py ckpt_path=<chosen best.ckpt> ...`, one per setting

`benchmarks/omniglot_results.sh MODEL` makes both for one model.

The rule, fixed before any test run: within a model's training sweep the job with the highest
validation accuracy (``val/acc``, the value that also picks its ``best.ckpt``) is chosen, ties to the
lower job number; only that checkpoint is tested. Test accuracy never enters a choice. Every figure
written here is read from a file a run wrote (``result.json``, ``csv/*/metrics.csv``, ``best.ckpt``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import sys
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from types import ModuleType

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from matchnet.checkpoints import MODULE_CLASS, read_checkpoint  # noqa: E402
from matchnet.io import atomic_open  # noqa: E402
from matchnet.overrides import override_keys, override_values  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
# Published accuracies (%), Omniglot with the Vinyals split: Vinyals et al. 2016, Table 1 (Matching
# Nets, cosine, FCE: without and with fine-tuning) and Snell et al. 2017, Table 1 (Prototypical Nets).
PAPER_MATCHNET = {(5, 1): (98.1, 97.9), (5, 5): (98.9, 98.7), (20, 1): (93.8, 93.5), (20, 5): (98.5, 98.7)}
PAPER_PROTONET = {(5, 1): 98.8, (5, 5): 99.7, (20, 1): 96.0, (20, 5): 98.9}
# Lake et al. 2015 within-alphabet 20-way 1-shot error (%): people, Bayesian Program Learning, and the
# deep Siamese convnet of Koch et al. 2015 as reported there.
# Vinyals et al. 2016, Table 1 (Omniglot): the baselines beside Matching Nets, as (name, accuracies,
# fine-tuned accuracies or None). The Siamese rows are Koch et al. 2015's network as measured there.
PAPER_BASELINES = {
    "pixels": ("Pixels", {(5, 1): 41.7, (5, 5): 63.2, (20, 1): 26.7, (20, 5): 42.6}, None),
    "baseline": ("Baseline classifier", {(5, 1): 80.0, (5, 5): 95.0, (20, 1): 69.5, (20, 5): 89.1}, None),
    "siamese": (
        "Convolutional Siamese Net",
        {(5, 1): 96.7, (5, 5): 98.4, (20, 1): 88.0, (20, 5): 96.5},
        {(5, 1): 97.3, (5, 5): 98.4, (20, 1): 88.1, (20, 5): 97.0},
    ),
}
LAKE_ERRORS = (
    ("People (Lake et al. 2015)", 4.5),
    ("Bayesian Program Learning (Lake et al. 2015)", 3.3),
    ("Deep Siamese convnet (Koch et al. 2015)", 8.0),
)


@dataclass
class Job:
    """One training job: its folder, result and validation curve ``[(episodes, val acc)]``."""

    folder: Path
    result: dict
    curve: list[tuple[int, float]] = field(default_factory=list)

    @cached_property
    def best_val(self) -> float:
        """The best validation accuracy: the one stored with ``best.ckpt`` (the value that picked it),
        else the best of the logged curve."""
        ckpt = self.folder / "checkpoints" / "best.ckpt"
        if ckpt.is_file():
            stored = read_checkpoint(ckpt).get("val_acc_best")
            if stored is not None:
                return float(stored)
        return max((acc for _, acc in self.curve), default=float("nan"))

    @property
    def overrides(self) -> str:
        return " ".join(self.result.get("overrides", []))

    @property
    def val_episodes(self) -> object:
        """``data.val_episodes`` of the job's composed config (Hydra saves it in ``.hydra/``)."""
        path = self.folder / ".hydra" / "config.yaml"
        return OmegaConf.load(path).data.val_episodes if path.is_file() else "?"


def read_curve(folder: Path) -> list[tuple[int, float]]:
    """``(training episodes, val/acc)`` per validation, from the job's CSV logs (one per start of the
    run: ``csv/version_N/metrics.csv``; a resumed run continues in the next version)."""
    points: dict[int, float] = {}
    for path in sorted((folder / "csv").glob("**/metrics.csv")):
        with path.open() as handle:
            rows = [r for r in csv.DictReader(handle) if r.get("val/acc")]
            points |= {int(r["step"]): float(r["val/acc"]) for r in rows}
    return sorted(points.items())


def numbered(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def training_jobs(model_dir: Path) -> list[Job]:
    jobs = []
    for folder in numbered(model_dir):
        path = folder / "result.json"
        result = json.loads(path.read_text()) if path.is_file() else {"status": "missing"}
        jobs.append(Job(folder, result, read_curve(folder)))
    return jobs


def chosen(jobs: list[Job]) -> Job | None:
    """The rule: the finished job with the highest validation accuracy (lower job number on ties)."""
    finished = [j for j in jobs if j.result.get("status") == "ok" and not math.isnan(j.best_val)]
    return max(finished, key=lambda j: (j.best_val, -int(j.folder.name)), default=None)


def test_results(model_dir: Path) -> dict[tuple[int, int], dict]:
    """``(way, shot) -> result`` of the model's evaluation jobs."""
    tests = {}
    if (model_dir / "test").is_dir():
        for folder in sorted(p for p in (model_dir / "test").iterdir() if p.is_dir()):
            path = folder / "result.json"
            if path.is_file() and (result := json.loads(path.read_text())).get("status") == "ok":
                tests[(result["way"], result["shot"])] = result | {"run_dir": str(folder)}
    return tests


def temperature(ckpt: Path) -> float | None:
    """The kernel temperature stored in a checkpoint (learnt or fixed)."""
    if not ckpt.is_file():
        return None
    state = read_checkpoint(ckpt)["state_dict"]
    value = state.get("net.kernel.log_temperature")
    return None if value is None else math.exp(float(value))


def cell(result: dict | None) -> str:
    return "—" if result is None else f"{100 * result['test_acc']:.2f} ± {100 * result['test_acc_ci95']:.2f}"


def compare(result: dict | None, reference: float) -> str:
    """``above`` / ``within the CI`` / ``below`` ``reference`` (%), judged with the result's own CI."""
    if result is None:
        return "not measured"
    margin, ci = 100 * result["test_acc"] - reference, 100 * result["test_acc_ci95"]
    if abs(margin) <= ci:
        return f"within the CI of {reference} ({margin:+.2f})"
    return f"{'above' if margin > 0 else 'below'} {reference} ({margin:+.2f})"


def model_details(model: Model) -> str:
    """What a model is and what its chosen job cost: kernel and read-out, training data and budget."""
    if model.method == "pixels":
        polarity = "the image (ink 1, background 0)"
        polarity = "1 - the image (background 1, ink 0)" if model.inverted else polarity
        return f"no training: {polarity}, flattened; cosine nearest neighbour over the support"
    job = model.pick
    if job is None:
        return "no finished training"
    config = OmegaConf.load(job.folder / ".hydra" / "config.yaml")
    data, net = config.data, config.model
    train_way = data.train_way if data.train_way is not None else data.way
    train_shot = data.train_shot if data.train_shot is not None else data.shot
    train_query = data.train_query if data.train_query is not None else data.query
    augment = f"augmentation {data.get('augment', 0.0)}"
    if model.method == "baseline":
        result = job.result
        return (
            f"{result.get('head', '?')} head over all training classes, {result.get('train_batches')} "
            f"shuffled mini-batches of {data.train_batch_size} images ({result.get('train_images')} "
            f"images, up to the chosen checkpoint), {augment}; tested by "
            f"{net.get('readout', 'attention')} read-out, {net.distance} kernel, on its features "
            f"(job {job.folder.name})"
        )
    if model.method == "siamese":
        return (
            f"weighted L1 similarity and sigmoid, trained on the same/different (query, support) pairs of "
            f"{train_way}-way {train_shot}-shot {train_query}-query episodes, {augment}, "
            f"{job.result.get('train_episodes')} episodes up to the chosen checkpoint; a query takes the "
            f"class of the support image with the highest 'same' probability (job {job.folder.name})"
        )
    temp = temperature(job.folder / "checkpoints" / "best.ckpt")
    kernel = f"{net.distance} kernel, temperature {'learnt, final' if net.learn_temperature else 'fixed at'} "
    kernel += "?" if temp is None else f"{temp:.4f}"
    initial = net.get("fce_initial_read", "zero")
    fce = f"FCE with K = {net.fce_steps} steps, r_0 = {initial}" if net.fce else "no FCE"
    within = ", within-alphabet" if data.get("train_within_alphabet") else ""
    init = f", encoder initialised from {net.encoder_init}" if net.get("encoder_init") else ""
    return (
        f"{kernel}; {fce}; {net.get('readout', 'attention')} read-out; trained on {train_way}-way "
        f"{train_shot}-shot {train_query}-query episodes{within}, {augment}{init}, "
        f"{job.result.get('train_episodes')} episodes up to the chosen checkpoint (job {job.folder.name})"
    )


@dataclass
class Model:
    """One results model: its training jobs (none for a parameter-free one), the chosen job, its tests."""

    name: str
    jobs: list[Job]
    pick: Job | None
    tests: dict[tuple[int, int], dict]

    @property
    def result(self) -> dict:
        """The chosen job's result, else (a model without training) any of its test results."""
        if self.pick is not None:
            return self.pick.result
        return next(iter(self.tests.values()), {})

    @property
    def split(self) -> str | None:
        return self.result.get("split")

    @cached_property
    def encoder(self) -> dict:
        """``model.encoder`` of an untrained model's evaluation config (empty for a trained model, whose
        checkpoint brings its own)."""
        if self.pick is not None or "run_dir" not in self.result:
            return {}
        config = OmegaConf.load(Path(self.result["run_dir"]) / ".hydra" / "config.yaml")
        return OmegaConf.to_container(config.model.encoder)

    @cached_property
    def method(self) -> str:
        """``matchnet``, ``baseline``, ``siamese`` or ``pixels`` (the encoder of an untrained model's
        evaluation config), which decides the table the model is reported in."""
        if "method" in self.result:
            return str(self.result["method"])
        if str(self.encoder.get("_target_", "")).endswith(".Pixels"):
            return "pixels"
        return "matchnet"

    @property
    def inverted(self) -> bool:
        """Whether an untrained pixels model saw the images inverted (``model.encoder.invert``)."""
        return bool(self.encoder.get("invert", False))

    @property
    def label(self) -> str:
        result = self.result
        if self.method == "pixels":
            inverted = ", inverted (background 1)" if self.inverted else ""
            return f"`{self.name}`: pixels, cosine nearest neighbour{inverted}"
        if self.method == "baseline":
            return f"`{self.name}`: baseline classifier, {result.get('head', '?')} head"
        if self.method == "siamese":
            return f"`{self.name}`: convolutional Siamese net"
        readout = result.get("readout", "attention")
        kind = "Prototypical read-out" if readout == "prototype" else "Matching Network"
        fce = ", FCE" if result.get("fce") else ", no FCE"
        return f"`{self.name}`: {kind}{fce}, {result.get('distance', '?')}"


def load(runs: Path) -> list[Model]:
    """Every model under ``runs``: one with training jobs, or (parameter-free) with test runs only."""
    models = []
    for model_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        jobs, tests = training_jobs(model_dir), test_results(model_dir)
        if jobs or tests:
            models.append(Model(model_dir.name, jobs, chosen(jobs), tests))
    return models


VALIDATION_KEYS = ("split", "way", "shot", "query", "val_episodes", "within_alphabet", "rotations", "seed")
# Settings that make two checkpoints' validation episodes comparable at all once rescored on one set.
SAME_TASK_KEYS = ("split", "within_alphabet", "rotations", "image_size")


@dataclass
class Verdict:
    """The rule for replacing a shipped checkpoint: ``replace`` only when the candidate's validation
    accuracy is higher on the same validation episodes."""

    old: float | None
    new: float | None
    basis: str
    replace: bool

    @property
    def words(self) -> str:
        if self.old is None or self.new is None:
            return f"not comparable ({self.basis})"
        return "replace" if self.replace else "keep the shipped one"


@cache
def rescored(ckpt: Path, settings: tuple[tuple[str, object], ...]) -> float:
    """Mean accuracy of ``ckpt`` on the validation episodes that the data ``settings`` fix."""
    data = dict(settings)
    accuracies = recipe_report().val_accuracies(ckpt, int(data["val_episodes"]), None, data)
    return float(accuracies.double().mean())


def recipe_report() -> ModuleType:
    """``benchmarks/recipe_report.py`` (the scoring on validation episodes), loaded from its file: this
    script also runs in-process, where ``benchmarks/`` is not on the import path."""
    if "recipe_report" not in sys.modules:
        path = Path(__file__).with_name("recipe_report.py")
        spec = importlib.util.spec_from_file_location("recipe_report", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["recipe_report"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["recipe_report"]


def verdict(shipped_path: Path, candidate_path: Path) -> Verdict:
    """Compare a shipped checkpoint with a candidate on validation. With the same validation settings,
    their stored best validation accuracies (the values that chose them); when only the number or the
    seed of the validation episodes differs, both are scored again on the candidate's validation
    episodes (way, shot, query, count and episode seed), so the two meet the same episodes."""
    shipped, ours = read_checkpoint(shipped_path), read_checkpoint(candidate_path)
    a, b = shipped["hyper_parameters"]["data"], ours["hyper_parameters"]["data"]
    # A shipped file stores its test setting in data.way/shot/query (so that src/eval.py alone
    # reproduces its number); its val_acc_best is still that of its training run's validation.
    if all(a.get(k) == b.get(k) for k in VALIDATION_KEYS if k not in ("way", "shot", "query")):
        old, new = shipped.get("val_acc_best"), ours.get("val_acc_best")
        basis = "stored best validation accuracies, same validation settings"
        if old is None or new is None:
            return Verdict(None, None, "a checkpoint without its best validation accuracy", False)
        return Verdict(float(old), float(new), basis, new > old)
    if any(a.get(k) != b.get(k) for k in SAME_TASK_KEYS):
        return Verdict(None, None, "other validation task", False)
    keys = ("way", "shot", "query", "val_episodes", "episode_seed", "seed")
    settings = tuple((k, b.get(k, 0)) for k in keys)
    old, new = rescored(shipped_path, settings), rescored(candidate_path, settings)
    basis = f"both scored on the candidate's {b['val_episodes']} validation episodes"
    return Verdict(old, new, basis, new > old)


def shipped_comparison(models: list[Model], folder: Path) -> list[str]:
    """The shipped checkpoints beside the chosen runs, on validation (the rule: :func:`verdict`)."""
    lines = [
        "",
        "## Shipped checkpoints against these runs, on validation",
        "",
        "A shipped checkpoint is replaced by a model here only when that model's validation accuracy, on "
        "the same validation episodes, is higher: the stored best validation accuracies when the two "
        "were validated alike, else both checkpoints scored again on the candidate's validation "
        "episodes (`--ship` writes the copies).",
        "",
        "| shipped file | its val acc (%) | candidate | candidate val acc (%) | on | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for filename, (names, _) in SHIPPED.items():
        name, model = candidate(names, models)
        path = folder / filename
        if not path.is_file() or model is None or model.pick is None:
            continue
        judged = verdict(path, model.pick.folder / "checkpoints" / "best.ckpt")
        shown_old = "?" if judged.old is None else f"{100 * judged.old:.2f}"
        shown_new = "?" if judged.new is None else f"{100 * judged.new:.2f}"
        lines.append(
            f"| {filename} | {shown_old} | {name} (job {model.pick.folder.name}) | {shown_new} | "
            f"{judged.basis} | {judged.words} |"
        )
    return lines


def write_curves(models: list[Model], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for model in models:
        for job in model.jobs:
            if job.curve:
                steps, accs = zip(*job.curve, strict=True)
                label = (
                    model.name if len(model.jobs) == 1 else f"{model.name}/{job.folder.name} {job.overrides}"
                )
                label += " (chosen)" if job is model.pick and len(model.jobs) > 1 else ""
                label += " (x: mini-batches)" if model.method == "baseline" else ""
                ax.plot(
                    steps,
                    [100 * a for a in accs],
                    marker="o",
                    ms=3,
                    label=label,
                    lw=1.5 if job is model.pick else 0.8,
                )
    ax.set_xlabel("training episodes")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("Validation accuracy (20-way 1-shot episodes) against training episodes", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def budget(result: dict) -> str:
    """A job's training budget: episodes, or mini-batches for the baseline classifier."""
    if result.get("train_batches") is not None:
        return f"{result['train_batches']} batches"
    return str(result.get("train_episodes", "?"))


TUNED = ", no fine-tuning / fine-tuned"


def paper_cell(method: str, setting: tuple[int, int]) -> str:
    _, plain, tuned = PAPER_BASELINES[method]
    return f"{plain[setting]}" if tuned is None else f"{plain[setting]} / {tuned[setting]}"


def baselines_section(baselines: list[Model]) -> list[str]:
    """The paper's baselines measured here beside its Table 1 rows, and each one's margin."""
    if not baselines:
        return []
    methods = list(dict.fromkeys(m.method for m in baselines))
    out = [
        "## The paper's baselines (Table 1 of Vinyals et al. 2016), on the same test episodes",
        "",
        "| setting | "
        + " | ".join(m.label for m in baselines)
        + " | "
        + " | ".join(
            f"{PAPER_BASELINES[k][0]} (paper{TUNED if PAPER_BASELINES[k][2] else ''})" for k in methods
        )
        + " |",
        "|---" * (len(baselines) + len(methods) + 1) + "|",
    ]
    for way, shot in SETTINGS:
        cells = [cell(m.tests.get((way, shot))) for m in baselines]
        papers = [paper_cell(k, (way, shot)) for k in methods]
        out.append(f"| {way}-way {shot}-shot | " + " | ".join(cells + papers) + " |")
    out.append("")
    out += [f"- {model.label}: {model_details(model)}" for model in baselines]
    out += ["", "Each against the paper's row for its method (margin in points, as above):", ""]
    for model in baselines:
        name, plain, tuned = PAPER_BASELINES[model.method]
        for setting in SETTINGS:
            result = model.tests.get(setting)
            line = f"- `{model.name}` {setting[0]}w{setting[1]}s: vs {name} {compare(result, plain[setting])}"
            if tuned is not None:
                line += f" (no fine-tuning), {compare(result, tuned[setting])} (fine-tuned)"
            out.append(line)
    out.append("")
    return out


def markdown(models: list[Model], curves: str, runs_label: str = "multirun/results") -> str:
    tested = [m for m in models if m.pick or m.tests]
    vinyals = [m for m in tested if m.split == "vinyals" and m.method == "matchnet"]
    baselines = [m for m in tested if m.split == "vinyals" and m.method in PAPER_BASELINES]
    lake = [m for m in tested if m.split == "lake"]
    out = [
        "# Omniglot: Matching Networks beside the published results",
        "",
        f"Written by `python benchmarks/omniglot_report.py` from the runs under `{runs_label}/`. "
        "Test accuracy in percent, mean ± 95% CI (normal approximation) over the stated number of fixed, "
        "seeded test episodes (seed 0: every model meets the same episodes). 28x28 images, Conv4.",
        "",
        "Choice rule, fixed before any test run: within a model's training sweep, the job with the highest "
        "validation accuracy is chosen, and its checkpoint with the best validation accuracy is the one "
        "tested. Note that `src/train.py` also tests each training job on 20-way 1-shot at its end; those "
        "numbers sit in the jobs' `result.json` files and never enter a choice.",
        "",
    ]
    if vinyals:
        out += [
            "## Vinyals split (Table 1 of Vinyals et al. 2016)",
            "",
            "| setting | "
            + " | ".join(m.label for m in vinyals)
            + " | Matching Nets (paper, no fine-tuning / fine-tuned)"
            + " | Prototypical Nets (Snell et al. 2017) |",
            "|---" * (len(vinyals) + 3) + "|",
        ]
        for way, shot in SETTINGS:
            cells = [cell(m.tests.get((way, shot))) for m in vinyals]
            paper = "{} / {}".format(*PAPER_MATCHNET[(way, shot)])
            out.append(
                f"| {way}-way {shot}-shot | "
                + " | ".join(cells)
                + f" | {paper} | {PAPER_PROTONET[(way, shot)]} |"
            )
        out.append("")
        out += [f"- {model.label}: {model_details(model)}" for model in vinyals]
        out += [
            "",
            "Test episodes and queries per class: "
            + "; ".join(
                f"{w}w{s}s: {r['episodes']} × {r['query']}" for (w, s), r in sorted(vinyals[0].tests.items())
            )
            + ".",
            "",
        ]
        out += [
            "Each model against the published numbers (margin in points; 'within the CI' when the margin is "
            "smaller than our 95% CI):",
            "",
        ]
        for model in vinyals:
            for way, shot in SETTINGS:
                result = model.tests.get((way, shot))
                out.append(
                    f"- `{model.name}` {way}w{shot}s: vs Matching Nets "
                    f"{compare(result, PAPER_MATCHNET[(way, shot)][0])} (no fine-tuning), "
                    f"{compare(result, PAPER_MATCHNET[(way, shot)][1])} (fine-tuned); vs Prototypical Nets "
                    f"{compare(result, PAPER_PROTONET[(way, shot)])}"
                )
        out.append("")
    out += baselines_section(baselines)
    for model in lake:
        result = model.tests.get((20, 1))
        out += [
            "## Lake et al. (2015) protocol: within-alphabet 20-way 1-shot",
            "",
            "Trained on the 30 background alphabets minus 5 held out for validation; tested on episodes "
            "whose "
            "20 classes all come from one evaluation alphabet. Error rate in percent.",
            "",
            f"Model: {model.label}: {model_details(model)}.",
            "",
            "| model | error % |",
            "|---|---|",
        ]
        if result:
            out.append(
                f"| {model.label} ({result['episodes']} test episodes × {result['query']} queries) | "
                f"**{100 * (1 - result['test_acc']):.2f}** ± {100 * result['test_acc_ci95']:.2f} |"
            )
        out += [f"| {name} | {error} |" for name, error in LAKE_ERRORS] + [""]
    out += [
        "## Every training job and the choice",
        "",
        "| model | job | overrides | best val acc (%) | val episodes | train episodes | temperature"
        " | chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for job in model.jobs:
            ckpt = job.result.get("ckpt_path")
            temp = temperature(Path(ckpt)) if ckpt else None
            out.append(
                f"| {model.name} | {job.folder.name} | {job.overrides or '—'} | {100 * job.best_val:.2f} | "
                f"{job.val_episodes} | {budget(job.result)} | "
                f"{'—' if temp is None else f'{temp:.4f}'} | {'yes' if job is model.pick else ''} |"
            )
    out += shipped_comparison(models, ROOT / "checkpoints")
    out += ["", "## Learning curves", "", f"![validation accuracy against training episodes]({curves})", ""]
    return "\n".join(out)


def rows_csv(models: list[Model]) -> str:
    buffer = io.StringIO()
    fields = [
        "model",
        "method",
        "split",
        "way",
        "shot",
        "query",
        "episodes",
        "test_acc",
        "test_acc_ci95",
        "best_val_acc",
        "train_episodes",
        "train_batches",
        "ckpt_path",
    ]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for model in models:
        for (way, shot), result in sorted(model.tests.items()):
            writer.writerow(
                {
                    "model": model.name,
                    "method": model.method,
                    "split": result["split"],
                    "way": way,
                    "shot": shot,
                    "query": result["query"],
                    "episodes": result["episodes"],
                    "test_acc": result["test_acc"],
                    "test_acc_ci95": result["test_acc_ci95"],
                    "best_val_acc": model.pick.best_val if model.pick else "",
                    "train_episodes": model.pick.result.get("train_episodes") if model.pick else "",
                    "train_batches": model.pick.result.get("train_batches", "") if model.pick else "",
                    "ckpt_path": result.get("ckpt_path") or "",
                }
            )
    return buffer.getvalue()


# Shipped checkpoints: file name -> (the models that may fill it, the test setting its README entry
# names). Of several models, the candidate is the one with the highest best validation accuracy
# (:func:`candidate`); it then still has to beat the shipped file (:func:`verdict`).
SHIPPED = {
    "omniglot-vinyals-5w1s.ckpt": (("vinyals_fce", "vinyals_fce_init"), (5, 1)),
    "omniglot-vinyals-20w1s.ckpt": (("vinyals_fce", "vinyals_fce_init"), (20, 1)),
    "omniglot-lake-20w1s.ckpt": (("lake_fce",), (20, 1)),
    # Not named for a setting: tested on all four, each with its own command; the file stores 20w1s.
    "omniglot-vinyals-baseline.ckpt": (("baseline",), None),
    "omniglot-vinyals-siamese.ckpt": (("siamese",), None),
}


def candidate(names: tuple[str, ...], models: list[Model]) -> tuple[str, Model | None]:
    """Of the models ``names`` that have a chosen job, the one with the highest best validation accuracy
    (the first named on ties), with its name; else the first name and None."""
    by_name = {m.name: m for m in models}
    present = [by_name[n] for n in names if n in by_name and by_name[n].pick is not None]
    if not present:
        return names[0], by_name.get(names[0])
    best = max(present, key=lambda m: m.pick.best_val)  # type: ignore[union-attr]  # max keeps the first on ties
    return best.name, best


def retrain_command(name: str, job: Job) -> str:
    """The command that trains ``job`` again: the experiment's model name, the job's own overrides, and
    ``NAME=`` when the run folder is named otherwise (a variant such as ``vinyals_fce_init``)."""
    overrides = job.result.get("overrides", [])
    model = override_values(overrides).get("experiment", f"results_{name}").removeprefix("results_")
    fixed = ("experiment", "ckpt_path")  # the script sets these itself
    extra = [o for o, key in zip(overrides, override_keys(overrides), strict=True) if key not in fixed]
    prefix = "" if model == name else f"NAME={name} "
    return f"{prefix}OMP_NUM_THREADS=1 bash benchmarks/omniglot_results.sh " + " ".join([model, *extra])


# Kept in a shipped checkpoint: what loading, evaluating and predicting need (no optimiser state).
SHIPPED_KEYS = (
    "state_dict",
    "hyper_parameters",
    "epoch",
    "global_step",
    "pytorch-lightning_version",
    "val_acc_best",
    "trained_episodes",
    "skipped_episodes",
    MODULE_CLASS,  # which LightningModule a baseline's checkpoint rebuilds
)


def previous_entry(readme: Path, filename: str) -> list[str]:
    """The bullet lines of ``filename``'s entry in an earlier ``--ship`` README (none if absent)."""
    if not readme.is_file():
        return []
    entry, inside = [], False
    for line in readme.read_text().splitlines():
        if line.startswith("## "):
            inside = line == f"## {filename}"
        elif inside and line.startswith("- "):
            entry.append(line)
    return entry


def ship(models: list[Model], folder: Path) -> list[str]:
    """Copy the chosen checkpoints into ``folder`` under ``SHIPPED``'s names and describe them.

    The copies keep the weights and settings, drop the optimiser state, and point ``data.root`` at the
    default location (evaluation uses the local data root anyway). Returns the README lines.
    """
    lines = [
        "# Trained Omniglot checkpoints",
        "",
        "Written by `python benchmarks/omniglot_report.py --ship`: the checkpoint chosen on validation "
        "(see `results/omniglot.md`, 'Every training job and the choice') of each results model, without "
        "its optimiser state. Evaluate with the command given; it reproduces the accuracy of "
        "`results/omniglot.md` exactly (same seed, same episodes).",
        "",
    ]
    for filename, (names, setting) in SHIPPED.items():
        name, model = candidate(names, models)
        way, shot = setting or (20, 1)
        result = model.tests.get((way, shot)) if model else None
        target = folder / filename
        if (model is None or model.pick is None or result is None) and target.is_file():
            # Not retrained in these runs: the file and its entry stay as an earlier round wrote them.
            lines += [
                f"## {filename}",
                "",
                f"Kept from an earlier round (`{name}` has no tested checkpoint in these runs; its figures "
                "are in `results/round1/omniglot.md`):",
                "",
                *previous_entry(folder / "README.md", filename),
                "",
            ]
            continue
        if model is None or model.pick is None or result is None:
            lines += [f"## {filename}", "", f"Not written: `{name}` has no tested checkpoint yet.", ""]
            continue
        if target.is_file():
            judged = verdict(target, Path(result["ckpt_path"]))
            if not judged.replace:
                lines += [
                    f"## {filename}",
                    "",
                    f"Kept: `{name}` is not above the shipped file on validation ({judged.words}; "
                    f"{judged.basis}). The shipped file, as an earlier `--ship` described it:",
                    "",
                    *previous_entry(folder / "README.md", filename),
                    "",
                ]
                continue
        checkpoint = read_checkpoint(result["ckpt_path"])
        slim = {key: checkpoint[key] for key in SHIPPED_KEYS if key in checkpoint}
        job, query = model.pick, result["query"]
        # The file named for a setting evaluates at it with `src/eval.py ckpt_path=<file>` alone.
        slim["hyper_parameters"]["data"] |= {
            "root": "data/omniglot",
            "way": way,
            "shot": shot,
            "query": query,
            "test_episodes": result["episodes"],
        }
        with atomic_open(target, "wb") as handle:
            torch.save(slim, handle)
        within = " data.within_alphabet=true" if result["split"] == "lake" else ""
        temp = temperature(Path(result["ckpt_path"]))
        lines += [
            f"## {filename}",
            "",
            f"- model: {model.label}" + ("" if temp is None else f"; temperature {temp:.4f}"),
            f"- trained: `{name}` job {job.folder.name} ({job.overrides or 'no overrides'}), "
            f"{budget(job.result)} training{'' if 'batches' in budget(job.result) else ' episodes'}"
            + f", best validation accuracy {100 * job.best_val:.2f} %",
        ]
        if setting is not None:
            lines += [
                f"- test: {way}-way {shot}-shot, {result['split']} split{within and ', within alphabet'}: "
                f"**{cell(result)} %** over {result['episodes']} episodes × {query} queries per class",
                f"- evaluate: `python src/eval.py ckpt_path=checkpoints/{filename}` (the file stores "
                f"data.way={way} data.shot={shot} data.query={query} "
                f"data.test_episodes={result['episodes']})",
            ]
        else:
            for (w, k), tested in sorted(model.tests.items()):
                lines.append(
                    f"- test {w}-way {k}-shot: **{cell(tested)} %** over {tested['episodes']} episodes × "
                    f"{tested['query']} queries per class: `python src/eval.py "
                    f"ckpt_path=checkpoints/{filename} data.way={w} data.shot={k} "
                    f"data.query={tested['query']} data.test_episodes={tested['episodes']}`"
                )
        lines += [f"- retrain: `{retrain_command(name, job)}`", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "multirun" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--best", type=Path, help="print the chosen best.ckpt of this model's sweep and exit")
    parser.add_argument(
        "--ship",
        type=Path,
        nargs="?",
        const=ROOT / "checkpoints",
        default=None,
        help="also copy the chosen checkpoints there (default: checkpoints/) with a README",
    )
    args = parser.parse_args(argv)
    if args.best is not None:
        pick = chosen(training_jobs(args.best)) if args.best.is_dir() else None
        if pick is None:
            print(
                f"error: {args.best} holds no finished training job with validation results; train it first "
                "(see the README's Results section).",
                file=sys.stderr,
            )
            return 2
        print(pick.folder / "checkpoints" / "best.ckpt")
        return 0
    if not args.runs.is_dir():
        print(
            f"error: --runs {args.runs} is not a folder; train the results models first "
            "(see the README's Results section).",
            file=sys.stderr,
        )
        return 2
    models = load(args.runs)
    if not models:
        print(f"error: no training jobs under {args.runs}.", file=sys.stderr)
        return 2
    from matchnet.io import write_text_atomic

    write_curves(models, args.out / "omniglot_curves.png")
    runs = args.runs.resolve()
    runs_label = str(runs.relative_to(ROOT)) if runs.is_relative_to(ROOT) else args.runs.name
    write_text_atomic(args.out / "omniglot.md", markdown(models, "omniglot_curves.png", runs_label))
    write_text_atomic(args.out / "omniglot.csv", rows_csv(models))
    print(f"wrote {args.out / 'omniglot.md'}, omniglot.csv and omniglot_curves.png")
    if args.ship is not None:
        write_text_atomic(args.ship / "README.md", "\n".join(ship(models, args.ship)))
        print(f"wrote the chosen checkpoints and {args.ship / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
