"""Where things are: the repository, its configs, the `utal` script of this interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
UTAL = Path(sys.executable).parent / "utal"
