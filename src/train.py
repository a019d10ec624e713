"""Train a Matching Network, keep the best checkpoint by validation accuracy, and test it.

    python src/train.py                                   # Omniglot 5-way 1-shot, FCE, cosine
    python src/train.py experiment=omniglot_20w1s
    python src/train.py -m model.fce=true,false data.shot=1,5

The last line of standard output is one JSON object with the test accuracy and its 95% CI.
"""

import hydra
from omegaconf import DictConfig

from matchnet.cli import run_task
from matchnet.pipeline import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    result = run_task(train, cfg)
    return None if result is None else result["test_acc"]


if __name__ == "__main__":
    main()
