"""Episode sampling and training-step throughput against a per-image pipeline and the compute floor.

In one run, on one machine, it measures:

1. **Sampling**: episodes per second of the project's training DataLoader (``OmniglotDataModule``,
   episodes gathered from the in-memory uint8 cache) against a per-image reference on the *same*
   episodes: a learn2learn ``Taskset`` (``NWays``, ``KShots``, ``LoadData``, ``RemapLabels``) over a
   dataset that opens each PNG and Lanczos-resizes (and rotates) it with PIL per sample, the way
   torchvision-style datasets and learn2learn's Omniglot benchmark work. The PNGs are extracted once
   from the archives in ``--data-root`` to a temporary folder before timing.
2. **Training step** of the full Lightning loop (DataLoader, forward, backward, Adam, ``self.log`` with
   torchmetrics, CSV logger, progress bar) against the compute floor: forward + backward + Adam step
   of the bare ``Conv4`` encoder on the same number of images, for 5-way 1-shot, 20-way 1-shot and
   20-way 5-shot (15 queries per class), FCE off and on. One floor step runs after each training
   batch (timed apart), so floor and Lightning steps alternate under the same load: paired samples.
   ``data wait`` is the time between the end of one training batch and the start of the next
   (fetching the episode, Lightning's own hooks), its share of the step is ``sampling_share_of_step``.
3. **Evaluation** episodes per second (``trainer.test``) per setting, and the peak resident memory of a
   20-way 5-shot FCE training run (``src/train.py`` in a subprocess, ``getrusage(RUSAGE_CHILDREN)``).

All times are medians of per-episode (per-step) times. The last line of standard output is one JSON
object; the full run also writes ``results/throughput.md``.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py            # full run, writes results/throughput.md
    OMP_NUM_THREADS=1 python benchmarks/throughput.py --quick    # < 2 minutes on 2 cores, no file
    python benchmarks/throughput.py --smoke                      # seconds: checks the plumbing only
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import random
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "throughput.md"
QUERY = 15  # queries per class in every setting (Vinyals et al.'s training episodes)
SETTINGS = ((5, 1), (20, 1), (20, 5))  # (way, shot)
# PIL's transpose for k counterclockwise quarter turns (np.rot90 / torch.rot90 over the last two axes).
PIL_TURNS = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}

with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # learn2learn imports gym, which prints a deprecation notice
    from learn2learn.data import MetaDataset, Taskset
    from learn2learn.data.transforms import KShots, LoadData, NWays, RemapLabels


@dataclass(frozen=True)
class Sizes:
    """How many episodes each measurement times (after ``warmup`` untimed ones)."""

    sample: int  # episodes through the project's DataLoader per setting
    reference: int  # episodes through the per-image reference per setting
    warmup: int  # untimed training steps before the timed ones
    steps: int  # timed training steps per setting and FCE choice
    floor: int  # untimed floor iterations before each Lightning run (then one after each training step)
    eval: int  # timed test episodes per setting and FCE choice
    rss_steps: int  # training steps of the peak-memory subprocess


SIZES = {
    "full": Sizes(sample=100, reference=10, warmup=2, steps=25, floor=3, eval=20, rss_steps=30),
    "quick": Sizes(sample=20, reference=2, warmup=1, steps=4, floor=3, eval=3, rss_steps=2),
    "smoke": Sizes(sample=4, reference=2, warmup=1, steps=2, floor=2, eval=2, rss_steps=2),
}


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def setting_name(way: int, shot: int) -> str:
    """``20w5s``."""
    return f"{way}w{shot}s"


# ----------------------------------------------------------------------------- machine and data


def machine() -> dict[str, Any]:
    """CPU model, cores, torch version and threads of this process."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
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


def member_paths(root: Path) -> list[tuple[Path, str]]:
    """(archive or folder, member) of every image, in the order of the image cache."""
    from matchnet.data.omniglot import find_sources

    catalog = find_sources(root, download=False)
    return [
        (source.path, member)
        for source in catalog.sources
        for members in source.characters.values()
        for member in members
    ]


