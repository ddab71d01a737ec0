"""``utal report``: mean +- std over seeds of many runs, per outer iteration (no Lightning import).

A run is a directory with a ``summary.json`` (``utal fit`` writes it). Runs are grouped by their
``config.yaml`` (the resolved config ``utal fit`` keeps in the run directory) with everything that
differs between seeds of one experiment left out: the seeds, the run directory, the logger (W&B names
and ids). Runs without a config.yaml are grouped by their directory name without a ``_seed<N>`` /
``-s<N>`` suffix. Each group's name is the shared part of its run directories.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from utal_lightning.errors import DatasetError
from utal_lightning.reporting.summary import RUN_CONFIG_FILE, SUMMARY_FILE
from utal_lightning.utils import atomic_write, atomic_write_text

METRICS = {  # column -> how to read it from an iteration record of summary.json
    "nmi": lambda h: h.get("nmi"),
    "ari": lambda h: h.get("ari"),
    "selected_fraction": lambda h: h.get("selected_fraction"),
    "mAP@0.5": lambda h: (h.get("test") or {}).get("0.5"),
    "mAP_avg": lambda h: (h.get("test") or {}).get("average_mAP"),
}
SEED_KEYS = (
    ("seed_everything",),
    ("data", "init_args", "seed"),
    ("trainer", "default_root_dir"),
    ("trainer", "logger"),
    ("checkpoint", "dirpath"),
)
_SEED_SUFFIX = re.compile(r"([_-]seed\d+|[_-]s\d+|_\d+)$")


@dataclass
class Run:
    path: Path
    iterations: list[dict[str, Any]]
    config: dict[str, Any] | None


def find_runs(patterns: Sequence[str]) -> list[Run]:
    """Run directories from directories and globs: a directory with a summary.json is a run; one without
    is searched below for run directories."""
    dirs: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) or ([pattern] if Path(pattern).exists() else [])
        if not matches:
            raise DatasetError(f"{pattern}: no such run directory (or nothing matches the pattern)")
        for match in map(Path, matches):
            if match.is_file() and match.name == SUMMARY_FILE:
                dirs.append(match.parent)
            elif (match / SUMMARY_FILE).is_file():
                dirs.append(match)
            elif match.is_dir():
                dirs += sorted(p.parent for p in match.rglob(SUMMARY_FILE))
    runs, seen = [], set()
    for folder in dirs:
        if folder.resolve() in seen:
            continue
        seen.add(folder.resolve())
        runs.append(_read_run(folder))
    if not runs:
        raise DatasetError(f"{', '.join(patterns)}: no {SUMMARY_FILE} found (run utal fit first)")
    return runs


def _read_run(folder: Path) -> Run:
    path = folder / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not a readable summary ({type(e).__name__}: {e})") from None
    iterations = summary.get("iterations") if isinstance(summary, dict) else None
    if not isinstance(iterations, list):
        raise DatasetError(f'{path}: expected {{"iterations": [...]}}')
    config = None
    if (folder / RUN_CONFIG_FILE).is_file():
        try:
            config = yaml.safe_load((folder / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise DatasetError(f"{folder / RUN_CONFIG_FILE}: malformed YAML ({e})") from None
    return Run(folder, iterations, config if isinstance(config, dict) else None)


def experiment_key(run: Run) -> str:
    """What a run shares with the other seeds of its experiment: its config without seeds, run directory
    and logger; else its directory without the seed suffix."""
    if run.config is None:
        return "name:" + str(run.path.parent / _SEED_SUFFIX.sub("", run.path.name))
    config = json.loads(json.dumps(run.config, default=str))
    for keys in SEED_KEYS:
        node = config
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(keys[-1], None)
    return "config:" + json.dumps(config, sort_keys=True)


def group_runs(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs by experiment, named by the shared part of their directories (in order of first appearance)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(experiment_key(run), []).append(run)
    named: dict[str, list[Run]] = {}
    for members in groups.values():
        name = _shared_name([m.path for m in members])
        if name in named and len(members) == 1:
            name = str(members[0].path)  # another experiment under a seed-like name: its own directory
        while name in named:
            name += "'"
        named[name] = members
    return named


def _shared_name(paths: Sequence[Path]) -> str:
    """``runs/x/copl`` for ``runs/x/copl_seed0``, ``runs/x/copl_seed1``; else the common folder + ``/*``."""
    stems = {str(p.parent / _SEED_SUFFIX.sub("", p.name)) for p in paths}
    if len(stems) == 1:
        return stems.pop()
    common = []
    for column in zip(*(p.parts for p in paths), strict=False):
        if len(set(column)) != 1:
            break
        common.append(column[0])
    return f"{Path(*common) if common else Path('.')}/*"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def aggregate(groups: dict[str, list[Run]]) -> list[dict[str, Any]]:
    """One row per (group, iteration): runs, and mean / std of every metric over the runs that have it."""
    rows = []
    for name, members in groups.items():
        depth = max(len(m.iterations) for m in members)
        for i in range(depth):
            records = [m.iterations[i] for m in members if i < len(m.iterations)]
            row: dict[str, Any] = {"group": name, "iteration": i + 1, "runs": len(records)}
            for metric, read in METRICS.items():
                values = [float(v) for v in map(read, records) if v is not None]
                mean, std = mean_std(values) if values else (None, None)
                row[f"{metric}_mean"], row[f"{metric}_std"], row[f"{metric}_n"] = mean, std, len(values)
            rows.append(row)
    return rows


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else (f"{v:.6g}" if isinstance(v, float) else v)) for k, v in row.items()})
    return out.getvalue()


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    header = ["group", "iter", "runs", *METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [row["group"], str(row["iteration"]), str(row["runs"])]
        for metric in METRICS:
            mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
            cells.append("-" if mean is None else f"{mean:.3f} +- {std:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]]):
    """NMI, |P|/N and test mAP@0.5 per iteration, mean with a +- std band, one line per group."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), dpi=100)
    axes = fig.subplots(1, 3)
    groups = list(dict.fromkeys(r["group"] for r in rows))
    for metric, ax in zip(("nmi", "selected_fraction", "mAP@0.5"), axes, strict=True):
        for group in groups:
            mine = [r for r in rows if r["group"] == group and r[f"{metric}_mean"] is not None]
            if not mine:
                continue
            x = [r["iteration"] for r in mine]
            mean = [r[f"{metric}_mean"] for r in mine]
            std = [r[f"{metric}_std"] for r in mine]
            (line,) = ax.plot(x, mean, marker="o", label=group)
            ax.fill_between(
                x,
                [m - s for m, s in zip(mean, std, strict=True)],
                [m + s for m, s in zip(mean, std, strict=True)],
                color=line.get_color(),
                alpha=0.2,
            )
        ax.set_title({"nmi": "NMI", "selected_fraction": "|P| / N", "mAP@0.5": "test mAP@0.5"}[metric])
        ax.set_xlabel("outer iteration")
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def write_report(patterns: Sequence[str], out: str | Path) -> tuple[list[dict[str, Any]], dict[str, list[Run]]]:
    """Find, group and aggregate the runs; write ``<out>/report.csv``, ``report.md`` and ``report.png``."""
    runs = find_runs(patterns)
    groups = group_runs(runs)
    rows = aggregate(groups)
    if not rows:
        raise DatasetError(f"{', '.join(patterns)}: the runs have no iterations yet")
    out = Path(out)
    atomic_write_text(out / "report.csv", to_csv(rows))
    atomic_write_text(out / "report.md", to_markdown(rows))
    figure = plot(rows)
    atomic_write(out / "report.png", lambda f: figure.savefig(f, format="png"))
    return rows, groups
