"""matchnet: Matching Networks for One Shot Learning (Vinyals et al., 2016)."""

from matchnet.errors import MatchnetError
from matchnet.precision import register_resolver

# The configs' ${auto_precision:...} (conf/trainer/default.yaml) resolves wherever matchnet is imported.
register_resolver()

__all__ = ["MatchnetError"]
__version__ = "0.1.0"
