"""Reproduce Table 1 of Vinyals et al. (2016) on Omniglot, and Lake et al.'s (2015) 20-way protocol.

Trains the models of ``benchmarks/omniglot_table.yaml`` with ``src/train.py``, tests each on its
settings (1000 fixed episodes each by default) with ``src/eval.py``, and writes
``<out-dir>/omniglot.md``, ``<out-dir>/omniglot.csv`` and a learning curve per trained model
(``<out-dir>/omniglot_curve_<training>.png``). The best FCE-on checkpoint of each setting is copied
to ``checkpoints/`` with ``checkpoints/README.md``, and ``python src/eval.py ckpt_path=<copy>`` is run
to check that it reproduces the reported accuracy exactly.

    OMP_NUM_THREADS=1 python benchmarks/omniglot_table.py                 # the CPU profile
    python benchmarks/omniglot_table.py --ablation                        # plus the lever ablation
    python benchmarks/omniglot_table.py --per-setting --max-epochs 60 --extra trainer=gpu

Finished runs (``<runs-dir>/<name>/result.json`` with the same overrides) are reused, so an
interrupted benchmark resumes where it stopped; ``--force`` retrains and re-tests everything.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "benchmarks" / "omniglot_table.yaml"
DEFAULT_OUT = ROOT / "results"
STANDARD_OVERRIDES = ["callbacks.progress_bar.refresh_rate=100"]
CSV_COLUMNS = [
    "part",
    "setting",
    "split",
    "way",
    "shot",
    "query",
    "within_alphabet",
    "test_episodes",
    "fce",
    "distance",
    "training",
    "train_way",
    "train_shot",
    "train_query",
    "train_episodes",
    "acc",
    "acc_ci95",
    "error",
    "published_matching_networks",
    "published_prototypical_networks",
    "train_wall_s",
    "eval_wall_s",
    "machine",
    "threads",
    "seed",
    "train_command",
    "eval_command",
]

log = logging.getLogger("omniglot_table")


class BenchmarkError(RuntimeError):
    """A bad flag, a bad benchmark config or a failed run, with what to do about it."""


# --------------------------------------------------------------------------- plan


@dataclass
class Training:
    """One ``src/train.py`` run."""

    name: str
    overrides: list[str]
    lever: str = ""


@dataclass
class Setting:
    """One test setting and the trainings whose checkpoints are tested on it."""

    name: str
    split: str
    way: int
    shot: int
    trainings: list[str]
    within_alphabet: bool = False
    query: int | None = None
    published: dict[str, float] = field(default_factory=dict)
    published_error: dict[str, float] = field(default_factory=dict)


@dataclass
class Plan:
    """Everything the runner will do, built from the YAML config and the flags."""

    seed: int
    test_episodes: int
    query: int
    trainings: dict[str, Training]
    settings: list[Setting]
    checkpoints: dict[str, str]
    ablation_trainings: dict[str, Training]
    ablation_settings: list[str]
    extra: list[str]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def _training(name: str, node: Any, source: Path) -> Training:
    _require(
        isinstance(node, dict) and isinstance(node.get("overrides"), list),
        f"{source}: training {name!r} needs a list `overrides` of Hydra overrides of conf/train.yaml.",
    )
    return Training(name, [str(o) for o in node["overrides"]], str(node.get("lever", "")))


def _setting(node: Any, trainings: dict[str, Training], source: Path) -> Setting:
    _require(isinstance(node, dict), f"{source}: every entry of `settings` must be a mapping.")
    missing = {"name", "split", "way", "shot", "trainings"} - set(node)
    _require(not missing, f"{source}: setting {node.get('name')!r} lacks {sorted(missing)}.")
    unknown = [t for t in node["trainings"] if t not in trainings]
    _require(not unknown, f"{source}: setting {node['name']!r} names unknown trainings {unknown}.")
    return Setting(
        name=str(node["name"]),
        split=str(node["split"]),
        way=int(node["way"]),
        shot=int(node["shot"]),
        trainings=list(node["trainings"]),
        within_alphabet=bool(node.get("within_alphabet", False)),
        query=int(node["query"]) if node.get("query") is not None else None,
        published={k: float(v) for k, v in (node.get("published") or {}).items()},
        published_error={k: float(v) for k, v in (node.get("published_error") or {}).items()},
    )


def _per_setting(plan: Plan) -> None:
    """Replace shared trainings by one training per (setting, FCE variant) with its own way/shot."""
    trainings: dict[str, Training] = {}
    for setting in plan.settings:
        names = []
        for shared in setting.trainings:
            base = plan.trainings[shared]
            if setting.within_alphabet:  # the Lake protocol is trained for its one setting already
                trainings[shared], name = base, shared
            else:
                name = f"{setting.name}-{shared}"
                trainings[name] = Training(
                    name,
                    [
                        *base.overrides,
                        f"data.way={setting.way}",
                        f"data.shot={setting.shot}",
                        f"data.train_way={setting.way}",
                        f"data.train_shot={setting.shot}",
                    ],
                    base.lever,
                )
            names.append(name)
        setting.trainings = names
    plan.trainings = trainings


def load_plan(args: argparse.Namespace) -> Plan:
    """Read the YAML config and apply the flags."""
    source = Path(args.config)
    _require(source.is_file(), f"--config {source} does not exist; pass a YAML like {DEFAULT_CONFIG}.")
    raw = yaml.safe_load(source.read_text())
    _require(isinstance(raw, dict), f"{source} must hold a YAML mapping.")
    for key in ("trainings", "settings"):
        _require(key in raw, f"{source} lacks the `{key}` section.")
    trainings = {name: _training(name, node, source) for name, node in raw["trainings"].items()}
    settings = [_setting(node, trainings, source) for node in raw["settings"]]
    ablation = raw.get("ablation") or {}
    ablation_trainings = {
        name: _training(name, node, source) for name, node in (ablation.get("trainings") or {}).items()
    }
    plan = Plan(
        seed=int(args.seed if args.seed is not None else raw.get("seed", 0)),
        test_episodes=int(args.test_episodes or raw.get("test_episodes", 1000)),
        query=int(args.query or raw.get("query", 15)),
        trainings=trainings,
        settings=settings,
        checkpoints={str(k): str(v) for k, v in (raw.get("checkpoints") or {}).items()},
        ablation_trainings=ablation_trainings if args.ablation else {},
        ablation_settings=list(ablation.get("test_settings") or []) if args.ablation else [],
        extra=list(args.extra),
    )
    if args.only:
        known = {s.name for s in plan.settings}
        unknown = sorted(set(args.only) - known)
        _require(not unknown, f"--only {unknown}: unknown settings; choose from {sorted(known)}.")
        plan.settings = [s for s in plan.settings if s.name in args.only]
        used = {t for s in plan.settings for t in s.trainings}
        plan.trainings = {k: v for k, v in plan.trainings.items() if k in used}
        plan.checkpoints = {k: v for k, v in plan.checkpoints.items() if v in args.only}
    for setting in plan.settings:
        if args.query or setting.query is None:
            setting.query = plan.query
    names = {s.name for s in plan.settings}
    unknown = sorted({s for s in plan.ablation_settings} - {s.name for s in settings})
    _require(not unknown, f"{source}: ablation.test_settings names unknown settings {unknown}.")
    bad = sorted(set(plan.checkpoints.values()) - names)
    _require(not bad, f"{source}: `checkpoints` names unknown settings {bad}.")
    if args.per_setting:
        _per_setting(plan)
    budget = []
    if args.max_epochs:
        budget.append(f"trainer.max_epochs={args.max_epochs}")
    if args.max_steps:
        budget.append(f"trainer.max_steps={args.max_steps}")
    if args.episodes_per_epoch:
        budget.append(f"data.train_episodes_per_epoch={args.episodes_per_epoch}")
    if args.val_episodes:
        budget.append(f"data.val_episodes={args.val_episodes}")
    if args.test_episodes:  # the test that src/train.py runs after training
        budget.append(f"data.test_episodes={args.test_episodes}")
    seed = [f"seed={plan.seed}"] if plan.seed != 0 else []
    for group in (plan.trainings, plan.ablation_trainings):
        for training in group.values():
            # Ablation trainings keep their own (short) schedule unless the flags set one.
            training.overrides = [*training.overrides, *STANDARD_OVERRIDES, *seed, *budget, *plan.extra]
    return plan


# --------------------------------------------------------------------------- running


def machine() -> tuple[str, str]:
    """CPU model (and GPU, if any) and the number of threads the runs use."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 1
    name = f"{cpu} ({cores} cores)"
    if torch.cuda.is_available():
        name += f", {torch.cuda.get_device_name(0)}"
    threads = os.environ.get("OMP_NUM_THREADS") or str(torch.get_num_threads())
    return name, threads


