"""Pictures of a run: pure figure builders and a helper that logs them to W&B and saves PNGs.

The builders take plain arrays / dicts and return :class:`matplotlib.figure.Figure` objects drawn on
an Agg canvas (no pyplot, no display, no global figure registry). :func:`log_figures` and
:func:`log_table` take a Trainer (or anything with ``loggers``, ``default_root_dir`` and
``is_global_zero``): they log to every :class:`~lightning.pytorch.loggers.WandbLogger` the trainer has
and always also write PNG / CSV files under ``<default_root_dir>/figures/``, so the pictures exist when
W&B is off. Lightning and wandb are imported only inside those two helpers.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from utal_lightning.utils import atomic_write, atomic_write_text

FIGURES_FOLDER = "figures"
_DPI = 100


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)  # the Agg backend, attached to this figure only
    return fig


def _colors(n: int) -> list[Any]:
    """``n`` distinct colours: tab10 / tab20 while they last, then evenly spaced hues."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


# --------------------------------------------------------------------------------------------------
# outer-loop curves


def selection_curve(history: Sequence[Mapping[str, Any]]) -> Figure:
    """|P|/N and pseudolabel accuracy per outer iteration.

    ``history`` holds records like the ``iterations`` list of summary.json: ``iteration``,
    ``selected_fraction``, ``accuracy`` (all videos), ``accuracy_selected`` (P, under its own
    cluster-to-class assignment) and, where present and not None, ``accuracy_P`` / ``accuracy_U``
    (P and U under the whole set's assignment).
    """
    fig = _figure(10, 4)
    ax_sel, ax_acc = fig.subplots(1, 2)
    if not history:
        for ax in (ax_sel, ax_acc):
            ax.text(0.5, 0.5, "no iterations yet", ha="center", va="center", transform=ax.transAxes)
    its = np.array([float(h.get("iteration", i + 1)) for i, h in enumerate(history)])

    def series(key: str) -> np.ndarray | None:
        values = [h.get(key) for h in history]
        if all(v is None for v in values):
            return None
        return np.array([np.nan if v is None else float(v) for v in values])

    fraction = series("selected_fraction")
    if fraction is not None:
        ax_sel.plot(its, fraction, marker="o", color="tab:blue")
        for x, y, h in zip(its, fraction, history, strict=True):
            if "num_selected" in h and np.isfinite(y):
                ax_sel.annotate(
                    str(h["num_selected"]), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
                )
    ax_sel.set_title("selected set |P| / N")
    ax_sel.set_ylabel("|P| / N")

    styles = {
        "accuracy": ("all videos", "tab:blue", "o", "-"),
        "accuracy_selected": ("P (own assignment)", "tab:green", "s", "-"),
        "accuracy_P": ("P", "tab:olive", "^", "--"),
        "accuracy_U": ("U", "tab:red", "v", "--"),
    }
    for key, (label, color, marker, line) in styles.items():
        values = series(key)
        if values is not None:
            ax_acc.plot(its, values, marker=marker, linestyle=line, color=color, label=label)
    ax_acc.set_title("pseudolabel accuracy (Hungarian)")
    ax_acc.set_ylabel("accuracy")
    if ax_acc.get_legend_handles_labels()[0]:
        ax_acc.legend(loc="best", fontsize=8)
    for ax in (ax_sel, ax_acc):
        ax.set_xlabel("outer iteration")
        ax.set_ylim(0.0, 1.05)
        ax.grid(alpha=0.3)
        if len(its):
            ax.set_xticks(its)
    fig.tight_layout()
    return fig


