"""Per outer iteration: the pseudolabel record, its logged metrics and lines, figures, the final table.

The record measures pseudolabels against the *training* ground truth (metrics only: the loop never
reads them to decide anything); the attention figure draws a few test videos for the logs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from utal_lightning.data.layout import VideoAnnotation
from utal_lightning.eval.clustering import cluster_to_class_map, clustering_scores
from utal_lightning.eval.evaluator import VideoReading
from utal_lightning.pseudo.pooling import minmax_over_time
from utal_lightning.reporting import plots

_CLUSTER_KEYS = (
    "nmi",
    "ari",
    "purity",
    "accuracy",
    "nmi_selected",
    "ari_selected",
    "purity_selected",
    "accuracy_selected",
)

_DIAGNOSTIC_KEYS = ("attention_auc", "label_free_auc", "pooled_nmi", "accuracy_P", "accuracy_U")


def hungarian_correct(datamodule: Any, labels: Tensor) -> np.ndarray | None:
    """(N,) per training video: whether its cluster maps to its class under the Hungarian map of the whole set
    (False where it has no class); None where no training video has a class. Computed once per iteration, for the
    record (accuracy of P and U) and the embedding figure."""
    targets = datamodule.index.class_targets(datamodule.index.train_ids)
    known = targets >= 0
    if not known.any():
        return None
    labels = labels.cpu()
    mapping = cluster_to_class_map(labels, targets, datamodule.num_clusters, datamodule.index.num_classes)
    correct = np.zeros(len(targets), dtype=bool)
    correct[known] = (mapping.argmax(1)[labels].numpy() == targets)[known]
    return correct


def iteration_record(
    datamodule: Any, result: Any, iteration: int, epochs: int, seconds: float, correct: np.ndarray | None
) -> dict[str, Any]:
    """The iteration's record in ``summary.json``: pseudolabel quality against the training ground truth
    (whole set and P), accuracy of P and U under the whole set's cluster-to-class map (``correct``:
    :func:`hungarian_correct`), sizes, epochs."""
    targets = datamodule.index.class_targets(datamodule.index.train_ids)
    k = datamodule.num_clusters
    everyone = clustering_scores(result.labels, targets, num_clusters=k)
    selected = result.selected.cpu().numpy()
    labels = result.labels.cpu()
    chosen = clustering_scores(labels[selected], targets[selected], num_clusters=k)
    known = targets >= 0
    in_p = selected[known]
    correct = correct[known] if correct is not None else np.zeros(0, dtype=bool)  # one map for P and U: comparable
    return {
        "iteration": iteration,
        **{key: round(value, 6) for key, value in everyone.items()},
        "nmi_selected": round(chosen["nmi"], 6),
        "ari_selected": round(chosen["ari"], 6),
        "purity_selected": round(chosen["purity"], 6),
        "accuracy_selected": round(chosen["accuracy"], 6),
        "accuracy_P": round(float(correct[in_p].mean()), 6) if in_p.any() else None,
        "accuracy_U": round(float(correct[~in_p].mean()), 6) if (~in_p).any() else None,
        "selected_fraction": round(float(selected.mean()), 6),
        "num_selected": int(selected.sum()),
        "num_unselected": int((~selected).sum()),
        "epochs": epochs,
        "pseudolabel_seconds": round(seconds, 3),
    }


def pooling_diagnostics(
    datamodule: Any, video_features: Tensor, aucs: Tensor, num_clusters: int, seed: int
) -> dict[str, float | None]:
    """Which stage fails (docs/method.md sec. 2.1), against the *training* ground truth, never read by a decision:
    the mean per-video AUC of the pooling attention (``aucs[:, 0]``) and of the label-free actionness
    (``aucs[:, 1]``) for the annotated action snippets, and the NMI of seeded k-means on the pooled features (the
    pooling's quality apart from the clusterer's). None where the training videos have no ground truth."""
    from utal_lightning.eval.actionness import mean_auc
    from utal_lightning.pseudo.cluster import kmeans

    targets = datamodule.index.class_targets(datamodule.index.train_ids)
    known = targets >= 0
    pooled_nmi = None
    if known.any():
        labels, _ = kmeans(video_features, num_clusters, seed=seed)
        pooled_nmi = round(clustering_scores(labels.cpu(), targets, num_clusters=num_clusters)["nmi"], 6)
    attention, label_free = (mean_auc(aucs[:, j].cpu()) for j in range(2))
    return {
        "attention_auc": None if attention is None else round(attention, 6),
        "label_free_auc": None if label_free is None else round(label_free, 6),
        "pooled_nmi": pooled_nmi,
    }


def pseudolabel_metrics(record: dict[str, Any], iteration: int) -> dict[str, float]:
    """The logged keys of a pseudolabel stage: ``cluster/*``, ``select/fraction``, ``time/*``."""
    metrics = {f"cluster/{key}": float(record[key]) for key in _CLUSTER_KEYS}
    metrics.update(
        {f"diagnostics/{key}": float(record[key]) for key in _DIAGNOSTIC_KEYS if record.get(key) is not None}
    )
    metrics.update(
        {
            "select/fraction": record["selected_fraction"],
            "outer/iteration": float(iteration),
            "time/pseudolabel_s": record["pseudolabel_seconds"],
            "time/pool_s": record["pool_seconds"],
            "time/cluster_s": record["cluster_seconds"],
        }
    )
    return metrics


def pseudolabel_line(record: dict[str, Any], iteration: int, max_iterations: int) -> str:
    """One log line per pseudolabel stage."""
    auc = ""
    if record.get("attention_auc") is not None:
        auc = f"pooling attention AUC {record['attention_auc']:.3f} (label-free {record['label_free_auc']:.3f}), "
    labelled = not math.isnan(record["nmi"])  # NaN: no training video has a label (discovery)
    nmi = f"NMI {record['nmi']:.3f}, " if labelled else ""
    accuracy = f"accuracy of P {record['accuracy_selected']:.3f}, " if labelled else ""
    choice = record.get("pooling_choice")
    if choice is not None:
        scores = ", ".join(f"{a:.3f}" for a in choice["agreement"])
        auc += f"pooled by candidate {choice['kept']} (view agreement {scores}), "
    return (
        f"outer iteration {iteration}/{max_iterations}: {nmi}{auc}"
        f"|P|/N {record['selected_fraction']:.2f}, {accuracy}"
        f"{record['epochs']} epochs; pseudolabel stage {record['pseudolabel_seconds']:.1f} s "
        f"(pooling {record['pool_seconds']:.1f} s, clustering + selection {record['cluster_seconds']:.1f} s)"
    )


def test_line(test: dict[str, Any], iteration: int, max_iterations: int, num_videos: int) -> str:
    """One log line per in-loop test pass."""
    return (
        f"outer iteration {iteration}/{max_iterations} test: mAP@0.5 {test['0.5']:.4f}, "
        f"average mAP {test['average_mAP']:.4f} ({num_videos} videos; logged, never used to decide)"
    )


test_line.__test__ = False  # a helper named test_*: not a pytest test


def pseudolabel_figures(
    datamodule: Any, video_features: Tensor, result: Any, history: list[dict[str, Any]], correct: np.ndarray | None
) -> dict[str, Figure]:
    """Each iteration's figures by key: the selection curve over ``history`` (this iteration's record last), the
    cluster-vs-class confusion and the 2-D embedding (``correct``: :func:`hungarian_correct`)."""
    targets = datamodule.index.class_targets(datamodule.index.train_ids)
    labels = result.labels.cpu().numpy()
    figures = {
        "outer/selection_curve": plots.selection_curve(history),
        "outer/embedding": plots.embedding_figure(
            video_features.cpu().numpy(), labels, correct, result.selected.cpu().numpy()
        ),
    }
    if datamodule.index.num_classes:  # no classes (discovery): no confusion with them to draw
        figures["outer/confusion"] = plots.confusion_matrix_figure(
            labels, targets, datamodule.index.classes, datamodule.num_clusters
        )
    return figures


def attention_figure(
    readings: Sequence[VideoReading],
    video_ids: Sequence[str],
    annotations: Mapping[str, VideoAnnotation],
    classes: Sequence[str],
) -> Figure:
    """Attention and the top pseudo-class's localization map over time against the ground truth and the detections,
    for the test videos read (:meth:`~utal_lightning.models.modules.LocalizationModule.read_test_videos`)."""
    videos = []
    for reading in readings:
        vid = video_ids[reading.video_index]
        annotation = annotations.get(vid)
        top_map = reading.top_map
        videos.append(
            {
                "video_id": vid,
                "seconds": reading.seconds,
                # the class-agnostic actionness that pools the videos and finds the centroids (CoLA: sum_k CAS; IOCNet:
                # A_ca), rescaled over the video; IOCNet's A_cs = sigmoid(sum_k CAS logits) can sit near 0 throughout
                "attention": minmax_over_time(torch.from_numpy(reading.actionness)[None])[0].numpy(),
                "attention_label": "actionness (rescaled)",
                "cas": {
                    f"cluster {reading.top_cluster}": (top_map - top_map.min())
                    / (top_map.max() - top_map.min() + 1e-12)
                },
                "segments": annotation.segments if annotation is not None else np.zeros((0, 2)),
                "labels": list(annotation.labels) if annotation is not None else [],
                "detections": [
                    (float(a), float(b), float(score), classes[int(c)]) for a, b, score, c in reading.detections
                ],
            }
        )
    return plots.attention_figure(videos)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"  # "-": not tested (loop.test_iterations)


def iteration_table(history: list[dict[str, Any]]) -> str:
    """The table printed at the end of a fit: one row per outer iteration."""
    lines = [
        f"{'iter':>4} {'NMI':>6} {'ARI':>6} {'acc':>6} {'acc(P)':>6} {'|P|/N':>6} {'epochs':>6} "
        f"{'mAP@0.5':>8} {'mAP avg':>8}"
    ]
    for h in history:
        test = h.get("test", {})
        lines.append(
            f"{h['iteration']:>4} {h['nmi']:>6.3f} {h['ari']:>6.3f} {h['accuracy']:>6.3f} "
            f"{h['accuracy_selected']:>6.3f} {h['selected_fraction']:>6.2f} {h['epochs']:>6} "
            f"{_score(test.get('0.5')):>8} {_score(test.get('average_mAP')):>8}"
        )
    return "\n".join(lines)
