"""Train a Matching Network, keep the best checkpoint by validation accuracy, and test it.

    python src/train.py                                   # Omniglot 5-way 1-shot, FCE, cosine
    python src/train.py experiment=omniglot_20w1s
    python src/train.py -m model.fce=true,false data.shot=1,5

The last line of standard output is one JSON object with the test accuracy and its 95% CI, and the
value of ``optimized_metric`` (default ``val/acc_best``, the best validation accuracy of the run).
That validation value, never a test metric, is what ``main`` returns to Hydra: a sweeper that
optimises it (``-m hparams_search=omniglot_optuna``) tunes on validation episodes only.
"""

import hydra
from omegaconf import DictConfig

from matchnet.cli import run_task
from matchnet.pipeline import train


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Train and test; return ``cfg.optimized_metric``'s value to Hydra.

    A failed job of a sweep returns None (a single run has exited with status 2): the Optuna sweeper
    records that trial as failed and, within ``hydra.sweeper.max_failure_rate``, goes on.
    """
    result = run_task(train, cfg)
    return None if result is None else result.get("optimized_value")


if __name__ == "__main__":
    main()
