"""Episode sampling and training-step throughput against a per-image pipeline and the compute floor.

In one run, on one machine, it measures:

1. **Sampling** (``torch.utils.benchmark.Timer``): episodes per second of the project's training
   DataLoader (``OmniglotDataModule``, episodes gathered from the in-memory uint8 cache) against a
   per-image reference on the *same* episodes: each image opened from its PNG and Lanczos-resized
   with PIL (``matchnet.data.load_image``), the way torchvision-style datasets work. The PNGs are
   extracted once from the archives in ``--data-root`` to a temporary folder before timing.
2. **Training step** of the full Lightning loop (DataLoader, forward, backward, Adam, ``self.log`` with
   torchmetrics, CSV logger, progress bar) against the **compute floor**: the model's forward, loss,
   backward and Adam step on one pre-built episode (``Timer``, the mean of its medians just before and
   just after the fit), for 5-way 1-shot, 20-way 1-shot and 20-way 5-shot (15 queries per class), FCE
   off and on. The step is timed by Lightning's ``SimpleProfiler`` inside a short ``trainer.fit``: a
   step is the time from one episode fetch (``[_TrainingEpochLoop].train_dataloader_next``) to the
   next, the **data wait** is the fetch itself (its share of the step is ``sampling_share_of_step``);
   the profiler's per-step actions of the 5-way 1-shot FCE run are ``profile_ms``.
3. **Evaluation** episodes per second (``trainer.test``, timed the same way) per setting, and the peak
   resident memory of a 20-way 5-shot FCE training run (``src/train.py`` in a subprocess,
   ``getrusage(RUSAGE_CHILDREN)``).
4. **Precision**: the compute floor in fp32 and under bf16 autocast per setting and FCE choice, which
   of the two this machine prefers, and what the default ``trainer.precision`` (``matchnet.precision``)
   picks on it.

All times are medians, on this process's CPU clock unless ``--wall``. The last line of standard
output is one JSON object; the full run also writes ``results/throughput.md``.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py            # full run, writes results/throughput.md
    OMP_NUM_THREADS=1 python benchmarks/throughput.py --quick    # a few minutes on 2 cores, no file
    python benchmarks/throughput.py --smoke                      # seconds: checks the plumbing only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning.profilers import SimpleProfiler
from torch import Tensor
from torch.utils.benchmark import Timer

from matchnet.precision import BF16, FP32, auto_precision

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "throughput.md"
QUERY = 15  # queries per class in every setting (Vinyals et al.'s training episodes)
SETTINGS = ((5, 1), (20, 1), (20, 5))  # (way, shot)
TRAIN_FETCH = "[_TrainingEpochLoop].train_dataloader_next"  # SimpleProfiler's names of the fetches
TEST_FETCH = "[_EvaluationLoop].test_next"
ADAM = {"_target_": "torch.optim.Adam", "lr": 1e-3}
CLOCK: list[Callable[[], float]] = [time.process_time]  # time.perf_counter with --wall


@dataclass(frozen=True)
class Sizes:
    """How long each measurement runs."""

    sample_s: float  # Timer min_run_time of the project's DataLoader, per setting
    reference: int  # distinct episodes the per-image reference cycles through
    reference_s: float  # Timer min_run_time of the reference, per setting
    floor_s: float  # Timer min_run_time of the compute floor, per setting and FCE choice
    warmup: int  # untimed training / test steps before the timed ones
    steps: int  # timed training steps per setting and FCE choice
    eval: int  # timed test episodes per setting and FCE choice
    rss_steps: int  # training steps of the peak-memory subprocess


SIZES = {  # sample_s, reference, reference_s, floor_s, warmup, steps, eval, rss_steps
    "full": Sizes(1.0, 10, 2.0, 2.0, warmup=2, steps=25, eval=20, rss_steps=30),
    "quick": Sizes(0.2, 2, 0.3, 0.3, warmup=1, steps=4, eval=3, rss_steps=2),
    "smoke": Sizes(0.02, 2, 0.02, 0.02, warmup=1, steps=2, eval=2, rss_steps=2),
}


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def setting_name(way: int, shot: int) -> str:
    """``20w5s``."""
    return f"{way}w{shot}s"


def timed(stmt: str, min_run_time: float, **names: Any) -> float:
    """Median seconds per run of ``stmt`` (``torch.utils.benchmark`` on ``CLOCK``, this process's threads)."""
    timer = Timer(stmt, globals=names, timer=CLOCK[0], num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


class ClockProfiler(SimpleProfiler):
    """Lightning's ``SimpleProfiler`` on ``CLOCK``; also notes when each action starts.

    Consecutive starts of an episode fetch bound one whole loop iteration (fetch, hooks, step, logging).
    """

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[str, list[float]] = defaultdict(list)

    def start(self, action_name: str) -> None:
        super().start(action_name)  # its checks
        self.current_actions[action_name] = now = CLOCK[0]()
        self.starts[action_name].append(now)

    def stop(self, action_name: str) -> None:
        now = CLOCK[0]()
        self.recorded_durations[action_name].append(now - self.current_actions.pop(action_name))

    def cycle(self, action_name: str, skip: int) -> float:
        """Median seconds from one start of ``action_name`` to the next, after ``skip`` warm-up ones."""
        starts = self.starts[action_name]
        return median([b - a for a, b in zip(starts, starts[1:], strict=False)][skip:])


# ----------------------------------------------------------------------------- machine and data


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and threads of this process."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        ]
        model = names[0].split(":", 1)[1].strip() if names else model
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }


def check_data_root(root: Path) -> None:
    """Exit with a clear message when the Omniglot archives (or folders) are not in ``root``."""
    missing = [
        name
        for name in ("images_background", "images_evaluation")
        if not (root / f"{name}.zip").exists() and not (root / name).is_dir()
    ]
    if missing:
        raise SystemExit(
            f"error: Omniglot data not found in {root}: missing {', '.join(m + '.zip' for m in missing)}. "
            "Put images_background.zip and images_evaluation.zip there, or pass --data-root "
            "(default: $MATCHNET_DATA_ROOT or data/omniglot)."
        )


def png_files(root: Path, image_ids: set[int], folder: Path) -> dict[int, Path]:
    """The PNG of each image id (cache order), extracted once into ``folder`` from the archives."""
    from matchnet.data import find_sources

    sources = find_sources(root, download=False).sources
    members = [(s.path, m) for s in sources for ms in s.characters.values() for m in ms]
    files = {}
    with contextlib.ExitStack() as stack:
        archives = {s.path: stack.enter_context(zipfile.ZipFile(s.path)) for s in sources if s.path.is_file()}
        for i in sorted(image_ids):
            path, member = members[i]
            files[i] = (
                Path(archives[path].extract(member, folder)) if path in archives else path.parent / member
            )
    return files


def datamodule(root: Path, way: int, shot: int, train: int, test: int = 1) -> Any:
    """The project's Omniglot DataModule for one setting."""
    from matchnet.data import OmniglotDataModule

    module = OmniglotDataModule(
        root=str(root),
        way=way,
        shot=shot,
        query=QUERY,
        train_episodes_per_epoch=train,
        val_episodes=1,
        test_episodes=test,
        download=False,
    )
    module.setup()
    return module


# ----------------------------------------------------------------------------- sampling


def reference_episode(dataset: Any, n: int, files: dict[int, Path]) -> tuple[Tensor, Tensor]:
    """The per-image reference: episode ``n``'s support and query, each image read from its PNG."""
    from matchnet.data import load_image

    draw, size, shot = dataset.task(n), dataset.images.shape[-1], dataset.shot
    turns = dataset.class_turns[draw.classes].tolist()
    x = torch.stack(
        [
            torch.stack([load_image(files[i], size) for i in ids]).rot90(k, (-2, -1))
            for ids, k in zip(draw.image_ids.tolist(), turns, strict=True)
        ]
    )
    return x[:, :shot].flatten(0, 1)[draw.support_order], x[:, shot:].flatten(0, 1)[draw.query_order]


def measure_sampling(root: Path, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    """Per setting: seconds per episode of the project's train DataLoader and of the reference."""
    rows = {}
    for way, shot in SETTINGS:
        dm = datamodule(root, way, shot, train=100)
        dataset = dm.dataset("train")
        ids = {int(i) for n in range(sizes.reference) for i in dataset.task(n).image_ids.flatten()}
        files = png_files(root, ids, tmp)
        support, query = reference_episode(dataset, 0, files)
        diff = max(
            float((dataset[0].support_x - support).abs().max()),
            float((dataset[0].query_x - query).abs().max()),
        )
        if diff > 1.5 / 255:  # one grey level of rounding
            raise RuntimeError(
                f"the reference pipeline drew other images than the DataModule (max diff {diff})"
            )
        episodes = itertools.chain.from_iterable(itertools.repeat(dm.train_dataloader()))  # endless
        project_s = timed("next(episodes)", sizes.sample_s, episodes=episodes)
        reference_s = timed(
            "reference_episode(dataset, next(ns), files)",
            sizes.reference_s,
            reference_episode=reference_episode,
            dataset=dataset,
            ns=itertools.cycle(range(sizes.reference)),
            files=files,
        )
        rows[setting_name(way, shot)] = {
            "images": way * (shot + QUERY),
            "project_ms": 1e3 * project_s,
            "reference_ms": 1e3 * reference_s,
            "project_eps": 1 / project_s,
            "reference_eps": 1 / reference_s,
            "speedup": reference_s / project_s,
            "pixel_max_abs_diff": diff,
        }
    return rows


# ----------------------------------------------------------------------------- training step and floor


def model_config(fce: bool, **overrides: Any) -> dict[str, Any]:
    """The project's default model config (``conf/``, composed by Hydra) with ``model.fce`` set."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model.fce={fce}", "data.image_size=28"])
    return OmegaConf.to_container(cfg.model, resolve=True) | overrides  # type: ignore[operator]


def floor_s(model: dict[str, Any], episode: Any, min_run_time: float, bf16: bool = False) -> float:
    """Compute floor: the model's forward, loss, backward and Adam step on one pre-built episode.

    ``bf16``: the forward and loss under bf16 autocast, as ``trainer.precision=bf16-mixed`` runs them.
    """
    from matchnet.module import MatchingNetModule

    torch.manual_seed(0)
    module = MatchingNetModule(model=model, optimizer=ADAM)
    optimizer = torch.optim.Adam(module.parameters(), lr=ADAM["lr"])

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.nll_loss(module(episode).float(), episode.query_y)
        loss.backward()
        optimizer.step()

    return timed("step()", min_run_time, step=step)


def lightning_run(root: Path, way: int, shot: int, fce: bool, sizes: Sizes, logdir: Path) -> ClockProfiler:
    """A short ``trainer.fit`` then ``trainer.test`` of the full Lightning loop, under the profiler."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import TQDMProgressBar
    from pytorch_lightning.loggers import CSVLogger

    from matchnet.module import MatchingNetModule

    # One more fetch than steps: it closes the last timed step.
    dm = datamodule(root, way, shot, sizes.warmup + sizes.steps + 1, sizes.warmup + sizes.eval + 1)
    pl.seed_everything(0, verbose=False)
    module = MatchingNetModule(model=model_config(fce), optimizer=ADAM)
    profiler = ClockProfiler()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=CSVLogger(logdir, name=f"{setting_name(way, shot)}_fce{int(fce)}"),
        log_every_n_steps=50,  # conf/trainer/default.yaml
        callbacks=[TQDMProgressBar(refresh_rate=20)],  # as conf/callbacks
        enable_checkpointing=False,
        enable_model_summary=False,
        profiler=profiler,
    )
    quiet = io.StringIO()  # the progress bar still formats its line, but stays quiet
    with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
        trainer.fit(module, datamodule=dm)
        trainer.test(module, datamodule=dm, verbose=False)
    return profiler


def breakdown(profiler: ClockProfiler, steps: int, skip: int) -> dict[str, float]:
    """Median ms per step of every profiled action that ran once per training step, largest first."""
    parts = {
        name: 1e3 * median(durations[skip:])
        for name, durations in profiler.recorded_durations.items()
        if len(durations) == steps and "test" not in name
    }
    parts = {name: ms for name, ms in sorted(parts.items(), key=lambda item: -item[1]) if ms >= 0.01}
    return parts | {"total (fetch to fetch)": 1e3 * profiler.cycle(TRAIN_FETCH, skip)}


def measure_steps(
    root: Path, sizes: Sizes, logdir: Path, settings: Sequence[tuple[int, int]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Per setting and FCE choice: step, data wait, floor and their ratio; the 5w1s FCE step breakdown."""
    rows: dict[str, Any] = {}
    profile: dict[str, float] = {}
    for way, shot in settings:
        episode = datamodule(root, way, shot, train=1).dataset("train")[0]
        for fce in (False, True):
            # The floor just before and just after the fit, so that both see about the same load.
            before = floor_s(model_config(fce), episode, sizes.floor_s)
            profiler = lightning_run(root, way, shot, fce, sizes, logdir)
            floor = (before + floor_s(model_config(fce), episode, sizes.floor_s)) / 2
            step = profiler.cycle(TRAIN_FETCH, sizes.warmup)
            wait = median(profiler.recorded_durations[TRAIN_FETCH][sizes.warmup :])
            rows[f"{setting_name(way, shot)}/fce_{'on' if fce else 'off'}"] = {
                "images": way * (shot + QUERY),
                "step_ms": 1e3 * step,
                "floor_ms": 1e3 * floor,
                "over_floor": step / floor,
                "wait_ms": 1e3 * wait,
                "wait_share": wait / step,
                "eval_eps": 1 / profiler.cycle(TEST_FETCH, sizes.warmup),
            }
            if (way, shot, fce) == (5, 1, True):  # the smallest step: where overheads show most
                profile = breakdown(profiler, sizes.warmup + sizes.steps + 1, sizes.warmup)
    return rows, profile


def precisions(root: Path, min_run_time: float, settings: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Floor ms per setting and FCE choice in fp32 and under bf16 autocast, and their ratio."""
    rows: dict[str, Any] = {}
    for way, shot in settings:
        episode = datamodule(root, way, shot, train=1).dataset("train")[0]
        for fce in (False, True):
            fp32, bf16 = (
                1e3 * floor_s(model_config(fce), episode, min_run_time, bf16=half) for half in (False, True)
            )
            rows[f"{setting_name(way, shot)}/fce_{'on' if fce else 'off'}"] = {
                "fp32_ms": fp32,
                "bf16_ms": bf16,
                "bf16_over_fp32": bf16 / fp32,
            }
    return rows


def memory_formats(root: Path, min_run_time: float) -> dict[str, float]:
    """Floor ms of 20-way 5-shot (FCE on), encoder contiguous (NCHW) vs channels-last (full run)."""
    episode = datamodule(root, 20, 5, train=1).dataset("train")[0]
    return {
        name: 1e3 * floor_s(model_config(True, channels_last=name == "channels_last"), episode, min_run_time)
        for name in ("contiguous", "channels_last")
    }


# ----------------------------------------------------------------------------- peak memory


def peak_rss_mb(root: Path, steps: int, workdir: Path) -> float:
    """Peak RSS (MB) of ``src/train.py experiment=omniglot_20w5s`` (FCE on) for ``steps`` episodes."""
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "experiment=omniglot_20w5s",
        f"data.root={root}",
        "data.download=false",
        f"data.train_query={QUERY}",
        f"data.train_episodes_per_epoch={steps}",
        "data.val_episodes=2",
        "data.test_episodes=2",
        "trainer.max_epochs=1",
        "logger=csv",
        "callbacks.progress_bar.refresh_rate=20",
        f"hydra.run.dir={workdir}",
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=os.environ | {"WANDB_MODE": "offline"}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; the only child


# ----------------------------------------------------------------------------- report


SAMPLE_TABLE = (
    "| setting | images | project ms | project ep/s | reference ms | reference ep/s | speedup |",
    "| {name} | {images} | {project_ms:.2f} | {project_eps:.0f} | {reference_ms:.1f} | {reference_eps:.1f} "
    "| {speedup:.0f}x |",
)
STEP_TABLE = (
    "| setting | images | step ms | floor ms | step/floor | data wait ms | eval ep/s |",
    "| {name} | {images} | {step_ms:.1f} | {floor_ms:.1f} | {over_floor:.2f}x "
    "| {wait_ms:.2f} ({wait_pct:.1f}%) | {eval_eps:.1f} |",
)
PRECISION_TABLE = (
    "| setting | fp32 floor ms | bf16 floor ms | bf16 / fp32 |",
    "| {name} | {fp32_ms:.1f} | {bf16_ms:.1f} | {bf16_over_fp32:.2f}x |",
)
PROFILE_TABLE = ("| action | ms/step |", "| `{name}` | {ms:.2f} |")


def table(template: tuple[str, str], rows: dict[str, dict[str, Any]]) -> str:
    """A Markdown table: ``template`` is (header, row format); one row per item of ``rows``."""
    header, row = template
    rule = "|" + "---|" * header.count(" | ") + "---|"
    return "\n".join([header, rule] + [row.format(name=name, **values) for name, values in rows.items()])


def report(
    result: dict[str, Any], sampling: dict[str, Any], steps: dict[str, Any], info: dict[str, Any]
) -> str:
    """The tables (Markdown) of one run."""
    steps = {name: row | {"wait_pct": 100 * row["wait_share"]} for name, row in steps.items()}
    profile = {name: {"ms": ms} for name, ms in result["profile_ms"].items()}
    clock = "wall time" if result["clock"] == "wall" else "this process's CPU time (user + system)"
    parts = [
        "Machine: " + ", ".join(f"{key} {value}" for key, value in info.items()),
        f"Clock: {clock}; medians (torch.utils.benchmark for sampling and floor, Lightning's SimpleProfiler "
        "for steps).",
        "Episode sampling (training DataLoader vs per-image PNG + PIL reference, same episodes, "
        "15 queries per class; median per episode):",
        table(SAMPLE_TABLE, sampling),
        "Training step (full Lightning loop, one episode fetch to the next) vs compute floor (the model's "
        "forward + loss + backward + Adam on one pre-built episode); data wait = the episode fetch; "
        "eval = trainer.test:",
        table(STEP_TABLE, steps),
        "Precision: the compute floor in fp32 and under bf16 autocast (`trainer.precision=bf16-mixed`), "
        "same episodes:",
        table(PRECISION_TABLE, result["precision_ms"]),
        f"This machine prefers **{result['preferred_precision']}** (bf16 / fp32 floor, geometric mean "
        f"{result['bf16_over_fp32']:.2f}x); the default `trainer.precision` (matchnet.precision) picks "
        f"**{result['auto_precision']}** on it.",
        "Peak RSS of a 20-way 5-shot FCE training run (src/train.py, subprocess): "
        f"{result['peak_rss_mb']:.0f} MB",
        "Where a 5-way 1-shot FCE training step goes (Lightning's SimpleProfiler actions that run once per "
        "step, median ms; nested actions overlap):",
        table(PROFILE_TABLE, profile),
    ]
    if "memory_format_ms" in result:
        formats = result["memory_format_ms"]
        parts.append(
            "Encoder memory format (`model.channels_last`), floor of 20-way 5-shot FCE (400 images): "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in formats.items())
            + f" ({formats['contiguous'] / formats['channels_last']:.2f}x)."
        )
    return "\n\n".join(parts)


def write_markdown(path: Path, command: str, text: str, result: dict[str, Any]) -> None:
    """``results/throughput.md``: command, machine, tables and the JSON line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Throughput: episode sampling and training step vs compute floor\n\n"
        f"Written by `benchmarks/throughput.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
        f"```bash\n{command}\n```\n\n{text}\n\n```json\n{json.dumps(result)}\n```\n"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_root = os.environ.get("MATCHNET_DATA_ROOT", "data/omniglot")
    parser.add_argument("--data-root", type=Path, default=Path(default_root), help=f"default: {default_root}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="shorter timings (a few minutes on 2 cores), no file"
    )
    mode.add_argument("--smoke", action="store_true", help="a handful of episodes, 5-way 1-shot steps only")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report of the full run")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of CPU time")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's, OMP_NUM_THREADS)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the tables and, last, the JSON line."""
    args = parse_args(argv)
    root = args.data_root if args.data_root.is_absolute() else Path.cwd() / args.data_root
    check_data_root(root)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.wall:
        CLOCK[0] = time.perf_counter
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[mode]
    for name in ("pytorch_lightning", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*on_step=True.*")
    started = time.perf_counter()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="matchnet-throughput-") as tmp:
        sampling = measure_sampling(root, sizes, Path(tmp) / "png")
        steps, profile = measure_steps(
            root, sizes, Path(tmp) / "logs", SETTINGS[:1] if mode == "smoke" else SETTINGS
        )
        rss = peak_rss_mb(root, sizes.rss_steps, Path(tmp) / "rss_run")
        precision = precisions(root, sizes.floor_s, SETTINGS[:1] if mode == "smoke" else SETTINGS)
    ratio = statistics.geometric_mean(row["bf16_over_fp32"] for row in precision.values())
    off = [row for name, row in steps.items() if name.endswith("fce_off")]
    on = [row for name, row in steps.items() if name.endswith("fce_on")]
    result: dict[str, Any] = {
        "mode": mode,
        "sampling_speedup": min(row["speedup"] for row in sampling.values()),
        "sampling_share_of_step": max(row["wait_share"] for row in steps.values()),
        "step_over_floor_fce_off": max(row["over_floor"] for row in off),
        "step_over_floor_fce_on": max(row["over_floor"] for row in on),
        "peak_rss_mb": rss,
        "eval_episodes_per_s": {name: row["eval_eps"] for name, row in steps.items()},
        "sampling_episodes_per_s": {name: row["project_eps"] for name, row in sampling.items()},
        "reference_episodes_per_s": {name: row["reference_eps"] for name, row in sampling.items()},
        "step_ms": {name: row["step_ms"] for name, row in steps.items()},
        "floor_ms": {name: row["floor_ms"] for name, row in steps.items()},
        "threads": info["threads"],
        "clock": "wall" if args.wall else "process_cpu",
        "profile_ms": profile,
        "precision_ms": precision,
        "bf16_over_fp32": ratio,
        "preferred_precision": BF16 if ratio < 1 else FP32,
        "auto_precision": auto_precision("cpu"),
    }
    if mode == "full":
        result["memory_format_ms"] = memory_formats(root, sizes.floor_s)
    result["seconds"] = time.perf_counter() - started
    text = report(result, sampling, steps, info)
    print(text)
    if mode == "full":
        command = shlex.join(
            ["python", "benchmarks/throughput.py", *(sys.argv[1:] if argv is None else argv)]
        )
        if info["omp_num_threads"]:
            command = f"OMP_NUM_THREADS={info['omp_num_threads']} {command}"
        write_markdown(args.out, command, text, result)
        print(f"Wrote {args.out}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
