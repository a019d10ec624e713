"""Time the default training run (`make train`: `python src/train.py`) and write results/default_run.md.

    python benchmarks/default_run.py [--out results] [-- extra overrides]

Runs `src/train.py` with the default config in a fresh process (CSV log only, so no W&B files), then
writes the test accuracy (mean ± 95% CI over the run's test episodes), the training episodes, and the
wall-clock and CPU time of the whole run (training, validation and test) read from the process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "outputs" / "default_run")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides (none: the default run)")
    args = parser.parse_args(argv)
    command = [sys.executable, "src/train.py", "logger=csv", f"hydra.run.dir={args.run_dir}", *args.overrides]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        print(
            f"error: the default run failed with status {proc.returncode}; see its output above.",
            file=sys.stderr,
        )
        return proc.returncode
    result = json.loads((args.run_dir / "result.json").read_text())
    threads = os.environ.get("OMP_NUM_THREADS", "all cores")
    shown = " ".join(["python src/train.py", *args.overrides])
    lines = [
        "# The default run (`make train`)",
        "",
        f"Written by `python benchmarks/default_run.py` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}"
        " UTC.",
        "",
        f"- command: `{shown}` (the default config: Omniglot, Vinyals split, FCE, 5-way 1-shot test)",
        f"- test accuracy: **{100 * result['test_acc']:.2f} ± {100 * result['test_acc_ci95']:.2f} %** "
        f"(mean ± 95% CI over {result['episodes']} test episodes, {result['way']}-way {result['shot']}-shot, "
        f"{result['query']} queries per class)",
        f"- training episodes: {result['train_episodes']}; best validation accuracy "
        f"{100 * result['optimized_value']:.2f} %"
        if result.get("optimized_value") is not None
        else "",
        f"- wall-clock time of the whole run: {wall / 60:.1f} min; CPU time (user + system): "
        f"{(usage.ru_utime + usage.ru_stime) / 60:.1f} min",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OMP_NUM_THREADS={threads}",
        "",
    ]
    from matchnet.io import write_text_atomic

    write_text_atomic(args.out / "default_run.md", "\n".join(line for line in lines if line is not None))
    print(f"wrote {args.out / 'default_run.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
