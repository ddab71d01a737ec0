"""Test-split results: the logged mAP keys, the per-class AP table, the final ``summary.json``."""

from __future__ import annotations

from typing import Any

from utal_lightning.eval.detection_map import DetectionMAP
from utal_lightning.reporting.plots import log_table, per_class_ap_rows
from utal_lightning.reporting.summary import write_summary

PER_CLASS_TABLE = "test/per_class_AP"


def test_metrics(result: DetectionMAP, prefix: str = "test") -> dict[str, float]:
    """Log keys ``test/mAP@0.5`` ... and ``test/mAP_avg``."""
    metrics = {f"{prefix}/mAP@{t:g}": float(m) for t, m in zip(result.tious, result.mAP, strict=True)}
    metrics[f"{prefix}/mAP_avg"] = result.average_mAP
    return metrics


test_metrics.__test__ = False  # a helper named test_*: not a pytest test


def log_per_class_table(trainer: Any, result: DetectionMAP, step: int | None = None) -> None:
    """The per-class AP table (W&B table and CSV), at outer iteration ``step`` or final (None)."""
    log_table(trainer, PER_CLASS_TABLE, *per_class_ap_rows(result.per_class()), step=step)


def report_final_test(trainer: Any, history: list[dict[str, Any]], result: DetectionMAP) -> None:
    """Rank 0 after ``utal test`` or a fit's final test: ``summary.json`` with the test block, and the table."""
    write_summary(trainer.default_root_dir, history, test={**result.as_dict(), "per_class": result.per_class()})
    log_per_class_table(trainer, result)
