"""Train a Matching Network, keep the best checkpoint by validation accuracy, and test it.

    python src/train.py                                   # Omniglot 5-way 1-shot, FCE, cosine
    python src/train.py experiment=omniglot_20w1s
    python src/train.py -m model.fce=true,false data.shot=1,5

The last line of standard output is one JSON object with the test accuracy and its 95% CI, and the
value of ``optimized_metric`` (default ``val/acc_best``, the best validation accuracy of the run).
That validation value, never a test metric, is what ``main`` returns to Hydra: a sweeper that
optimises it (``-m hparams_search=omniglot_optuna``) tunes on validation episodes only.
"""

import math

import hydra
from omegaconf import DictConfig

from matchnet.cli import run_task
from matchnet.pipeline import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train and test; return ``cfg.optimized_metric``'s value to Hydra (NaN for a failed sweep job).

    Optuna records a trial whose value is NaN as failed and goes on with the search.
    """
    result = run_task(train, cfg)
    if result is None:  # a failed job of a sweep (a single run has exited with status 2)
        return math.nan
    return result.get("optimized_value")


if __name__ == "__main__":
    main()
