"""The other methods of Vinyals et al. (2016), Table 1, trained and measured in the same framework.

- the pixel baseline needs no training: ``matchnet.model.pixels`` (``model=pixels``);
- :class:`BaselineClassifierModule`: the embedding trained as a classifier of all training classes
  (``experiment=results_baseline``);
- :class:`SiameseModule` with :class:`SiameseNetwork`: Koch et al.'s (2015) convolutional Siamese
  network, trained on same / different pairs (``experiment=results_siamese``).

Each module is a :class:`~matchnet.module.MatchingNetModule` whose ``net`` is a MatchingNetwork, so its
checkpoints are evaluated, used for prediction and loaded like any other (``docs/baselines.md``).
"""

from matchnet.baselines.classifier import HEADS, BaselineClassifierModule, CosineHead
from matchnet.baselines.siamese import SiameseModule, SiameseNetwork, WeightedL1Kernel, pair_loss

__all__ = [
    "HEADS",
    "BaselineClassifierModule",
    "CosineHead",
    "SiameseModule",
    "SiameseNetwork",
    "WeightedL1Kernel",
    "pair_loss",
]
