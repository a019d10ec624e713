"""The default trainer.precision (matchnet.precision) and bf16-trained checkpoints evaluated in fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.scripts import last_json, run_in
from matchnet.precision import BF16, FP32, auto_precision, cpu_flags

AMX = frozenset({"fpu", "avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"})
AVX2 = frozenset({"fpu", "sse4_2", "avx2", "fma"})
# AVX512-BF16 without AMX (e.g. AMD Zen 4): bf16 not measured faster there, so fp32.
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})


@pytest.mark.parametrize(
    ("accelerator", "flags", "expected"),
    [
        ("cpu", AMX, BF16),
        ("cpu", AVX2, FP32),
        ("cpu", AVX512_BF16, FP32),
        ("cpu", frozenset(), FP32),
        ("gpu", AMX, FP32),
        ("cuda", AMX, FP32),
    ],
)
def test_bf16_only_on_a_cpu_with_amx(accelerator: str, flags: frozenset[str], expected: str) -> None:
    assert auto_precision(accelerator, flags) == expected


def test_auto_accelerator_follows_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert auto_precision("auto", AMX) == FP32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert auto_precision("auto", AMX) == BF16


def test_cpu_flags_reads_the_first_flags_line(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    cpu_flags.cache_clear()
    try:
        assert cpu_flags(info) == {"fpu", "avx2", "amx_bf16"}
        assert cpu_flags(tmp_path / "missing") == frozenset()
    finally:
        cpu_flags.cache_clear()


def test_the_config_default_is_the_machines_choice(compose_config) -> None:
    cfg = compose_config("train", ["trainer.accelerator=cpu"])
    assert cfg.trainer.precision == auto_precision("cpu")
    assert compose_config("train", ["trainer.precision=bf16-mixed"]).trainer.precision == BF16
    assert compose_config("eval", ["trainer.accelerator=cpu"]).trainer.precision == auto_precision("cpu")


@pytest.mark.data
def test_a_bf16_trained_checkpoint_evaluates_in_fp32(omniglot_root: Path, tmp_path: Path) -> None:
    run = tmp_path / "train"
    trained = run_in(
        run, "train.py", "debug=tiny", "trainer.precision=bf16-mixed", "data.train_way=5", "logger=none"
    )
    assert last_json(trained)["episodes"] == 6
    ckpt = run / "checkpoints" / "best.ckpt"
    weights = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    floats = [t for t in weights.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    fp32 = [f"ckpt_path={ckpt}", "trainer.precision=32-true", "data.test_episodes=2", "logger=none"]
    result = last_json(run_in(tmp_path / "eval", "eval.py", *fp32))
    assert result["episodes"] == 2
    assert 0.0 <= result["test_acc"] <= 1.0
    # The same checkpoint in fp32 twice: the same number.
    again = run_in(tmp_path / "eval2", "eval.py", *fp32)
    assert last_json(again)["test_acc"] == result["test_acc"]