def extract(members: Sequence[tuple[Path, str]], image_ids: set[int], folder: Path) -> dict[int, Path]:
    """Extract the PNGs of ``image_ids`` once into ``folder`` (before timing); image id -> file."""
    files: dict[int, Path] = {}
    archives: dict[Path, zipfile.ZipFile] = {}
    try:
        for image_id in sorted(image_ids):
            source, member = members[image_id]
            if source.is_dir():
                files[image_id] = source.parent / member
                continue
            archive = archives.get(source) or archives.setdefault(source, zipfile.ZipFile(source))
            files[image_id] = Path(archive.extract(member, folder))
    finally:
        for archive in archives.values():
            archive.close()
    return files


# ----------------------------------------------------------------------------- sampling


class PngItems(torch.utils.data.Dataset):
    """The reference: item ``k`` opens its PNG, Lanczos-resizes and rotates it with PIL, per sample.

    Items are the same (class, drawing) items as ``EpisodeDataset``'s ``MetaDataset``, so the same
    learn2learn transforms under the same seed draw the same episodes.
    """

    def __init__(
        self, files: dict[int, Path], item_image: Tensor, item_class: Tensor, turns: Tensor, size: int
    ):
        self.files, self.size = files, size
        self.item_image, self.item_class, self.turns = (
            item_image.tolist(),
            item_class.tolist(),
            turns.tolist(),
        )

    def __len__(self) -> int:
        return len(self.item_image)

    def __getitem__(self, k: int) -> tuple[Tensor, int]:
        cls = self.item_class[k]
        with Image.open(self.files[self.item_image[k]]) as image:
            gray = image.convert("L").resize((self.size, self.size), Image.Resampling.LANCZOS)
        if self.turns[cls]:
            gray = gray.transpose(PIL_TURNS[self.turns[cls]])
        pixels = torch.from_numpy(np.asarray(gray, dtype=np.float32))
        return (1.0 - pixels / 255.0).unsqueeze(0), cls  # ink 1, background 0, [1, S, S]


