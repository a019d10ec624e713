"""benchmarks/throughput.py and the fast paths it measures.

- the benchmark in ``--smoke`` mode on the real data: JSON keys and types, and the tables (no timings
  are asserted: the machine may be loaded);
- its profiler (Lightning's ``SimpleProfiler`` on the benchmark's clock) on a fit whose episodes take
  a known time to fetch: the data wait is the fetch, and a step spans fetch and training step;
- episodes assembled with ``device`` (the ``data.device=cuda`` path, run here on the CPU) equal the host
  episodes exactly;
- a training step reads nothing back from the device except the one finite-loss check of
  ``nan_policy`` (counted ``.item()`` / ``bool()`` / ``.cpu()`` / ... calls; CUDA's sync debug mode
  cannot run on a CPU-only machine);
- ``model.channels_last`` gives the same outputs up to rounding.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from helpers.fixture_types import MakeTrainer
from helpers.scripts import run_main
from matchnet.data import Episode
from matchnet.data.episodes import EpisodeDataset
from matchnet.model import Conv4, MatchingNetwork
from matchnet.module import MatchingNetModule

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "sampling_speedup": float,
    "sampling_share_of_step": float,
    "step_over_floor_fce_off": float,
    "step_over_floor_fce_on": float,
    "peak_rss_mb": float,
    "eval_episodes_per_s": dict,
    "sampling_episodes_per_s": dict,
    "reference_episodes_per_s": dict,
    "step_ms": dict,
    "floor_ms": dict,
    "threads": int,
    "clock": str,
    "mode": str,
    "profile_ms": dict,
}
# Tensor methods that copy a value to the host (and so wait for the device).
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


@pytest.mark.slow
@pytest.mark.e2e
def test_smoke_run_prints_tables_and_json(omniglot_root: Path) -> None:
    done = run_main("benchmarks/throughput.py", "--smoke", "--data-root", str(omniglot_root), cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    for key, kind in KEYS.items():
        assert isinstance(result[key], kind), (key, result[key])
    assert result["mode"] == "smoke"
    for key in ("sampling_speedup", "step_over_floor_fce_off", "step_over_floor_fce_on", "peak_rss_mb"):
        assert result[key] > 0
    assert 0 <= result["sampling_share_of_step"] < 1
    assert set(result["sampling_episodes_per_s"]) == {"5w1s", "20w1s", "20w5s"}
    assert set(result["eval_episodes_per_s"]) == {"5w1s/fce_off", "5w1s/fce_on"}
    assert set(result["step_ms"]) == set(result["floor_ms"]) == set(result["eval_episodes_per_s"])
    profile = result["profile_ms"]
    assert {"run_training_batch", "[_TrainingEpochLoop].train_dataloader_next"} <= set(profile), profile
    assert profile["total (fetch to fetch)"] == result["step_ms"]["5w1s/fce_on"]
    assert not any("test" in name for name in profile), profile
    text = done.stdout
    assert "| setting | images | project ms |" in text
    assert "| setting | images | step ms | floor ms | step/floor |" in text
    assert "| 20w5s | 400 |" in text and "| 5w1s/fce_on | 80 |" in text
    assert "Peak RSS" in text
    assert set(result["precision_ms"]) == set(result["floor_ms"])
    for row in result["precision_ms"].values():
        assert row["fp32_ms"] > 0 and row["bf16_ms"] > 0
        assert row["bf16_over_fp32"] == pytest.approx(row["bf16_ms"] / row["fp32_ms"])
    assert result["preferred_precision"] == ("bf16-mixed" if result["bf16_over_fp32"] < 1 else "32-true")
    assert result["auto_precision"] in ("bf16-mixed", "32-true")
    assert "| setting | fp32 floor ms | bf16 floor ms | bf16 / fp32 |" in text
    assert f"This machine prefers **{result['preferred_precision']}**" in text
    assert "| action | ms/step |" in text and "| `run_training_batch` |" in text


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    args = ("--smoke", "--data-root", str(tmp_path))
    done = run_main("benchmarks/throughput.py", *args, cwd=ROOT, check=False)
    assert done.returncode != 0
    assert "images_background.zip" in done.stderr and "--data-root" in done.stderr


def _dataset(**kwargs: object) -> EpisodeDataset:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12 * 20, 1, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.arange(12).repeat_interleave(20)
    classes = [(c, k) for c in range(12) for k in range(4)]
    return EpisodeDataset(
        images, labels, classes, way=5, shot=2, query=3, length=10, seed=3, stage="train", **kwargs
    )


def test_device_assembly_equals_host_episodes() -> None:
    host, device = _dataset(), _dataset(device="cpu")
    for n in range(10):
        a, b = host[n], device[n]
        for x, y in zip(a[:4], b[:4], strict=True):
            assert x.dtype == y.dtype and torch.equal(x, y)
        assert b.way == a.way
    assert device.images.device == torch.device("cpu")


class _Episodes(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Episode:
        g = torch.Generator().manual_seed(i)
        way, shot, query = 3, 1, 2
        return Episode(
            torch.rand(way * shot, 1, 28, 28, generator=g),
            torch.arange(way).repeat_interleave(shot),
            torch.rand(way * query, 1, 28, 28, generator=g),
            torch.arange(way).repeat_interleave(query),
            way,
        )


class _SlowEpisodes(_Episodes):
    """Episodes that take ``delay`` seconds (wall clock) each to fetch."""

    def __init__(self, n: int, delay: float) -> None:
        super().__init__(n)
        self.delay = delay

    def __getitem__(self, i: int) -> Episode:
        time.sleep(self.delay)
        return super().__getitem__(i)


def _benchmark_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_profiler_times_the_fetch_and_the_whole_step(make_trainer: MakeTrainer) -> None:
    bench = _benchmark_module()
    bench.CLOCK[0] = time.perf_counter  # (a fresh module) the sleeps count on the wall clock only
    delay, steps = 0.05, 5
    profiler = bench.ClockProfiler()
    module = MatchingNetModule(model=_model(False), optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    trainer = make_trainer(
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        profiler=profiler,
    )
    trainer.fit(module, train_dataloaders=DataLoader(_SlowEpisodes(steps, delay), batch_size=None))
    fetches = profiler.recorded_durations[bench.TRAIN_FETCH]
    assert len(fetches) == len(profiler.starts[bench.TRAIN_FETCH]) == steps
    assert all(delay <= fetch < delay + 0.5 for fetch in fetches), fetches
    step = profiler.cycle(bench.TRAIN_FETCH, 1)
    batches = profiler.recorded_durations["run_training_batch"]
    assert step >= min(fetches) + min(batches)  # every fetch-to-fetch cycle holds one of each
    breakdown = bench.breakdown(profiler, steps, 1)
    assert breakdown["total (fetch to fetch)"] == 1e3 * step  # ms
    assert breakdown[bench.TRAIN_FETCH] >= 1e3 * delay and "run_training_batch" in breakdown


@contextlib.contextmanager
def count_host_reads() -> Iterator[Counter[str]]:
    """Count calls of ``HOST_READS`` on tensors while active."""
    counts: Counter[str] = Counter()
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def wrap(name: str):  # noqa: ANN202
        def counted(self: torch.Tensor, *args: object, **kwargs: object) -> object:
            counts[name] += 1
            return originals[name](self, *args, **kwargs)

        return counted

    for name in HOST_READS:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _model(fce: bool = True, channels_last: bool = False) -> dict[str, object]:
    return {
        "_target_": "matchnet.model.MatchingNetwork",
        "encoder": {"_target_": "matchnet.model.Conv4", "image_size": 28},
        "fce": fce,
        "fce_steps": 2,
        "distance": "cosine",
        "temperature": 0.1,
        "learn_temperature": True,
        "channels_last": channels_last,
    }


@pytest.mark.parametrize("fce", [False, True])
def test_training_step_reads_back_only_the_nan_policy_check(make_trainer: MakeTrainer, fce: bool) -> None:
    module = MatchingNetModule(model=_model(fce), optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    per_step: list[Counter[str]] = []
    logged: list[Counter[str]] = []
    step, log_step = module.training_step, module._log_step

    def training_step(episode: Episode, batch_idx: int) -> torch.Tensor | None:
        with count_host_reads() as counts:
            out = step(episode, batch_idx)
        per_step.append(counts)
        return out

    def counted_log_step(*args: object) -> None:
        with count_host_reads() as counts:
            log_step(*args)
        logged.append(counts)

    module.training_step = training_step  # type: ignore[method-assign]
    module._log_step = counted_log_step  # type: ignore[method-assign]
    trainer = make_trainer(
        max_steps=3,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
    )
    trainer.fit(module, train_dataloaders=DataLoader(_Episodes(3), batch_size=None))
    assert len(per_step) == 3 and len(logged) == 3
    # Metrics and self.log: nothing read back. Forward and loss: nothing. nan_policy: one bool().
    assert all(sum(c.values()) == 0 for c in logged), logged
    assert all(sum(c.values()) <= 1 and set(c) <= {"__bool__"} for c in per_step), per_step


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    plain = MatchingNetwork(Conv4(image_size=28), fce=True, fce_steps=2)
    fast = MatchingNetwork(Conv4(image_size=28), fce=True, fce_steps=2, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    assert set(fast.state_dict()) == set(plain.state_dict())
    support, query = torch.rand(6, 1, 28, 28), torch.rand(9, 1, 28, 28)
    labels = torch.arange(3).repeat_interleave(2)
    expected = plain(support, labels, query, 3)
    got = fast(support, labels, query, 3)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    weights = [p for p in fast.encoder.parameters() if p.dim() == 4 and p.shape[1] > 1]
    assert weights and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)
