"""Compare training recipes on validation only: short runs, their best checkpoints, paired statistics.

    python benchmarks/recipe_report.py RUN [RUN ...] [--baseline NAME] [--val-episodes 500]
        [--out results/omniglot_recipe.md]

Each RUN is the output folder of one ``src/train.py`` run (``hydra.run.dir``), holding
``.hydra/overrides.yaml``, ``csv/*/metrics.csv`` and ``checkpoints/best.ckpt``. Every run's best
checkpoint is scored on the same fixed validation episodes (the validation split of the run's own
data settings, ``data.val_episodes`` of them, drawn from ``data.episode_seed``), one accuracy per
episode. Each run is then compared with the baseline run on those shared episodes: the mean
difference in points, a paired 95% CI and the p-value of a paired t-test
(``scipy.stats.ttest_rel``). The test split is never read.

The table also gives what each run cost: training episodes, wall time of its fit and episodes per
second (from its CSV log's timestamps where present, else from its ``train.log``).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from scipy import stats

from matchnet.checkpoints import load_module, read_checkpoint
from matchnet.io import atomic_open

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "omniglot_recipe.md"


@dataclass
class Run:
    name: str
    folder: Path
    overrides: list[str]
    train_episodes: int
    best_episodes: int
    per_episode: torch.Tensor  # validation accuracy per episode, episode order

    @property
    def mean(self) -> float:
        return float(self.per_episode.double().mean())

    @property
    def ci95(self) -> float:
        return 1.96 * float(self.per_episode.double().std()) / math.sqrt(self.per_episode.numel())


def overrides(folder: Path) -> list[str]:
    path = folder / ".hydra" / "overrides.yaml"
    return [str(o) for o in OmegaConf.load(path)] if path.is_file() else []


def val_accuracies(
    ckpt: Path, val_episodes: int, data_root: str | None, settings: dict | None = None
) -> torch.Tensor:
    """Per-episode accuracy of ``ckpt`` on its fixed validation episodes (fp32, eval mode): those of its
    own data settings, or of those settings updated by ``settings`` (e.g. another run's way, shot,
    query and episode seed, so that two checkpoints meet the same episodes)."""
    import hydra

    module = load_module(ckpt)
    data = OmegaConf.create(module.hparams["data"])
    if settings:
        data = OmegaConf.merge(data, settings)
    data.val_episodes = val_episodes
    if data_root is not None:
        data.root = data_root
    datamodule = hydra.utils.instantiate(data, stages=("val",))
    datamodule.setup("validate")
    module.eval()
    accuracies = []
    with torch.inference_mode():
        for episode in datamodule.val_dataloader():
            log_probs = module(episode)
            accuracies.append((log_probs.argmax(dim=1) == episode.query_y).float().mean())
    return torch.stack(accuracies)


def load_run(folder: Path, val_episodes: int, data_root: str | None) -> Run:
    ckpt = folder / "checkpoints" / "best.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"error: {ckpt} does not exist; RUN must be a finished src/train.py run folder.")
    stored = read_checkpoint(ckpt)
    last = folder / "checkpoints" / "last.ckpt"
    trained = read_checkpoint(last)["global_step"] if last.is_file() else stored["global_step"]
    return Run(
        name=folder.name,
        folder=folder,
        overrides=overrides(folder),
        train_episodes=int(trained),
        best_episodes=int(stored["global_step"]),
        per_episode=val_accuracies(ckpt, val_episodes, data_root),
    )


def fit_seconds(folder: Path) -> float:
    """Wall seconds from the run's start (its ``.hydra/config.yaml``) to its last checkpoint: training,
    validation and the image cache's set-up."""
    start = (folder / ".hydra" / "config.yaml").stat().st_mtime
    ends = [p.stat().st_mtime for p in (folder / "checkpoints").glob("*.ckpt")]
    return max(ends) - start


def paired(a: Run, b: Run) -> tuple[float, float, float, float]:
    """Mean difference a - b in points, its paired 95% CI and the paired t-test's p-value."""
    x, y = a.per_episode.double().numpy(), b.per_episode.double().numpy()
    diff = 100 * (x - y)
    test = stats.ttest_rel(x, y)
    low, high = test.confidence_interval(0.95)
    return float(diff.mean()), 100 * float(low), 100 * float(high), float(test.pvalue)


def words(name: str, base: str, diff: float, low: float, high: float, p: float) -> str:
    if low <= 0 <= high:
        return f"no difference detected from `{base}` ({diff:+.2f} points, 95% CI {low:+.2f} to {high:+.2f})"
    side = "above" if diff > 0 else "below"
    return (
        f"{side} `{base}` by {abs(diff):.2f} points (95% CI {low:+.2f} to {high:+.2f}, p = {p:.2g})"
    )


def markdown(runs: list[Run], base: Run, val_episodes: int, command: str) -> str:
    shared = [o for o in runs[0].overrides if all(o in run.overrides for run in runs)]
    lines = [
        "# Recipe comparison on validation (Omniglot, Vinyals split)",
        "",
        f"Written by `benchmarks/recipe_report.py`:\n\n```bash\n{command}\n```",
        "",
        "Each run's best checkpoint (by its own validation during training) scored on the same "
        f"{val_episodes} fixed 20-way 1-shot validation episodes (5 queries per class); the test split "
        "is never read. "
        "Differences are paired over those episodes (paired t-test, scipy.stats.ttest_rel).",
        "",
        "Overrides of every run: " + " ".join(f"`{o}`" for o in shared) + ".",
        "",
        "| run | overrides | training episodes | best at | wall min | episodes/s | val acc % (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        seconds = fit_seconds(run.folder)
        shown = " ".join(f"`{o}`" for o in run.overrides if o not in shared) or "(none)"
        lines.append(
            f"| {run.name} | {shown} | {run.train_episodes} | {run.best_episodes} | {seconds / 60:.1f} "
            f"| {run.train_episodes / seconds:.2f} "
            f"| {100 * run.mean:.2f} ± {100 * run.ci95:.2f} |"
        )
    lines += ["", f"Against `{base.name}`:", ""]
    for run in runs:
        if run is base:
            continue
        if run.per_episode.numel() != base.per_episode.numel():
            lines.append(f"- `{run.name}`: not paired (a different number of validation episodes).")
            continue
        lines.append(f"- `{run.name}`: " + words(run.name, base.name, *paired(run, base)) + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="src/train.py run folders")
    parser.add_argument(
        "--baseline", default=None, help="run folder name to compare with (default: the first)"
    )
    parser.add_argument("--val-episodes", type=int, default=500)
    parser.add_argument("--data-root", default=None, help="data.root for this machine (default: as stored)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.val_episodes < 2:
        parser.error(f"--val-episodes={args.val_episodes} must be at least 2 (a CI needs two episodes)")
    runs = [load_run(folder, args.val_episodes, args.data_root) for folder in args.runs]
    names = [run.name for run in runs]
    base_name = args.baseline or names[0]
    if base_name not in names:
        parser.error(f"--baseline={base_name!r} is none of the runs: {', '.join(names)}")
    base = runs[names.index(base_name)]
    command = "python benchmarks/recipe_report.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(runs, base, args.val_episodes, command)
    with atomic_open(args.out, "w") as handle:
        handle.write(text)
    print(text)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
