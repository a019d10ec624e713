"""Server time of one "Classify" in the demo (src/demo.py), on one CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/demo_latency.py [--ckpt PATH] [--support 20] [--repeats 200]

Times ``matchnet.demo.app.classify_query``, everything the server does for a click on "Classify":
converting a 400x400 canvas drawing like the training images, the network (support embeddings
cached, so only the query side runs), the probability table, the attention table with its images
and the preview. The support set is one drawing per character of an Omniglot evaluation alphabet
(from ``$MATCHNET_DATA_ROOT``, default ``data/omniglot``) or, without the data, synthetic strokes.
Writes ``results/demo_latency.md``; the target is < 150 ms with 20 support images.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from matchnet.classifier import DEFAULT_CHECKPOINT
from matchnet.demo.alphabets import Alphabets
from matchnet.demo.app import classify_query
from matchnet.demo.core import DemoModel, Example, SupportSet

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 150.0


def strokes(seed: int, size: int = 400) -> Image.Image:
    """A random black-on-white line drawing on a canvas-sized RGB image (like the page's canvas)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        points = [tuple(int(v) for v in rng.integers(60, size - 60, 2)) for _ in range(4)]
        draw.line(points, fill="black", width=12, joint="curve")
    return image


def support_set(model: DemoModel, size: int, data_root: Path) -> tuple[SupportSet, str]:
    support = SupportSet()
    alphabets = Alphabets(data_root)
    if alphabets.available:
        for name in alphabets.names:
            drawings = alphabets.drawings(name)
            if len(drawings) >= size:
                support.extend(Example(label, model.prepare(image)) for label, image in drawings[:size])
                return support, f"the first {size} characters of the Omniglot alphabet {name}"
    support.extend(Example(f"class {i}", model.prepare(strokes(1000 + i))) for i in range(size))
    return support, f"{size} synthetic stroke drawings (no Omniglot data at {data_root})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", type=Path, default=ROOT / DEFAULT_CHECKPOINT)
    parser.add_argument("--support", type=int, default=20, help="support images (one per class)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=ROOT / "results" / "demo_latency.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_root = Path(os.environ.get("MATCHNET_DATA_ROOT", ROOT / "data" / "omniglot"))

    model = DemoModel.from_checkpoint(args.ckpt)
    support, described = support_set(model, args.support, data_root)
    queries = [{"background": None, "layers": [], "composite": strokes(seed)} for seed in range(10)]

    started = time.perf_counter()
    classify_query(model, support, queries[0])  # the first query also embeds the support set
    first_ms = (time.perf_counter() - started) * 1000
    total, network = [], []
    for i in range(args.repeats):
        started = time.perf_counter()
        *_, numbers, _ = classify_query(model, support, queries[i % len(queries)])
        total.append((time.perf_counter() - started) * 1000)
        network.append(numbers["server_ms"])
    total.sort()
    p95 = total[int(0.95 * (len(total) - 1))]
    median = statistics.median(total)
    verdict = "meets" if p95 < TARGET_MS else "MISSES"

    lines = [
        "# Demo latency",
        "",
        'Server time of one "Classify" in `src/demo.py` (`matchnet.demo.app.classify_query`: canvas '
        "conversion, network with cached support embeddings, probability and attention tables, preview), "
        f"made by `OMP_NUM_THREADS=1 python benchmarks/demo_latency.py --support {args.support}`.",
        "",
        "| | ms |",
        "|---|---|",
        f"| median over {args.repeats} queries | {median:.1f} |",
        f"| 95th percentile | {p95:.1f} |",
        f"| of which the network (median) | {statistics.median(network):.1f} |",
        f"| first query (also embeds the support set) | {first_ms:.1f} |",
        "",
        f"- support set: {args.support} images, {described}",
        f"- queries: 400x400 RGB canvas drawings, converted to {model.image_size}x{model.image_size}",
        f"- checkpoint: `{args.ckpt.relative_to(ROOT) if args.ckpt.is_relative_to(ROOT) else args.ckpt}`",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
        f"torch {torch.__version__} with {torch.get_num_threads()} thread(s)",
        f"- target: < {TARGET_MS:.0f} ms; the 95th percentile {verdict} it.",
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