def progress_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
    """What a run is doing, one point per outer iteration: NMI of the pseudolabels, accuracy of P and of U, |P|/N,
    the AUC of the pooling attention and of the label-free actionness (where the training videos are annotated),
    and the test mAP (mAP@0.5 and the average over the tIoUs) where the iteration was tested. All in [0, 1]."""
    fig = _figure(6.5, 4)
    ax = fig.subplots(1, 1)
    its = np.array([float(h.get("iteration", i + 1)) for i, h in enumerate(history)])
    series = {
        "NMI": [h.get("nmi") for h in history],
        "accuracy of P": [h.get("accuracy_P") for h in history],
        "accuracy of U": [h.get("accuracy_U") for h in history],
        "|P| / N": [h.get("selected_fraction") for h in history],
        "attention AUC": [h.get("attention_auc") for h in history],
        "label-free AUC": [h.get("label_free_auc") for h in history],
        "test mAP@0.5": [(h.get("test") or {}).get("0.5") for h in history],
        "test mAP avg": [(h.get("test") or {}).get("average_mAP") for h in history],
    }
    styles = {
        "NMI": ("tab:blue", "o", "-"),
        "accuracy of P": ("tab:purple", "D", "-"),
        "accuracy of U": ("tab:pink", "d", ":"),
        "|P| / N": ("tab:gray", "s", ":"),
        "attention AUC": ("tab:red", "x", "-"),
        "label-free AUC": ("tab:orange", "+", "--"),
        "test mAP@0.5": ("tab:green", "^", "-"),
        "test mAP avg": ("tab:olive", "v", "--"),
    }
    for name, values in series.items():
        if all(v is None for v in values):
            continue
        color, marker, line = styles[name]
        ax.plot(
            its,
            [np.nan if v is None else float(v) for v in values],
            marker=marker,
            linestyle=line,
            color=color,
            label=name,
        )
    if not history:
        ax.text(0.5, 0.5, "no iterations yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("outer iteration")
    ax.set_ylim(0.0, 1.05)
    ax.grid(alpha=0.3)
    if len(its):
        ax.set_xticks(its)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    ax.set_title("pseudolabels, pooling attention and test mAP per iteration")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# clusters vs classes


def confusion_matrix_figure(
    clusters: np.ndarray, classes: np.ndarray, class_names: Sequence[str], num_clusters: int
) -> Figure:
    """Counts of videos per (cluster, class): rows are the ``num_clusters`` clusters, columns the
    classes of ``class_names``; videos with class -1 (unknown) are skipped. Counts are written in the
    cells while the matrix is at most 40 x 40."""
    clusters = np.asarray(clusters).astype(np.int64).reshape(-1)
    classes = np.asarray(classes).astype(np.int64).reshape(-1)
    if clusters.shape != classes.shape:
        raise ValueError(f"clusters {clusters.shape} and classes {classes.shape} differ in length")
    num_classes = len(class_names)
    known = classes >= 0
    clusters, classes = clusters[known], classes[known]
    if clusters.size and (clusters.min() < 0 or clusters.max() >= num_clusters):
        raise ValueError(f"cluster ids must lie in [0, {num_clusters})")
    if classes.size and classes.max() >= num_classes:
        raise ValueError(f"class ids must lie in [0, {num_classes}) (the class names given)")
    counts = np.zeros((num_clusters, num_classes), dtype=np.int64)
    np.add.at(counts, (clusters, classes), 1)

    width = min(4.0 + 0.45 * num_classes, 24.0)
    height = min(3.0 + 0.4 * num_clusters, 24.0)
    fig = _figure(width, height)
    ax = fig.subplots()
    im = ax.imshow(counts, cmap="Blues", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="videos")
    if max(num_clusters, num_classes) <= 40:
        threshold = counts.max() / 2.0 if counts.size else 0
        fontsize = 8 if max(num_clusters, num_classes) <= 20 else 6
        for r in range(num_clusters):
            for c in range(num_classes):
                ax.text(
                    c,
                    r,
                    str(counts[r, c]),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="white" if counts[r, c] > threshold else "black",
                )
    tick = max(1, num_classes // 40)
    ax.set_xticks(np.arange(0, num_classes, tick))
    ax.set_xticklabels([class_names[i] for i in range(0, num_classes, tick)], rotation=60, ha="right", fontsize=8)
    tick = max(1, num_clusters // 40)
    ax.set_yticks(np.arange(0, num_clusters, tick))
    ax.set_yticklabels([str(i) for i in range(0, num_clusters, tick)], fontsize=8)
    ax.set_xlabel("ground-truth class")
    ax.set_ylabel("cluster")
    ax.set_title(f"clusters vs classes ({int(known.sum())} videos with a known class)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# embedding


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``features`` (N, D) on their first two principal components with numpy's SVD.

    Deterministic: each component's sign is fixed so that its largest-magnitude loading is positive.
    Returns ``(coords (N, 2), explained variance ratio (2,))``; missing components (N < 3 or D < 2)
    are zeros.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be (N, D), got shape {x.shape}")
    n = x.shape[0]
    coords, ratio = np.zeros((n, 2)), np.zeros(2)
    if n == 0:
        return coords, ratio
    x = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    vt = vt[:k]
    signs = np.sign(vt[np.arange(k), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    vt = vt * signs[:, None]
    coords[:, :k] = x @ vt.T
    total = float((s**2).sum())
    if total > 0:
        ratio[:k] = s[:k] ** 2 / total
    return coords, ratio


def embedding_figure(
    features: np.ndarray,
    clusters: np.ndarray,
    correct: np.ndarray | None = None,
    selected: np.ndarray | None = None,
) -> Figure:
    """Videos' pooled features in 2-D (PCA), coloured by cluster.

    ``correct`` (N,) bool: correct pseudolabels are filled circles, incorrect ones crosses (None: all
    circles). ``selected`` (N,) bool: videos of the unselected set U are drawn faded (None: all in P).
    """
    coords, ratio = pca_2d(features)
    clusters = np.asarray(clusters).astype(np.int64).reshape(-1)
    n = coords.shape[0]
    if clusters.shape[0] != n:
        raise ValueError(f"{n} feature rows but {clusters.shape[0]} cluster ids")
    correct = np.ones(n, dtype=bool) if correct is None else np.asarray(correct, dtype=bool).reshape(-1)
    selected = np.ones(n, dtype=bool) if selected is None else np.asarray(selected, dtype=bool).reshape(-1)
    if correct.shape[0] != n or selected.shape[0] != n:
        raise ValueError("correct and selected must have one entry per video")

    ids = np.unique(clusters)
    palette = dict(zip(ids.tolist(), _colors(len(ids)), strict=True))
    fig = _figure(7, 6)
    ax = fig.subplots()
    for cluster in ids.tolist():
        in_cluster = clusters == cluster
        for is_selected, alpha in ((False, 0.2), (True, 0.9)):
            for is_correct, marker in ((True, "o"), (False, "x")):
                mask = in_cluster & (selected == is_selected) & (correct == is_correct)
                if mask.any():
                    ax.scatter(
                        coords[mask, 0],
                        coords[mask, 1],
                        s=28,
                        marker=marker,
                        color=palette[cluster],
                        alpha=alpha,
                        linewidths=1.2 if marker == "x" else 0.0,
                    )
    # legend: one entry per cluster (colour) and one per marker meaning
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], linestyle="", marker="o", color=palette[c], label=f"cluster {c}") for c in ids.tolist()[:20]
    ]
    handles += [
        Line2D([], [], linestyle="", marker="o", color="gray", label="correct"),
        Line2D([], [], linestyle="", marker="x", color="gray", label="incorrect"),
        Line2D([], [], linestyle="", marker="o", color="gray", alpha=0.2, label="unselected (U)"),
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.set_xlabel(f"PC 1 ({100 * ratio[0]:.1f}% variance)")
    ax.set_ylabel(f"PC 2 ({100 * ratio[1]:.1f}% variance)")
    ax.set_title(f"video features (PCA): {n} videos, {int(selected.sum())} selected, {int(correct.sum())} correct")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# attention over time


def attention_figure(videos: Sequence[Mapping[str, Any]], max_detections: int = 8) -> Figure:
    """One row per video: attention over time with the ground-truth segments as shaded spans.

    Each video is a dict with ``video_id``, ``seconds`` (T,), ``attention`` (T,) in [0, 1] (its legend
    ``attention_label``, default "attention"),
    ``segments`` (n, 2) ground truth in seconds with ``labels`` (n,) names, optionally the top
    classes' CAS as ``cas`` (T, k) with ``cas_names`` (k,) (or ``cas`` as a ``{name: (T,)}`` dict), and
    optionally ``detections``: ``(start, end, score, name)`` tuples, drawn as bars above the curves (the
    highest-scoring first, at most ``max_detections`` per video, bar height by score).
    """
    videos = list(videos)
    rows = max(1, len(videos))
    fig = _figure(11, 1.0 + 2.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, 1, squeeze=False)[:, 0])
    if not videos:
        axes[0].text(0.5, 0.5, "no videos", ha="center", va="center", transform=axes[0].transAxes)
    gt_labels = sorted({str(lab) for v in videos for lab in (v.get("labels") or [])})
    gt_color = dict(zip(gt_labels, _colors(len(gt_labels)), strict=True))
    for ax, video in zip(axes, videos, strict=True):
        seconds = np.asarray(video["seconds"], dtype=np.float64).reshape(-1)
        attention = np.asarray(video["attention"], dtype=np.float64).reshape(-1)
        if seconds.shape != attention.shape:
            raise ValueError(
                f"video {video.get('video_id')}: seconds {seconds.shape} and attention {attention.shape} differ"
            )
        segments = np.asarray(video.get("segments", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2)
        labels = [str(lab) for lab in (video.get("labels") or [""] * len(segments))]
        shown: set[str] = set()
        for (start, end), label in zip(segments, labels, strict=True):
            ax.axvspan(
                start,
                end,
                color=gt_color.get(label, "gray"),
                alpha=0.25,
                linewidth=0,
                label=None if label in shown else f"GT {label}",
            )
            shown.add(label)
        ax.plot(seconds, attention, color="black", linewidth=1.3, label=video.get("attention_label", "attention"))
        top = 1.05  # CAS may exceed 1 (CoLA's is non-negative, not bounded)
        cas = video.get("cas")
        if cas is not None:
            if isinstance(cas, Mapping):
                names, curves = (
                    [str(k) for k in cas],
                    [np.asarray(c, dtype=np.float64).reshape(-1) for c in cas.values()],
                )
            else:
                array = np.asarray(cas, dtype=np.float64)
                array = array.reshape(len(seconds), -1)
                names = [str(n) for n in video.get("cas_names", [f"class {i}" for i in range(array.shape[1])])]
                curves = [array[:, i] for i in range(array.shape[1])]
            for name, curve in zip(names, curves, strict=True):
                ax.plot(seconds, curve, linewidth=0.9, linestyle="--", color=gt_color.get(name), label=f"CAS {name}")
                if curve.size and np.isfinite(curve).any():
                    top = max(top, float(np.nanmax(curve)) * 1.05)
        detections = sorted(video.get("detections") or [], key=lambda d: -float(d[2]))[:max_detections]
        if detections:
            best = max(float(d[2]) for d in detections) or 1.0
            for j, (start, end, score, name) in enumerate(detections):
                y = top + 0.04 * j  # one lane per detection, above the curves
                ax.plot(
                    [start, end],
                    [y, y],
                    color=gt_color.get(str(name), "tab:purple"),
                    linewidth=1.0 + 3.0 * float(score) / best,
                    solid_capstyle="butt",
                    label=None if j else "detections (top by score)",
                )
            top += 0.04 * len(detections) + 0.02
        ax.set_xlim(float(seconds.min()) if seconds.size else 0.0, float(seconds.max()) if seconds.size else 1.0)
        ax.set_ylim(0.0, top)
        ax.set_ylabel("score")
        ax.set_title(str(video.get("video_id", "")), fontsize=9, loc="left")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------------
# per-class AP table


def per_class_ap_rows(per_class: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[Any]]]:
    """``({label: {tiou_str: ap}})`` (as ``MAPResult.per_class()``) -> ``(columns, rows)``.

    Columns are ``class``, ``AP@<tiou>`` in increasing tIoU order and ``AP avg`` (mean over the
    tIoUs); one row per class in the order given. Keys that are not numbers are ignored.
    """
    tious: set[str] = set()
    for aps in per_class.values():
        for key in aps:
            try:
                float(key)
            except (TypeError, ValueError):
                continue
            tious.add(str(key))
    ordered = sorted(tious, key=float)
    columns = ["class", *[f"AP@{t}" for t in ordered], "AP avg"]
    rows: list[list[Any]] = []
    for label, aps in per_class.items():
        values = [aps.get(t) for t in ordered]
        finite = [float(v) for v in values if v is not None]
        average = float(np.mean(finite)) if finite else None
        rows.append(
            [
                str(label),
                *[None if v is None else round(float(v), 6) for v in values],
                None if average is None else round(average, 6),
            ]
        )
    return columns, rows


# --------------------------------------------------------------------------------------------------
# logging


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "_")).strip("_") or "figure"


def _save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically."""
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=_DPI))


def _close(fig: Figure) -> None:
    if "matplotlib.pyplot" in sys.modules:  # a pyplot figure: release it from pyplot's registry too
        sys.modules["matplotlib.pyplot"].close(fig)
    fig.clear()


def _wandb_loggers(trainer: Any) -> list[Any]:
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover - lightning is a dependency
        return []
    return [logger for logger in (getattr(trainer, "loggers", None) or []) if isinstance(logger, WandbLogger)]


ITERATION_AXIS = "outer/iteration"
ITERATION_METRICS = (
    "outer/*",
    "cluster/*",
    "select/*",
    "test/*",
    "test_student/*",
    "time/pseudolabel_s",
    "time/pool_s",
    "time/cluster_s",
)
"""W&B keys logged once per outer iteration: plotted against ``outer/iteration`` (scalars of every step,
``train/*``, stay on W&B's default axis, ``trainer/global_step``)."""


def define_iteration_axis(trainer: Any) -> None:
    """Tell every W&B run of ``trainer`` that iteration-level keys use ``outer/iteration`` as x axis."""
    if not getattr(trainer, "is_global_zero", True):
        return
    for logger in _wandb_loggers(trainer):
        experiment = logger.experiment
        experiment.define_metric(ITERATION_AXIS)
        for pattern in ITERATION_METRICS:
            experiment.define_metric(pattern, step_metric=ITERATION_AXIS)


def _folder(trainer: Any, folder: str) -> Path:
    return Path(getattr(trainer, "default_root_dir", None) or ".") / folder


def log_figures(trainer: Any, figures: Mapping[str, Figure], step: int, folder: str = FIGURES_FOLDER) -> list[Path]:
    """Save every figure as ``<default_root_dir>/<folder>/<key, / -> _>_<step>.png`` (atomically) and
    log it as a ``wandb.Image`` under its key to each ``WandbLogger`` of ``trainer`` (all figures of a
    call in one W&B record, with ``outer/iteration = step``; not on the global-step axis). Closes the
    figures. Only global rank zero writes or logs; other ranks return ``[]``."""
    try:
        if not getattr(trainer, "is_global_zero", True):
            return []
        root = _folder(trainer, folder)
        paths: dict[str, Path] = {}
        for key, fig in figures.items():
            paths[key] = _save_png(fig, root / f"{_safe_name(key)}_{int(step)}.png")
        loggers = _wandb_loggers(trainer)
        if loggers and paths:
            import wandb

            # the saved PNG, not the figure: W&B shows exactly the file on disk
            images = {key: wandb.Image(str(path)) for key, path in paths.items()}
            for logger in loggers:
                logger.experiment.log({**images, ITERATION_AXIS: int(step)})
        return list(paths.values())
    finally:
        for fig in figures.values():
            _close(fig)


def log_table(
    trainer: Any,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    step: int | None = None,
    folder: str = FIGURES_FOLDER,
) -> Path | None:
    """Log a ``wandb.Table`` (with ``outer/iteration = step`` when given) to each W&B logger of ``trainer``.

    It is always written as CSV too, ``<default_root_dir>/<folder>/<key, / -> _>[_<step>].csv``
    (atomically; None cells are empty). Only global rank zero writes or logs; returns the CSV path
    (None on other ranks)."""
    if not getattr(trainer, "is_global_zero", True):
        return None
    columns, rows = [str(c) for c in columns], [list(r) for r in rows]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"table {key!r}: a row has {len(row)} cells for {len(columns)} columns")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    name = _safe_name(key) + ("" if step is None else f"_{int(step)}")
    path = atomic_write_text(_folder(trainer, folder) / f"{name}.csv", buffer.getvalue())
    loggers = _wandb_loggers(trainer)
    if loggers:
        import wandb

        for logger in loggers:
            record = {key: wandb.Table(columns=columns, data=rows)}
            logger.experiment.log(record if step is None else {**record, ITERATION_AXIS: int(step)})
    return path
