"""``utal check``: validate every file of a dataset and summarize what a run would see."""

from __future__ import annotations

from collections import Counter

import numpy as np

from utal_lightning.data.layout import DatasetLayout, read_dataset
from utal_lightning.data.store import check_same_widths, iter_video_features, scan_split


def _stats(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"min": 0, "median": 0, "mean": 0, "max": 0}
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "mean": round(float(values.mean()), 2),
        "max": float(values.max()),
    }


def check_dataset(layout: DatasetLayout, require_test_annotations: bool = True) -> dict[str, object]:
    """Read gt.json, classes and splits, then every feature file (headers first, then data).

    Raises :class:`DatasetError` on the first problem; returns a JSON-ready summary otherwise.
    """
    index = read_dataset(layout, require_test_annotations=require_test_annotations)
    layout = index.layout  # resolved: the layout found under the root
    clock_of = {
        vid: clock for ids in index.splits.values() for vid, clock in zip(ids, index.feature_clocks(ids), strict=True)
    }
    summary: dict[str, object] = {
        "root": str(layout.root),
        "layout": layout.name,
        "annotation_file": str(layout.gt_path),
        "classes": index.classes,
        "num_classes": index.num_classes,
        "splits": {},
    }
    scans = {split: scan_split(layout, split, ids) for split, ids in index.splits.items()}
    check_same_widths(scans[layout.train_split], scans[layout.test_split])
    for split, ids in index.splits.items():
        scan = scans[split]
        subset = layout.subset_of(split)
        for _ in iter_video_features(scan):  # reads every video once: NaN/Inf check
            pass
        annotated = [index.annotations[v] for v in ids if v in index.annotations]
        segments = np.asarray([len(a.labels) for a in annotated], dtype=np.float64)
        label_counts = Counter(label for a in annotated for label in set(a.labels))
        summary["splits"][split] = {  # type: ignore[index]
            "subset": None if subset is None else list(subset),
            "videos": len(ids),
            "annotated_videos": len(annotated),
            "feature_dim": {"rgb": scan.rgb_dim, "flow": scan.flow_dim},
            "snippets_per_video": _stats(scan.lengths.astype(np.float64)),
            "seconds_per_feature": _stats(np.asarray([clock_of[v].step for v in ids])),
            "segments_per_video": _stats(segments),
            "segments": int(segments.sum()),
            "multi_label_videos": sum(len(set(a.labels)) > 1 for a in annotated),
            "clipped_segments": sum(a.clipped for a in annotated),
            "skipped_videos": index.skipped.get(split, []),
            "videos_per_class": {c: label_counts.get(c, 0) for c in index.classes},
        }
    return summary


def format_summary(summary: dict[str, object]) -> str:
    """Human-readable text of :func:`check_dataset`'s summary."""
    classes = summary["classes"]
    shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")  # type: ignore[index]
    lines = [
        f"dataset {summary['root']}: OK ({summary['layout']} layout, annotations {summary['annotation_file']})",
        f"classes: {summary['num_classes']} ({shown})",
    ]
    for split, s in summary["splits"].items():  # type: ignore[union-attr]
        length, segs = s["snippets_per_video"], s["segments_per_video"]
        subset = f" (subset {' or '.join(map(repr, s['subset']))})" if s["subset"] else ""
        lines += [
            f"{split}{subset}: {s['videos']} videos, {s['annotated_videos']} annotated, "
            f"features rgb {s['feature_dim']['rgb']} + flow {s['feature_dim']['flow']}",
            f"  features per video: min {length['min']:g}, median {length['median']:g}, "
            f"mean {length['mean']:g}, max {length['max']:g}; seconds per feature: "
            + (
                "{min:.4g}".format(**s["seconds_per_feature"])
                if s["seconds_per_feature"]["min"] == s["seconds_per_feature"]["max"]
                else "{min:.4g}-{max:.4g}".format(**s["seconds_per_feature"])
            ),
            f"  segments: {s['segments']} (per annotated video: mean {segs['mean']:g}, max {segs['max']:g}); "
            f"multi-label videos: {s['multi_label_videos']}",
        ]
        if s["clipped_segments"]:
            lines.append(f"  segments clipped to [0, duration]: {s['clipped_segments']}")
        if s["skipped_videos"]:
            lines.append(
                f"  skipped (no feature files): {len(s['skipped_videos'])} ({', '.join(s['skipped_videos'][:5])}"
                f"{', ...' if len(s['skipped_videos']) > 5 else ''})"
            )
        empty = [c for c, n in s["videos_per_class"].items() if n == 0]
        if s["annotated_videos"] and empty:
            lines.append(f"  classes with no video: {', '.join(empty)}")
    return "\n".join(lines)
