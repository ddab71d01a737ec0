"""Resident memory of this process (Linux /proc), shared by the benchmarks."""

from __future__ import annotations

import re
import resource
from pathlib import Path


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``);
    False where that is not possible (the peak then stays the high-water mark so far)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float | None:
    try:
        return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return None


def peak_rss_mib() -> float:
    """Peak resident set size since the start or the last :func:`reset_peak_rss` (VmHWM; else ru_maxrss)."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    """Resident set size now (VmRSS), NaN where /proc is absent."""
    now = _status_mib("VmRSS")
    return now if now is not None else float("nan")