def command_line(script: str, overrides: list[str], run_dir: Path | None = None) -> str:
    """The shell command that runs ``script`` with ``overrides`` (relative to the project root)."""
    parts = ["python", script, *overrides]
    if run_dir is not None:
        parts.append(f"hydra.run.dir={_rel(run_dir)}")
    return shlex.join(parts)


def _rel(path: Path) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _finished(run_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The result of an earlier run in ``run_dir`` with the same overrides, or None."""
    path = run_dir / "result.json"
    if not path.is_file():
        return None
    result = json.loads(path.read_text())
    if result.get("status") != "ok":
        return None
    # A run resumed from its own checkpoint (ckpt_path=...) is the same training.
    done = [o for o in result.get("overrides", []) if not (o.startswith("ckpt_path=") and o not in overrides)]
    if sorted(done) != sorted(overrides):
        raise BenchmarkError(
            f"{run_dir} holds a run with other overrides ({result.get('overrides')}) than planned "
            f"({overrides}); pass --force to redo it, or another --runs-dir."
        )
    return result


def _wall_time(run_dir: Path) -> float:
    """Seconds a run took: recorded by this runner, else from the run folder's file times."""
    timing = run_dir / "benchmark_timing.json"
    if timing.is_file():
        return float(json.loads(timing.read_text())["wall_s"])
    start = run_dir / ".hydra" / "config.yaml"
    end = run_dir / "result.json"
    return end.stat().st_mtime - start.stat().st_mtime if start.is_file() else float("nan")


def _run_note(run_dir: Path) -> str:
    """A remark recorded beside a run (e.g. that it was interrupted and resumed), or ''."""
    timing = run_dir / "benchmark_timing.json"
    return str(json.loads(timing.read_text()).get("note", "")) if timing.is_file() else ""


def _run_subprocess(script: str, overrides: list[str], run_dir: Path) -> None:
    cmd = [sys.executable, str(ROOT / script), *overrides, f"hydra.run.dir={run_dir}"]
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir.parent / f"{run_dir.name}.log"
    with log_path.open("w") as log_file:
        code = subprocess.call(cmd, cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    if code != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise BenchmarkError(f"{shlex.join(cmd)} failed with exit status {code}; {log_path} ends:\n{tail}")


def _run_inprocess(script: str, overrides: list[str], run_dir: Path) -> None:
    """Run the entry point's task in this process, with the config Hydra would compose for it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from matchnet.cli import run_task
    from matchnet.pipeline import evaluate, train

    config_name, task = {"src/train.py": ("train", train), "src/eval.py": ("eval", evaluate)}[script]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            config_name, overrides=[*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        run_task(task, cfg)
    except SystemExit as err:
        raise BenchmarkError(f"{script} {' '.join(overrides)} failed (exit status {err.code}).") from err


def run(script: str, overrides: list[str], run_dir: Path, args: argparse.Namespace) -> tuple[dict, float]:
    """Run (or reuse) one entry-point job; its result and wall time in seconds."""
    if not args.force:
        result = _finished(run_dir, overrides)
        if result is not None:
            log.info("  reusing %s", _rel(run_dir))
            return result, _wall_time(run_dir)
    start = time.time()
    launch = _run_inprocess if args.launcher == "inprocess" else _run_subprocess
    launch(script, overrides, run_dir)
    wall = time.time() - start
    (run_dir / "benchmark_timing.json").write_text(json.dumps({"wall_s": wall}))
    result = json.loads((run_dir / "result.json").read_text())
    if result.get("status") != "ok":
        raise BenchmarkError(f"{script} in {run_dir} failed: {result.get('error')}")
    return result, wall


def eval_overrides(plan: Plan, setting: Setting, ckpt: Path) -> list[str]:
    """``src/eval.py`` overrides that test ``ckpt`` on ``setting``."""
    overrides = [
        f"ckpt_path={_rel(ckpt)}",
        f"data.way={setting.way}",
        f"data.shot={setting.shot}",
        f"data.query={setting.query}",
        f"data.test_episodes={plan.test_episodes}",
    ]
    if setting.within_alphabet:
        overrides.append("data.within_alphabet=true")
    return [*overrides, *plan.extra]


def stored_settings(ckpt: Path) -> dict[str, Any]:
    """Model and data settings stored in a checkpoint."""
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    return {"model": hparams["model"], "data": hparams["data"]}


def evaluate_all(
    plan: Plan,
    trainings: dict[str, Training],
    settings: list[Setting],
    runs_dir: Path,
    args: argparse.Namespace,
    part: str = "main",
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Train every training, test it on its settings; one row per (setting, training)."""
    cpu, threads = machine()
    trained: dict[str, dict[str, Any]] = {}
    jobs = len(trainings) + sum(len(s.trainings) for s in settings)
    done = 0
    for name, training in trainings.items():
        done += 1
        run_dir = runs_dir / name
        log.info("[%d/%d] train %s: %s", done, jobs, name, command_line("src/train.py", training.overrides))
        result, wall = run("src/train.py", training.overrides, run_dir, args)
        _require(bool(result.get("ckpt_path")), f"training {name} kept no best checkpoint ({run_dir}).")
        ckpt = Path(result["ckpt_path"])
        ckpt = ckpt if ckpt.is_absolute() else ROOT / ckpt
        stored = stored_settings(ckpt)
        trained[name] = {
            "result": result,
            "wall": wall,
            "ckpt": ckpt,
            "run_dir": run_dir,
            "stored": stored,
            "command": "OMP_NUM_THREADS=1 " + command_line("src/train.py", training.overrides, run_dir),
            "lever": training.lever,
            "note": _run_note(run_dir),
        }
        log.info(
            "  %s: %d episodes, %.0f s, val-best checkpoint %s", name, result["train_episodes"], wall, ckpt
        )
    rows = []
    for setting in settings:
        for name in setting.trainings:
            done += 1
            info = trained[name]
            data, model = info["stored"]["data"], info["stored"]["model"]
            _require(
                data["split"] == setting.split,
                f"setting {setting.name} is on the {setting.split} split but training {name} used "
                f"{data['split']}; list trainings of the same split under it.",
            )
            overrides = eval_overrides(plan, setting, info["ckpt"])
            run_dir = runs_dir / name / f"eval-{setting.name}"
            log.info("[%d/%d] test %s on %s", done, jobs, name, setting.name)
            result, wall = run("src/eval.py", overrides, run_dir, args)
            acc, ci = 100 * result["test_acc"], 100 * result["test_acc_ci95"]
            log.info("  %s / %s: %.2f +- %.2f %% (%.0f s)", setting.name, name, acc, ci, wall)
            rows.append(
                {
                    "part": part,
                    "setting": setting.name,
                    "split": setting.split,
                    "way": result["way"],
                    "shot": result["shot"],
                    "query": result["query"],
                    "within_alphabet": setting.within_alphabet,
                    "test_episodes": result["episodes"],
                    "fce": bool(model["fce"]),
                    "distance": model["distance"],
                    "training": name,
                    "train_way": data["train_way"] or data["way"],
                    "train_shot": data["train_shot"] or data["shot"],
                    "train_query": data["train_query"] or data["query"],
                    "train_episodes": info["result"]["train_episodes"],
                    "acc": round(acc, 2),
                    "acc_ci95": round(ci, 2),
                    "error": round(100 - acc, 2),
                    "published_matching_networks": setting.published.get("matching_networks", ""),
                    "published_prototypical_networks": setting.published.get("prototypical_networks", ""),
                    "train_wall_s": round(info["wall"]),
                    "eval_wall_s": round(wall),
                    "machine": cpu,
                    "threads": threads,
                    "seed": data["seed"],
                    "train_command": info["command"],
                    "eval_command": command_line("src/eval.py", overrides),
                    "_test_acc": result["test_acc"],
                }
            )
    return rows, trained


# --------------------------------------------------------------------------- outputs


def plot_curve(name: str, run_dir: Path, out: Path) -> Path | None:
    """Validation accuracy against training episodes of one training, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # metrics.csv, plus metrics_part*.csv kept from before a resume.
    files = sorted((run_dir / "csv").glob("metrics*.csv"))
    if not files:
        log.warning("no %s; no learning curve for %s", run_dir / "csv" / "metrics.csv", name)
        return None
    points = {}
    for metrics in files:
        with metrics.open() as handle:
            for row in csv.DictReader(handle):
                if row.get("val/acc"):
                    points[int(row["step"]) + 1] = 100 * float(row["val/acc"])
    metrics = files[-1]
    if not points:
        log.warning("%s has no val/acc; no learning curve for %s", metrics, name)
        return None
    x, y = zip(*sorted(points.items()), strict=True)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(x, y, marker="o", markersize=3)
    ax.set_xlabel("training episodes")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{name}: best {max(y):.1f}%", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / f"omniglot_curve_{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """One row per (setting, training)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _fmt(row: dict[str, Any] | None) -> str:
    return "—" if row is None else f"{row['acc']:.2f} ± {row['acc_ci95']:.2f}"


def render_markdown(
    plan: Plan,
    rows: list[dict[str, Any]],
    trained: dict[str, dict[str, Any]],
    ablation: list[dict[str, Any]],
    curves: dict[str, Path],
    notes: str,
    out: Path,
) -> str:
    """The results page."""
    cpu, threads = machine()
    vinyals = [s for s in plan.settings if not s.within_alphabet]
    lake = [s for s in plan.settings if s.within_alphabet]
    # Per (setting, FCE variant) the row of the longest training (most training episodes), naming
    # that training when there were several; the choice never looks at test accuracy.
    by: dict[tuple[str, bool], dict[str, Any]] = {}
    count: dict[tuple[str, bool], int] = {}
    for r in rows:
        key = (r["setting"], r["fce"])
        count[key] = count.get(key, 0) + 1
        if key not in by or r["train_episodes"] > by[key]["train_episodes"]:
            by[key] = r

    def cell(key: tuple[str, bool]) -> str:
        row = by.get(key)
        return _fmt(row) + (f" (`{row['training']}`)" if row is not None and count[key] > 1 else "")

    lines = [
        "# Omniglot: Matching Networks, Table 1 of Vinyals et al. (2016)",
        "",
        "Written by `benchmarks/omniglot_table.py` (settings in `benchmarks/omniglot_table.yaml`). "
        f"Test accuracy in percent, mean ± 95% CI over {plan.test_episodes} fixed test episodes "
        f"(seed {plan.seed}), queries per class as listed below; cosine attention; 28x28 images; "
        "Vinyals split with rotations as classes. Machine: "
        f"{cpu}, {threads} thread(s) per run, one run at a time.",
        "",
    ]
    if vinyals:
        lines += [
            "| setting | ours, FCE off | ours, FCE on | Matching Networks (paper, best) | "
            "Prototypical Networks (Snell 2017) |",
            "|---|---|---|---|---|",
        ]
        for s in vinyals:
            lines.append(
                f"| {s.way}-way {s.shot}-shot | {cell((s.name, False))} "
                f"| {cell((s.name, True))} | {s.published.get('matching_networks', '')} "
                f"| {s.published.get('prototypical_networks', '')} |"
            )
        lines.append("")
    lines += [
        "## Every run",
        "",
        "Train episodes: those of the checkpoint kept (best validation accuracy), i.e. the weights tested. "
        "Wall times are of the whole `src/train.py` run (training, validation and its own test) and of "
        "the `src/eval.py` run.",
        "",
        "| setting | FCE | training | train way/shot/query | train episodes | test episodes × queries/class "
        "| accuracy % | train wall | test wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {'on' if r['fce'] else 'off'} | {r['training']} | "
            f"{r['train_way']}/{r['train_shot']}/{r['train_query']} | {r['train_episodes']} | "
            f"{r['test_episodes']} × {r['query']} | {_fmt(r)} | {r['train_wall_s'] / 60:.1f} min | "
            f"{r['eval_wall_s']} s |"
        )
    lines += ["", "Commands (run from the project root):", ""]
    for name, info in trained.items():
        note = f" ({info['note']})" if info.get("note") else ""
        lines.append(f"- train `{name}`: `{info['command']}`{note}")
    for r in rows:
        lines.append(f"- test {r['setting']} / {r['training']}: `{r['eval_command']}`")
    if lake:
        lines += [
            "",
            "## Lake et al. (2015) protocol",
            "",
            "Trained on the background alphabets only (`data.split=lake`); tested 20-way 1-shot with all "
            "20 classes of an episode from one evaluation alphabet (`data.within_alphabet=true`). "
            "Error rate in percent.",
            "",
            "| model | error % |",
            "|---|---|",
        ]
        labels = {
            "people": "People (Lake et al. 2015)",
            "bayesian_program_learning": "Bayesian Program Learning (Lake et al. 2015)",
            "siamese_convnet_koch2015": "Deep Siamese convnet (Koch et al. 2015)",
        }
        for s in lake:
            for r in (r for r in rows if r["setting"] == s.name):
                lines.append(
                    f"| Matching Networks, ours ({'FCE' if r['fce'] else 'no FCE'}, {r['train_episodes']} "
                    f"training episodes, {r['test_episodes']} test episodes × {r['query']} queries/class) | "
                    f"**{r['error']:.2f}** ± {r['acc_ci95']:.2f} |"
                )
            for key, value in s.published_error.items():
                lines.append(f"| {labels.get(key, key)} | {value} |")
    if ablation:
        lines += [
            "",
            "## Ablation: which levers matter",
            "",
            "Short trainings that differ in one lever (same seed, episodes and lr schedule); "
            "test accuracy in percent over the same fixed test episodes as above.",
            "",
            "| training | lever | train episodes | " + " | ".join(plan.ablation_settings) + " |",
            "|---|---|---|" + "---|" * len(plan.ablation_settings),
        ]
        for name in dict.fromkeys(r["training"] for r in ablation):
            cells = {r["setting"]: r for r in ablation if r["training"] == name}
            first = next(iter(cells.values()))
            lines.append(
                f"| {name} | {plan.ablation_trainings[name].lever} | {first['train_episodes']} | "
                + " | ".join(_fmt(cells.get(s)) for s in plan.ablation_settings)
                + " |"
            )
    if curves:
        lines += ["", "## Learning curves (validation accuracy against training episodes)", ""]
        for name, path in curves.items():
            lines.append(f"![{name}]({os.path.relpath(path, out)})")
    if notes.strip():
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


def export_checkpoints(
    plan: Plan, rows: list[dict[str, Any]], trained: dict[str, dict[str, Any]], ckpt_dir: Path
) -> list[dict[str, Any]]:
    """Copy the FCE-on checkpoint of each listed setting with the longest training (the choice never
    looks at test accuracy), its stored data settings set to that test setting."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    settings = {s.name: s for s in plan.settings}
    exported = []
    for filename, setting_name in plan.checkpoints.items():
        candidates = [r for r in rows if r["setting"] == setting_name and r["fce"]] or [
            r for r in rows if r["setting"] == setting_name
        ]
        if not candidates:
            continue
        row = max(candidates, key=lambda r: r["train_episodes"])
        setting = settings[setting_name]
        checkpoint = torch.load(trained[row["training"]]["ckpt"], map_location="cpu", weights_only=False)
        data = checkpoint["hyper_parameters"]["data"]
        data.update(
            way=setting.way,
            shot=setting.shot,
            query=setting.query,
            test_episodes=plan.test_episodes,
            within_alphabet=setting.within_alphabet,
            # The training episodes these weights were trained on, stated explicitly.
            train_way=row["train_way"],
            train_shot=row["train_shot"],
            train_query=row["train_query"],
        )
        source = trained[row["training"]]["ckpt"]
        stamp = {
            "source": os.path.relpath(source),
            "source_mtime": source.stat().st_mtime,
            "setting": setting_name,
        }
        checkpoint["omniglot_table"] = stamp
        for key in ("callbacks", "loops"):  # training state with this machine's paths: not shipped
            checkpoint.pop(key, None)
        # Weights, settings and step count only: the optimiser state would triple the size.
        for key in ("optimizer_states", "lr_schedulers"):
            checkpoint.pop(key, None)
        path = ckpt_dir / filename
        if not path.is_file() or _stamp(path) != stamp:
            torch.save(checkpoint, path)
        exported.append({"file": path, "row": row})
    return exported


def _stamp(path: Path) -> dict[str, Any] | None:
    """Where an exported checkpoint came from (None if it was not exported by this runner)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False).get("omniglot_table")
    except Exception:  # noqa: BLE001 - any unreadable file is simply rewritten
        return None


def verify_checkpoints(exported: list[dict[str, Any]], runs_dir: Path, args: argparse.Namespace) -> None:
    """``src/eval.py ckpt_path=<copy>`` alone must give the reported accuracy, bit for bit."""
    for item in exported:
        path, row = item["file"], item["row"]
        overrides = [f"ckpt_path={_rel(path)}", *args.extra]
        run_dir = runs_dir / f"verify-{path.stem}"
        log.info("verify %s", command_line("src/eval.py", overrides))
        # Re-run unless the earlier check is newer than the copy.
        done = run_dir / "result.json"
        stale = not done.is_file() or done.stat().st_mtime < path.stat().st_mtime
        checked = argparse.Namespace(**{**vars(args), "force": args.force or stale})
        result, _ = run("src/eval.py", overrides, run_dir, checked)
        if result["test_acc"] != row["_test_acc"]:
            raise BenchmarkError(
                f"{path}: src/eval.py gives {result['test_acc']!r}, the table {row['_test_acc']!r}."
            )
        item["command"] = command_line("src/eval.py", overrides)


def checkpoints_readme(exported: list[dict[str, Any]], plan: Plan, trained: dict[str, dict[str, Any]]) -> str:
    """``checkpoints/README.md``."""
    lines = [
        "# Trained Omniglot checkpoints",
        "",
        "Written by `benchmarks/omniglot_table.py`: for each setting, the FCE-on model of the benchmark "
        "with the longest training (its checkpoint with the best validation accuracy; the choice never "
        "looks at test accuracy). Its stored data "
        "settings were set to the test setting below, so the evaluation command alone reproduces the "
        "accuracy exactly (same seed, same episodes); the runner checked that it does.",
        "",
    ]
    for item in exported:
        row, path = item["row"], item["file"]
        info = trained[row["training"]]
        lines += [
            f"## {path.name}",
            "",
            f"- test: {row['way']}-way {row['shot']}-shot, {row['split']} split"
            + (", within alphabet" if row["within_alphabet"] else "")
            + f"; **{row['acc']:.2f} ± {row['acc_ci95']:.2f} %** (mean ± 95% CI) over {row['test_episodes']} "
            f"test episodes with {row['query']} queries per class"
            + (f" (error {row['error']:.2f} %)" if row["within_alphabet"] else ""),
            f"- model: Matching Network, Conv4, FCE {'on' if row['fce'] else 'off'}, {row['distance']} "
            f"attention; trained on {row['train_way']}-way {row['train_shot']}-shot "
            f"{row['train_query']}-query episodes, {row['train_episodes']} training episodes, "
            f"seed {row['seed']} "
            f"({info['wall'] / 60:.1f} min on {row['machine']}, {row['threads']} thread(s))",
            f"- trained with: `{info['command']}`" + (f" ({info['note']})" if info.get("note") else ""),
            f"- evaluate: `{item.get('command', command_line('src/eval.py', [f'ckpt_path={_rel(path)}']))}`",
            "",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="benchmark settings (YAML)")
    parser.add_argument("--out-dir", default=str(DEFAULT_OUT), help="where omniglot.md/.csv and plots go")
    parser.add_argument(
        "--runs-dir",
        help="run folders (default outputs/omniglot_table/runs, or <out-dir>/runs with --out-dir)",
    )
    parser.add_argument(
        "--checkpoints-dir", help="exported checkpoints (default checkpoints/, or <out-dir>/checkpoints)"
    )
    parser.add_argument("--only", nargs="+", metavar="SETTING", help="test only these settings")
    parser.add_argument(
        "--per-setting", action="store_true", help="train one model per setting and FCE variant"
    )
    parser.add_argument("--ablation", action="store_true", help="also run the lever ablation of the config")
    parser.add_argument("--max-epochs", type=_positive, help="trainer.max_epochs of every training")
    parser.add_argument(
        "--max-steps", type=_positive, help="trainer.max_steps (training episodes) of every training"
    )
    parser.add_argument("--episodes-per-epoch", type=_positive, help="data.train_episodes_per_epoch")
    parser.add_argument("--val-episodes", type=_positive, help="data.val_episodes of every training")
    parser.add_argument("--test-episodes", type=_positive, help="test episodes per setting (default: config)")
    parser.add_argument("--query", type=_positive, help="query images per class in test episodes")
    parser.add_argument("--seed", type=int, help="seed of weights and episodes (default: config)")
    parser.add_argument(
        "--extra",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="Hydra overrides for every run, e.g. trainer=gpu",
    )
    parser.add_argument(
        "--launcher",
        choices=["subprocess", "inprocess"],
        default="subprocess",
        help="run src/train.py and src/eval.py as processes (default) or their tasks in this process",
    )
    parser.add_argument(
        "--notes", help="Markdown appended to omniglot.md (default <out-dir>/omniglot.notes.md)"
    )
    parser.add_argument("--force", action="store_true", help="redo finished runs instead of reusing them")
    args = parser.parse_args(argv)
    out = Path(args.out_dir).resolve()
    default_out = out == DEFAULT_OUT.resolve()
    args.runs_dir = Path(
        args.runs_dir or (ROOT / "outputs" / "omniglot_table" / "runs" if default_out else out / "runs")
    )
    args.checkpoints_dir = Path(
        args.checkpoints_dir or (ROOT / "checkpoints" if default_out else out / "checkpoints")
    )
    args.notes = Path(args.notes) if args.notes else out / "omniglot.notes.md"
    args.out_dir = out
    return args


def write_outputs(
    plan: Plan,
    rows: list[dict[str, Any]],
    trained: dict[str, dict[str, Any]],
    ablation: list[dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    """``omniglot.csv``, ``omniglot.md`` and the learning curves under ``--out-dir``."""
    curves = {}
    for name, info in trained.items():
        path = plot_curve(name, info["run_dir"], args.out_dir)
        if path is not None:
            curves[name] = path
    write_csv(rows + ablation, args.out_dir / "omniglot.csv")
    notes = args.notes.read_text() if args.notes.is_file() else ""
    (args.out_dir / "omniglot.md").write_text(
        render_markdown(plan, rows, trained, ablation, curves, notes, args.out_dir)
    )
    log.info("wrote %s and %s", args.out_dir / "omniglot.md", args.out_dir / "omniglot.csv")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 2 on a bad flag, config or failed run."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    try:
        plan = load_plan(args)
        args.out_dir.mkdir(parents=True, exist_ok=True)
        runs_dir = args.runs_dir.resolve()
        rows, trained = evaluate_all(plan, plan.trainings, plan.settings, runs_dir, args)
        exported = export_checkpoints(plan, rows, trained, args.checkpoints_dir)
        verify_checkpoints(exported, runs_dir, args)
        if exported:
            (args.checkpoints_dir / "README.md").write_text(checkpoints_readme(exported, plan, trained))
        write_outputs(plan, rows, trained, [], args)
        if plan.ablation_trainings:
            by_name = {s.name: s for s in plan.settings}
            chosen = [
                Setting(**{**vars(by_name[name]), "trainings": list(plan.ablation_trainings)})
                for name in plan.ablation_settings
            ]
            ablation, more = evaluate_all(plan, plan.ablation_trainings, chosen, runs_dir, args, "ablation")
            write_outputs(plan, rows, trained | more, ablation, args)
    except BenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