class ReferenceEpisodes:
    """Per-image reference pipeline drawing exactly the episodes of an ``EpisodeDataset``."""

    def __init__(self, dataset: Any, files: dict[int, Path]) -> None:
        self.dataset = dataset
        meta = dataset.taskset.dataset
        items = PngItems(
            files, dataset.item_image, dataset.item_class, dataset.class_turns, dataset.images.shape[-1]
        )
        self.items = MetaDataset(items, labels_to_indices=dict(meta.labels_to_indices))
        k = dataset.shot + dataset.query
        self.taskset = Taskset(
            self.items,
            task_transforms=[
                NWays(self.items, n=dataset.way),
                KShots(self.items, k=k),
                LoadData(self.items),
                RemapLabels(self.items, shuffle=False),
            ],
        )

    def item_ids(self, n: int) -> list[int]:
        """The image ids of episode ``n`` (drawn under the project's seed), without loading them."""
        with self._seeded(n):
            description = self.taskset.sample_task_description()
        return [self.dataset.item_image[dd.index].item() for dd in description]

    @contextlib.contextmanager
    def _seeded(self, n: int) -> Iterator[None]:
        state = random.getstate()
        random.seed(f"{self.dataset.seed}/{self.dataset.stage}/{n}")
        try:
            yield
        finally:
            random.setstate(state)

    def __getitem__(self, n: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        way, shot, query = self.dataset.way, self.dataset.shot, self.dataset.query
        with self._seeded(n):
            description = self.taskset.sample_task_description()
            support_order = random.sample(range(way * shot), way * shot)
            query_order = random.sample(range(way * query), way * query)
        x, y = self.taskset.get_task(description)  # collated: [way*(shot+query), 1, S, S], [way*(shot+query)]
        x, y = x.view(way, shot + query, *x.shape[1:]), y.view(way, shot + query)
        support_x = x[:, :shot].reshape(-1, *x.shape[2:])[support_order]
        query_x = x[:, shot:].reshape(-1, *x.shape[2:])[query_order]
        return (
            support_x,
            y[:, :shot].reshape(-1)[support_order],
            query_x,
            y[:, shot:].reshape(-1)[query_order],
        )


def clock() -> float:
    """The clock of every measurement: this process's CPU seconds (or wall seconds with ``--wall``).

    On a shared machine, CPU time excludes the time the process waits for a core, so ratios measured
    minutes apart stay comparable; with one torch thread it is the work done.
    """
    return CLOCK[0]()


CLOCK: list[Callable[[], float]] = [time.process_time]


def time_each(items: Iterator[Any] | Callable[[int], Any], count: int) -> list[float]:
    """Seconds (``clock``) per item of ``count`` items of an iterator (or calls ``f(0..count-1)``)."""
    times = []
    for n in range(count):
        start = clock()
        if callable(items):
            items(n)
        else:
            next(items)
        times.append(clock() - start)
    return times


def datamodule(root: Path, way: int, shot: int, episodes: int, **overrides: Any) -> Any:
    """The project's Omniglot DataModule for one setting (training and test episodes alike)."""
    from matchnet.data import OmniglotDataModule

    kwargs: dict[str, Any] = {
        "root": str(root),
        "way": way,
        "shot": shot,
        "query": QUERY,
        "train_episodes_per_epoch": episodes,
        "val_episodes": 1,
        "test_episodes": episodes,
        "download": False,
    }
    module = OmniglotDataModule(**(kwargs | overrides))
    module.setup()
    return module


def measure_sampling(root: Path, members: list[tuple[Path, str]], sizes: Sizes, tmp: Path) -> dict[str, Any]:
    """Per setting: seconds per episode of the project's train DataLoader and of the reference."""
    rows = {}
    for way, shot in SETTINGS:
        dm = datamodule(root, way, shot, sizes.sample)
        dataset = dm.dataset("train")
        reference = ReferenceEpisodes(dataset, {})
        ids = {i for n in range(sizes.reference) for i in reference.item_ids(n)}
        reference = ReferenceEpisodes(dataset, extract(members, ids, tmp))
        # Same episodes: the reference draws the project's images in the same order (labels are named
        # differently by RemapLabels); checked on the first episode.
        same, ref = dataset[0], reference[0]
        diff = max(float((same.support_x - ref[0]).abs().max()), float((same.query_x - ref[2]).abs().max()))
        if diff > 1.5 / 255:  # one grey level of rounding
            raise RuntimeError(
                f"the reference pipeline drew other images than the DataModule (max diff {diff})"
            )
        project = time_each(iter(dm.train_dataloader()), sizes.sample)
        per_image = time_each(reference.__getitem__, sizes.reference)
        project_s, reference_s = median(project), median(per_image)
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


class StepTimer:
    """Lightning callback: ``clock`` time of every training / test batch and the gap before it.

    ``between``, when given, runs after every training batch (the compute floor, so that floor and
    Lightning steps alternate under the same load); its time is recorded apart and excluded from the
    batch-to-batch cycle.
    """

    def __init__(self, between: Callable[[], None] | None = None) -> None:
        import pytorch_lightning as pl

        timer = self
        self.between = between

        class _Callback(pl.Callback):
            def on_train_batch_start(self, *args: Any) -> None:
                timer.start()

            def on_train_batch_end(self, *args: Any) -> None:
                timer.end(run_between=True)

            def on_test_batch_start(self, *args: Any) -> None:
                timer.start()

            def on_test_batch_end(self, *args: Any) -> None:
                timer.end(run_between=False)

        self.callback = _Callback()
        self.reset()

    def reset(self) -> None:
        """Forget the recorded batches."""
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.resumes: list[float] = []  # when Lightning got control back after ``between``
        self.between_times: list[float] = []

    def start(self) -> None:
        """A batch starts."""
        self.starts.append(clock())

    def end(self, run_between: bool) -> None:
        """A batch ends; run ``between`` (timed apart) when asked."""
        now = clock()
        self.ends.append(now)
        if run_between and self.between is not None:
            self.between()
            after = clock()
            self.between_times.append(after - now)
            now = after
        self.resumes.append(now)

    def summary(self, skip: int) -> tuple[float, float]:
        """(median batch-to-batch time, median gap between a batch's end and the next's start), in s."""
        resumes, ends, starts = self.resumes[skip:], self.ends[skip + 1 :], self.starts[skip + 1 :]
        cycle = [e - r for r, e in zip(resumes, ends, strict=False)]
        wait = [s - r for r, s in zip(resumes, starts, strict=False)]
        return median(cycle), median(wait)


def model_config(fce: bool) -> dict[str, Any]:
    """The project's default model config (``conf/``, composed by Hydra) with ``model.fce`` set."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model.fce={fce}", "data.image_size=28"])
    return OmegaConf.to_container(cfg.model, resolve=True)  # type: ignore[return-value]


class Floor:
    """Compute floor: forward + backward + Adam step of the bare encoder of ``model`` on ``images`` images.

    The encoder is built from the same config as the model's, in the same memory format
    (``model.channels_last``); the loss is a trivial function of the embeddings.
    """

    def __init__(self, model: dict[str, Any], images: int) -> None:
        import hydra

        torch.manual_seed(0)
        self.encoder = hydra.utils.instantiate(model["encoder"])
        self.x = torch.rand(
            images, self.encoder.in_channels, self.encoder.image_size, self.encoder.image_size
        )
        if model.get("channels_last"):
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=1e-3)
        self.step()

    def step(self, _: int = 0) -> None:
        """One optimiser step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.encoder(self.x).pow(2).mean().backward()
        self.optimizer.step()


def lightning_run(
    root: Path,
    way: int,
    shot: int,
    fce: bool,
    sizes: Sizes,
    logdir: Path,
    model: dict[str, Any] | None = None,
    between: Callable[[], None] | None = None,
    extra_callbacks: Sequence[Any] = (),
    test: bool = True,
) -> dict[str, float]:
    """Train ``warmup + steps`` episodes with the full Lightning loop, then test ``eval`` episodes."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import TQDMProgressBar
    from pytorch_lightning.loggers import CSVLogger

    from matchnet.module import MatchingNetModule

    episodes = sizes.warmup + sizes.steps
    dm = datamodule(root, way, shot, episodes)
    pl.seed_everything(0, verbose=False)
    module = MatchingNetModule(
        model=model or model_config(fce), optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3}
    )
    timer = StepTimer(between)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=episodes,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        limit_test_batches=sizes.warmup + sizes.eval,
        logger=CSVLogger(logdir, name=f"{setting_name(way, shot)}_fce{int(fce)}"),
        log_every_n_steps=50,  # conf/trainer/default.yaml
        callbacks=[TQDMProgressBar(refresh_rate=20), timer.callback, *extra_callbacks],  # as conf/callbacks
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    quiet = io.StringIO()  # the progress bar still formats its line, but stays quiet
    with contextlib.redirect_stderr(quiet), contextlib.redirect_stdout(quiet):
        trainer.fit(module, datamodule=dm)
        step, wait = timer.summary(sizes.warmup)
        between_s = median(timer.between_times[sizes.warmup :]) if timer.between_times else float("nan")
        timer.reset()
        if not test:
            return {"step_s": step, "wait_s": wait, "eval_eps": float("nan"), "between_s": between_s}
        trainer.test(module, datamodule=dm, verbose=False)
        eval_step, _ = timer.summary(sizes.warmup)
    return {"step_s": step, "wait_s": wait, "eval_eps": 1 / eval_step, "between_s": between_s}


def measure_steps(
    root: Path, sizes: Sizes, logdir: Path, settings: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """Per setting and FCE choice: Lightning step time, data wait, floor and their ratio."""
    rows: dict[str, Any] = {}
    for way, shot in settings:
        images = way * (shot + QUERY)
        for fce in (False, True):
            model = model_config(fce)
            floor_step = Floor(model, images)
            for n in range(sizes.floor):  # warm-up
                floor_step.step(n)
            # Floor steps alternate with the Lightning steps (after each training batch): paired samples.
            run = lightning_run(root, way, shot, fce, sizes, logdir, model, between=floor_step.step)
            floor = run["between_s"]
            rows[f"{setting_name(way, shot)}/fce_{'on' if fce else 'off'}"] = {
                "images": images,
                "step_ms": 1e3 * run["step_s"],
                "floor_ms": 1e3 * floor,
                "over_floor": run["step_s"] / floor,
                "wait_ms": 1e3 * run["wait_s"],
                "wait_share": run["wait_s"] / run["step_s"],
                "eval_eps": run["eval_eps"],
            }
    return rows


# ----------------------------------------------------------------------------- full run only: extras


def memory_formats(images: int, repeats: int) -> dict[str, float]:
    """Floor ms of the default encoder, contiguous (NCHW) vs channels-last, alternating step by step."""
    floors = {
        name: Floor(model_config(True) | {"channels_last": name == "channels_last"}, images)
        for name in ("contiguous", "channels_last")
    }
    times: dict[str, list[float]] = {name: [] for name in floors}
    for _ in range(repeats):
        for name, floor in floors.items():
            times[name] += time_each(floor.step, 1)
    return {name: 1e3 * median(values) for name, values in times.items()}


PROFILE_PARTS = {  # label: (file suffix, function name) of the cProfile entries, cumulative time
    "training_step (forward, loss)": ("matchnet/module.py", "training_step"),
    "  encoder forward": ("matchnet/model/encoders.py", "forward"),  # (+ its input normalisation)
    "  FCE forward (support BiLSTM + attention LSTM)": ("matchnet/model/context.py", "forward"),
    "  _log_step (metrics + self.log)": ("matchnet/module.py", "_log_step"),
    "backward": ("torch/autograd/__init__.py", "backward"),
    "optimizer step (Adam, excluding the closure)": ("torch/optim/adam.py", "adam"),
    "episode fetch (DataLoader)": ("pytorch_lightning/loops/fetchers.py", "__next__"),
    "callbacks (progress bar, ...)": ("pytorch_lightning/trainer/call.py", "_call_callback_hooks"),
}


def profile_steps(root: Path, logdir: Path, steps: int) -> dict[str, float]:
    """cProfile of ``steps`` 5-way 1-shot FCE training steps (the largest step/floor ratio): ms per step.

    cProfile adds a cost to every Python call, so Python-heavy parts (Lightning, logging) look larger
    than they are; ``total`` is the whole training loop per step under the profiler.
    """
    import cProfile
    import pstats

    import pytorch_lightning as pl

    warmup = 3
    sizes = Sizes(sample=1, reference=1, warmup=warmup, steps=steps, floor=0, eval=1, rss_steps=1)
    profiler = cProfile.Profile()

    class _Window(pl.Callback):  # profile the training steps after the warm-up ones
        def on_train_batch_start(self, trainer: pl.Trainer, module: Any, batch: Any, batch_idx: int) -> None:
            if batch_idx == warmup:
                profiler.enable()

        def on_train_end(self, trainer: pl.Trainer, module: Any) -> None:
            profiler.disable()

    lightning_run(
        root, 5, 1, True, sizes, logdir, model_config(True), extra_callbacks=[_Window()], test=False
    )
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    for label, (suffix, function) in PROFILE_PARTS.items():
        total = sum(
            cumulative
            for (file, _, name), (_, _, _, cumulative, _) in stats.items()
            if file.endswith(suffix) and name == function
        )
        parts[label] = 1e3 * total / steps
    loop = [
        v
        for (file, _, name), v in stats.items()
        if file.endswith("training_epoch_loop.py") and name == "advance"
    ]
    parts["total (training-loop iteration)"] = 1e3 * sum(v[3] for v in loop) / steps
    return parts


# ----------------------------------------------------------------------------- peak memory


def peak_rss_mb(root: Path, steps: int, workdir: Path) -> tuple[float, list[str]]:
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
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env=os.environ | {"WANDB_MODE": "offline"}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux; max over waited children
    if peak <= before:  # an earlier child was larger; never the case here (this is the only child)
        raise RuntimeError("RUSAGE_CHILDREN did not grow; run the peak-memory measurement in a fresh process")
    return peak / 1024, command


# ----------------------------------------------------------------------------- report


def table(rows: list[list[str]], header: list[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(
    result: dict[str, Any], sampling: dict[str, Any], steps: dict[str, Any], info: dict[str, Any]
) -> str:
    """The tables (Markdown) of one run."""
    sample_rows = [
        [
            name,
            str(row["images"]),
            f"{row['project_ms']:.2f}",
            f"{row['project_eps']:.0f}",
            f"{row['reference_ms']:.1f}",
            f"{row['reference_eps']:.1f}",
            f"{row['speedup']:.0f}x",
        ]
        for name, row in sampling.items()
    ]
    step_rows = [
        [
            name,
            str(row["images"]),
            f"{row['step_ms']:.1f}",
            f"{row['floor_ms']:.1f}",
            f"{row['over_floor']:.2f}x",
            f"{row['wait_ms']:.2f} ({100 * row['wait_share']:.1f}%)",
            f"{row['eval_eps']:.1f}",
        ]
        for name, row in steps.items()
    ]
    return "\n\n".join(
        [
            "Machine: " + ", ".join(f"{key} {value}" for key, value in info.items()),
            "Clock: "
            + (
                "wall time."
                if result["clock"] == "wall"
                else "this process's CPU time (user + system), so time spent waiting for a core on a shared "
                "machine is not counted; medians per episode / step."
            ),
            "Episode sampling (training DataLoader vs per-image PNG + PIL reference, same episodes, "
            "15 queries per class; median per episode):",
            table(
                sample_rows,
                [
                    "setting",
                    "images",
                    "project ms",
                    "project ep/s",
                    "reference ms",
                    "reference ep/s",
                    "speedup",
                ],
            ),
            "Training step (full Lightning loop) vs compute floor (Conv4 forward + backward + Adam on the "
            "same images); data wait = end of one training batch to start of the next; eval = trainer.test:",
            table(
                step_rows,
                ["setting", "images", "step ms", "floor ms", "step/floor", "data wait ms", "eval ep/s"],
            ),
            "Peak RSS of a 20-way 5-shot FCE training run (src/train.py, subprocess): "
            f"{result['peak_rss_mb']:.0f} MB",
        ]
    )


def extras_report(extras: dict[str, Any]) -> str:
    """Memory-format comparison and the cProfile breakdown (full run)."""
    formats = extras["memory_format_ms"]
    lines = [
        "Encoder memory format (`model.channels_last`), floor of 20-way 5-shot (400 images), alternating "
        "step by step: "
        + ", ".join(f"{name} {ms:.1f} ms" for name, ms in formats.items())
        + f" ({formats['contiguous'] / formats['channels_last']:.2f}x).",
        "Where a 5-way 1-shot FCE training step goes (cProfile, cumulative ms per step; the profiler "
        "inflates Python-level costs):",
        table(
            [
                [label.replace("  ", "&nbsp;&nbsp;"), f"{ms:.2f}"]
                for label, ms in extras["profile_ms"].items()
            ],
            ["part", "ms/step"],
        ),
    ]
    return "\n\n".join(lines)


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
    mode.add_argument("--quick", action="store_true", help="fewer episodes (< 2 minutes on 2 cores), no file")
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
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*on_step=True.*")
    started = time.perf_counter()
    info = machine()
    with tempfile.TemporaryDirectory(prefix="matchnet-throughput-") as tmp:
        tmp_path = Path(tmp)
        sampling = measure_sampling(root, member_paths(root), sizes, tmp_path / "png")
        settings = SETTINGS[:1] if mode == "smoke" else SETTINGS
        steps = measure_steps(root, sizes, tmp_path / "logs", settings)
        rss, _ = peak_rss_mb(root, sizes.rss_steps, tmp_path / "rss_run")
        extras: dict[str, Any] = {}
        if mode == "full":
            extras["memory_format_ms"] = memory_formats(20 * (5 + QUERY), 8)
            extras["profile_ms"] = profile_steps(root, tmp_path / "profile", 30)
    off = {k: v for k, v in steps.items() if k.endswith("fce_off")}
    on = {k: v for k, v in steps.items() if k.endswith("fce_on")}
    result: dict[str, Any] = {
        "mode": mode,
        "sampling_speedup": min(row["speedup"] for row in sampling.values()),
        "sampling_share_of_step": max(row["wait_share"] for row in steps.values()),
        "step_over_floor_fce_off": max(row["over_floor"] for row in off.values()),
        "step_over_floor_fce_on": max(row["over_floor"] for row in on.values()),
        "peak_rss_mb": rss,
        "eval_episodes_per_s": {name: row["eval_eps"] for name, row in steps.items()},
        "sampling_episodes_per_s": {name: row["project_eps"] for name, row in sampling.items()},
        "reference_episodes_per_s": {name: row["reference_eps"] for name, row in sampling.items()},
        "step_ms": {name: row["step_ms"] for name, row in steps.items()},
        "floor_ms": {name: row["floor_ms"] for name, row in steps.items()},
        "threads": info["threads"],
        "clock": "wall" if args.wall else "process_cpu",
        "seconds": time.perf_counter() - started,
        **extras,
    }
    text = report(result, sampling, steps, info)
    if extras:
        text += "\n\n" + extras_report(extras)
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
