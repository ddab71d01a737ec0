"""``summary.json``: the machine-readable record of a run, per outer iteration and final."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from utal_lightning.utils import atomic_write_json

SUMMARY_FILE = "summary.json"
RUN_CONFIG_FILE = (
    "config.yaml"  # the fit's resolved config in the run directory (utal test|predict --ckpt_path, utal report)
)


def write_summary(root_dir: str | Path, history: list[dict[str, Any]], test: dict[str, Any] | None = None) -> Path:
    """Write ``<root_dir>/summary.json`` atomically: ``iterations`` (one record each), ``final``
    (the last iteration's record, updated with ``test`` when a final test ran)."""
    final = dict(history[-1]) if history else {}
    if test is not None:
        final["test"] = test
    return atomic_write_json(Path(root_dir) / SUMMARY_FILE, {"iterations": history, "final": final})
