"""matchnet: Matching Networks for One Shot Learning (Vinyals et al., 2016)."""

from matchnet.errors import MatchnetError

__all__ = ["MatchnetError"]
__version__ = "0.1.0"
