"""Evaluate a checkpoint on fixed, seeded test episodes.

    python src/eval.py ckpt_path=PATH [data.test_episodes=1000 data.way=20 ...]

The last line of standard output is one JSON object with the test accuracy and its 95% CI.
"""

import hydra
from omegaconf import DictConfig

from matchnet.cli import run_task
from matchnet.pipeline import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg: DictConfig) -> float | None:
    result = run_task(evaluate, cfg)
    return None if result is None else result["test_acc"]


if __name__ == "__main__":
    main()
