"""Where the tests find the project: its root, ``conf/`` and the Omniglot data root.

Only ``os`` and ``pathlib`` here: ``tests/conftest.py`` imports this module in pytest-xdist's controlling
process too, where importing torch or Lightning would delay every worker's start.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
#: ``$MATCHNET_DATA_ROOT``, by default ``<project>/data/omniglot``: where the real Omniglot archives are.
DATA_ROOT = Path(os.environ.get("MATCHNET_DATA_ROOT", ROOT / "data" / "omniglot")).resolve()
