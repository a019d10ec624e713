"""The default numeric precision: bf16 autocast only where it was measured to be faster.

``conf/trainer/default.yaml`` sets ``precision: ${auto_precision:${.accelerator}}``. The resolver
registered here answers ``bf16-mixed`` on a CPU with AMX-BF16 matrix units and ``32-true`` everywhere
else. The rule follows measurement (``benchmarks/throughput.py``, ``results/throughput.md``), one
Conv4 training step on one thread:

- Intel Xeon with AMX: bf16 autocast took 0.57x the fp32 time (FCE, 20-way 1-shot, 5 queries);
- AMD EPYC with AVX2 only (no bf16 instructions): bf16 autocast took 7 to 9 times the fp32 time.

GPUs keep fp32 (Conv4 on 28x28 images is bound by kernel launches, not arithmetic, and bf16 has not
been measured there). An explicit ``trainer.precision=...`` always wins; checkpoints hold fp32
weights whatever the training precision, so evaluation, prediction and the demo load them alike.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

#: The resolver's name in the configs.
RESOLVER = "auto_precision"
BF16 = "bf16-mixed"
FP32 = "32-true"
#: /proc/cpuinfo flags of CPUs on which bf16 autocast was measured to be faster than fp32.
BF16_CPU_FLAGS = frozenset({"amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The instruction-set flags the kernel reports for the first CPU (empty where it reports none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def auto_precision(accelerator: str = "auto", flags: frozenset[str] | None = None) -> str:
    """``bf16-mixed`` when training runs on a CPU with AMX-BF16 units, else ``32-true``.

    Args:
        accelerator: ``trainer.accelerator``; ``auto`` means the GPU when one is available.
        flags: CPU flags to decide on (default: this machine's, from ``/proc/cpuinfo``).
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not _cuda_available())
    if not on_cpu:
        return FP32
    flags = cpu_flags() if flags is None else flags
    return BF16 if flags & BF16_CPU_FLAGS else FP32


def register_resolver() -> None:
    """Make ``${auto_precision:<accelerator>}`` available to every config (idempotent)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, lambda accelerator="auto": auto_precision(str(accelerator)))
