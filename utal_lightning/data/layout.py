"""Read and validate a dataset on disk (docs/method.md sec. 1.1): its annotations, class list and splits.

Where the files are and what a feature index means in seconds is the dataset's :class:`FileLayout` (one file
each in ``data/layouts/``: CoLA's ``gt.json`` + ``features/<split>/{rgb,flow}/``, ActionFormer's
``annotations/<name>.json`` + one ``(L, D)`` file per video); ``DatasetLayout.files`` None finds the shipped
one the root holds. Everything that turns positions into seconds (sampling, proposals, figures) goes through
:meth:`DatasetLayout.feature_clock`.

Everything here fails with a :class:`DatasetError` whose one-line message names the file or video and
the problem, before any training starts. Features are not read here (see ``store.py``); this module
only answers *which* videos, *which* classes, *what* ground truth and *where* the files are.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from utal_lightning.data.layouts import find_layout
from utal_lightning.data.layouts.base import COLA_CLOCK, MODALITIES, SNIPPET_SECONDS, FeatureClock, FileLayout
from utal_lightning.errors import DatasetError
from utal_lightning.utils import read_json

__all__ = ["COLA_CLOCK", "MODALITIES", "SNIPPET_SECONDS", "FeatureClock", "FileLayout"]  # and what is below

log = logging.getLogger(__name__)

MISSING_FEATURES = ("error", "skip")
"""What a video without feature files is: an error (default), or skipped with a logged list."""


@dataclass(frozen=True)
class VideoAnnotation:
    """Ground truth of one video: segments in seconds and their class names (may be empty)."""

    video_id: str
    subset: str | None
    duration: float | None
    segments: np.ndarray  # (n, 2) float64 [start, end] seconds
    labels: tuple[str, ...]
    clipped: int = 0  # segments that reached outside [0, duration]: clipped to it (dropped if wholly outside)
    fps: float | None = None  # frames per second (ActionFormer layout)
    label_ids: tuple[int, ...] | None = None  # ActionFormer's "label_id" of each segment, where every segment has one

    def main_label(self) -> str | None:
        """The class with the longest total annotated duration (docs/method.md sec. 5: the class of a multi-label
        video for clustering metrics). Ties go to the label annotated first."""
        if not self.labels:
            return None
        totals: dict[str, float] = {}
        for label, (start, end) in zip(self.labels, self.segments, strict=True):
            totals[label] = totals.get(label, 0.0) + float(end - start)
        return max(totals, key=lambda label: totals[label])  # max keeps the first of equal keys

    def action_mask(self, seconds: np.ndarray) -> np.ndarray:
        """Whether each time (seconds) lies in an annotated segment ``[start, end)``: which snippets are actions,
        for diagnostics and the oracle baseline (never for training)."""
        seconds = np.asarray(seconds, dtype=np.float64)
        inside = (seconds[:, None] >= self.segments[None, :, 0]) & (seconds[:, None] < self.segments[None, :, 1])
        return inside.any(axis=1)


SubsetNames = str | Sequence[str] | None
"""The gt.json ``subset`` values a split accepts: one name, several, or None (no check)."""


def subset_names(names: SubsetNames) -> tuple[str, ...] | None:
    """``names`` as a tuple (one name or several), None for None; empty names are an error."""
    if names is None:
        return None
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"subset names must be non-empty strings, got {names!r}")
    return names


def subset_matches(subset: str | None, names: tuple[str, ...]) -> bool:
    """Whether a gt.json ``subset`` value is one of ``names``, compared case-insensitively (real files
    disagree: CoLA's THUMOS'14 says "train", the official one "validation", ActionFormer's "Validation")."""
    return subset is not None and subset.casefold() in {n.casefold() for n in names}


@dataclass(frozen=True)
class DatasetLayout:
    """Where a dataset lives, how its files are laid out, and how its annotation subsets map to the train/test splits.

    The mapping is configuration (docs/method.md sec. 1.1): THUMOS'14 trains on the 200 "validation" videos
    (CoLA's gt.json calls them "train") and tests on "test"; ActivityNet v1.2 trains on "training" and
    tests on "validation". Each split accepts a list of subset names, compared case-insensitively.
    """

    root: Path
    train_split: str = "train"  # names split_<name>.txt and features/<name>/ (CoLA layout)
    test_split: str = "test"
    train_subset: SubsetNames = (
        None  # gt.json subsets of training videos; ids come from them if the split file is absent
    )
    test_subset: SubsetNames = None  # gt.json subsets of test videos; also the subsets evaluated by mAP
    ignored_labels: tuple[str, ...] = ()  # annotation labels dropped on read (e.g. THUMOS "Ambiguous")
    missing_features: str = "error"  # a video without its feature files: "error", or "skip" (dropped, listed)
    files: FileLayout | None = None  # the file layout; None: the shipped one the root holds (see resolve_layout)

    def __post_init__(self) -> None:
        if self.missing_features not in MISSING_FEATURES:
            raise ValueError(f"missing_features must be one of {MISSING_FEATURES}, got {self.missing_features!r}")
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "train_subset", subset_names(self.train_subset))
        object.__setattr__(self, "test_subset", subset_names(self.test_subset))
        object.__setattr__(self, "ignored_labels", tuple(self.ignored_labels))

    @property
    def name(self) -> str:
        """The file layout's name ("cola", "actionformer", ...; "auto" before :func:`resolve_layout`)."""
        return self.files.name if self.files is not None else "auto"

    @property
    def gt_path(self) -> Path:
        """The annotation file (gt.json in the CoLA layout)."""
        return self.files.annotation_path(self.root) if self.files is not None else self.root / "gt.json"

    @property
    def single_file(self) -> bool:
        """True when one file per video holds RGB and flow concatenated (ActionFormer layout)."""
        return self.files is not None and self.files.combined_modalities

    def feature_clock(self, annotation: VideoAnnotation | None) -> FeatureClock:
        """docs/method.md sec. 1.1: the seconds-per-feature rule of this layout for one video."""
        if self.files is None:
            return COLA_CLOCK
        return self.files.feature_clock(annotation.fps if annotation is not None else None)

    @property
    def classes_path(self) -> Path:
        return self.root / "classes.txt"

    def split_path(self, split: str) -> Path | None:
        """The file listing a split's ids, where the layout has one."""
        return self.files.split_file(self.root, split) if self.files is not None else None

    def subset_of(self, split: str) -> tuple[str, ...] | None:
        return {self.train_split: self.train_subset, self.test_split: self.test_subset}.get(split)

    def feature_files(self, split: str, video_id: str) -> tuple[Path, ...]:
        """The feature files of one video, in concatenation order: (rgb, flow), or the one (L, D) file."""
        return self.files.feature_files(self.root, split, video_id)


def resolve_layout(layout: DatasetLayout) -> DatasetLayout:
    """``layout`` with its file layout found from the files under its root (:func:`~utal_lightning.data.layouts.
    find_layout`, where it has none) and that layout's open options filled in (its ``resolve``)."""
    root = layout.root
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory")
    files = layout.files if layout.files is not None else find_layout(root)()
    return replace(layout, files=files.resolve(root))


@dataclass
class DatasetIndex:
    """A validated dataset: classes, split membership and ground truth (no features)."""

    layout: DatasetLayout
    classes: list[str]
    splits: dict[str, list[str]]  # split name -> video ids in file order
    annotations: dict[str, VideoAnnotation] = field(repr=False)  # every gt.json entry (all subsets)
    skipped: dict[str, list[str]] = field(default_factory=dict)  # split -> ids dropped for missing features

    @property
    def train_ids(self) -> list[str]:
        return self.splits[self.layout.train_split]

    @property
    def test_ids(self) -> list[str]:
        return self.splits[self.layout.test_split]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def feature_clocks(self, video_ids: Sequence[str]) -> list[FeatureClock]:
        """The seconds-per-feature rule of each video (its fps, in the ActionFormer layout)."""
        return [self.layout.feature_clock(self.annotations.get(vid)) for vid in video_ids]

    def class_targets(self, video_ids: Sequence[str]) -> np.ndarray:
        """Class index of each video's main label (docs/method.md sec. 5), -1 where a video has no annotation.

        For metrics only: nothing that trains may read this for test videos.
        """
        index = {name: i for i, name in enumerate(self.classes)}
        targets = np.full(len(video_ids), -1, dtype=np.int64)
        for i, vid in enumerate(video_ids):
            annotation = self.annotations.get(vid)
            label = annotation.main_label() if annotation is not None else None
            if label is not None:
                targets[i] = index[label]
        return targets

    def multi_hot_labels(self, video_ids: Sequence[str]) -> np.ndarray:
        """(N, K) 0/1 video-level labels from the ground truth (weakly supervised mode, metrics)."""
        index = {name: i for i, name in enumerate(self.classes)}
        labels = np.zeros((len(video_ids), len(self.classes)), dtype=np.float32)
        for i, vid in enumerate(video_ids):
            annotation = self.annotations.get(vid)
            for label in annotation.labels if annotation is not None else ():
                labels[i, index[label]] = 1.0
        return labels


# ---------------------------------------------------------------------------------------------
# gt.json


def parse_seconds(value: object, where: str) -> float:
    """A time in seconds from a number or a numeric string ("18.6" occurs in real files)."""
    if isinstance(value, bool):
        raise DatasetError(f"{where}: {value!r} is not a number")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(seconds):
        raise DatasetError(f"{where}: {value!r} is not a finite number")
    return seconds


def read_annotations(gt_path: str | Path, ignored_labels: Iterable[str] = ()) -> dict[str, VideoAnnotation]:
    """Parse and validate a gt.json in the ActivityNet style (``{"database": {vid: {...}}}``).

    Segments may be numbers or numeric strings. A missing ``annotations`` key means no segments.
    """
    gt_path = Path(gt_path)
    ignored = set(ignored_labels)
    data = read_json(gt_path)
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise DatasetError(f'{gt_path}: expected an object with a "database" object mapping video ids to entries')

    annotations: dict[str, VideoAnnotation] = {}
    clipped: list[str] = []
    for vid, entry in database.items():
        clipped_here = 0
        where = f'{gt_path}: video "{vid}"'
        if not isinstance(entry, dict):
            raise DatasetError(f"{where}: entry is not an object")
        items = entry.get("annotations", [])
        if not isinstance(items, list):
            raise DatasetError(f'{where}: "annotations" is not a list')
        duration = entry.get("duration")
        duration = None if duration is None else parse_seconds(duration, f"{where} duration")
        subset = entry.get("subset")
        fps = entry.get("fps")
        if fps is not None:
            fps = parse_seconds(fps, f"{where} fps")
            if fps <= 0:
                raise DatasetError(f"{where}: fps {fps:g} is not positive")
        segments, labels, label_ids = [], [], []
        for j, item in enumerate(items):
            item_where = f"{where} annotation {j}"
            if not isinstance(item, dict) or "segment" not in item or "label" not in item:
                raise DatasetError(f'{item_where}: expected {{"segment": [start, end], "label": name}}')
            segment, label = item["segment"], item["label"]
            if not isinstance(segment, (list, tuple)) or len(segment) != 2:
                raise DatasetError(f"{item_where}: segment {segment!r} is not a [start, end] pair")
            if not isinstance(label, str) or not label:
                raise DatasetError(f"{item_where}: label {label!r} is not a class name")
            start, end = (parse_seconds(v, f"{item_where} segment") for v in segment)
            if end < start:
                raise DatasetError(f"{item_where}: segment ends before it starts ({start} > {end})")
            if end == start:
                raise DatasetError(f"{item_where}: segment [{start}, {end}] is empty")
            if label in ignored:
                continue
            label_id = item.get("label_id")
            if label_id is not None and (isinstance(label_id, bool) or not isinstance(label_id, int)):
                raise DatasetError(f"{item_where}: label_id {label_id!r} is not an integer")
            if duration is not None and (start < 0.0 or end > duration):
                # real THUMOS'14 has a few segments past the video's end: clip them to the video
                clipped.append(f"{vid} [{start:g}, {end:g}] (duration {duration:g})")
                clipped_here += 1
                start, end = max(start, 0.0), min(end, duration)
                if end <= start:  # wholly outside the video: nothing of it is left
                    continue
            segments.append((start, end))
            labels.append(label)
            label_ids.append(label_id)
        annotations[vid] = VideoAnnotation(
            video_id=vid,
            subset=None if subset is None else str(subset),
            duration=duration,
            segments=np.asarray(segments, dtype=np.float64).reshape(-1, 2),
            labels=tuple(labels),
            clipped=clipped_here,
            fps=fps,
            label_ids=tuple(label_ids) if label_ids and None not in label_ids else None,
        )
    if clipped:
        shown = "; ".join(clipped[:5]) + ("; ..." if len(clipped) > 5 else "")
        log.warning(
            f"{gt_path}: {len(clipped)} segments reach outside [0, duration] and were clipped to the video "
            f"(dropped if wholly outside): {shown}"
        )
    return annotations


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e.reason})") from None
    names: list[str] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if name in seen:
            raise DatasetError(f'{path}: {what} "{name}" listed twice (lines {seen[name]} and {line_no})')
        seen[name] = line_no
        names.append(name)
    return names


def read_classes(layout: DatasetLayout, annotations: dict[str, VideoAnnotation]) -> list[str]:
    """classes.txt if present; else the labels ordered by their ``label_id`` where every segment has one
    (ActionFormer), else sorted by name (docs/method.md sec. 1.1)."""
    if layout.classes_path.is_file():
        classes = _read_lines(layout.classes_path, "class")
        if not classes:
            raise DatasetError(f"{layout.classes_path}: no class names")
        return classes
    labelled = [a for a in annotations.values() if a.labels]
    if labelled and all(a.label_ids is not None for a in labelled):
        ids: dict[str, tuple[int, str]] = {}  # label -> (label_id, first video)
        for a in labelled:
            for label, label_id in zip(a.labels, a.label_ids, strict=True):
                known, first = ids.setdefault(label, (label_id, a.video_id))
                if known != label_id:
                    raise DatasetError(
                        f'{layout.gt_path}: video "{a.video_id}" gives label "{label}" label_id {label_id}, '
                        f'but video "{first}" gives it {known}'
                    )
        return sorted(ids, key=lambda label: (ids[label][0], label))
    return sorted({label for annotation in annotations.values() for label in annotation.labels})


def quoted(names: Iterable[str], joiner: str = ", ") -> str:
    """Names in double quotes for a one-line message: ``"a", "b"`` (or ``"a" or "b"`` with ``joiner=" or "``)."""
    return joiner.join(f'"{n}"' for n in names)


def read_split_ids(layout: DatasetLayout, split: str, annotations: dict[str, VideoAnnotation]) -> list[str]:
    """Video ids of a split: split_<split>.txt, else the gt.json entries whose subset the split accepts."""
    path = layout.split_path(split)
    names = layout.subset_of(split)
    if path is not None and path.is_file():
        ids = _read_lines(path, "video")
        if names is not None:
            for vid in ids:
                annotation = annotations.get(vid)
                if annotation is not None and not subset_matches(annotation.subset, names):
                    raise DatasetError(
                        f'{path}: video "{vid}" has subset "{annotation.subset}" in gt.json, but the {split} split '
                        f"accepts only {quoted(names)} (set data.{split}_subset to a list that includes it)"
                    )
    elif names is not None:
        ids = [vid for vid, annotation in annotations.items() if subset_matches(annotation.subset, names)]
        if not ids:
            present = sorted({str(a.subset) for a in annotations.values()})
            raise DatasetError(
                f"{layout.gt_path}: no video has a subset the {split} split accepts ({quoted(names)}); "
                f"subsets present: {quoted(present)}"
            )
    else:
        present = quoted(sorted({str(a.subset) for a in annotations.values()}))
        if path is None:  # split files are not part of this layout: name its annotation file
            raise DatasetError(
                f"{layout.gt_path}: no subset is configured for the {split} split "
                f"(data.{split}_subset, utal check --{split}-subset; subsets present: {present})"
            )
        raise DatasetError(
            f"{path}: file not found, and no gt.json subset is configured for the {split} split "
            f"(data.{split}_subset; subsets present: {present})"
        )
    if not ids:
        raise DatasetError(f"{path if path is not None else layout.gt_path}: the {split} split has no videos")
    return ids


def read_dataset(layout: DatasetLayout, require_test_annotations: bool = True) -> DatasetIndex:
    """Read and validate gt.json, the class list and the split files of ``layout`` (not the features).

    Training videos need no annotation entry (UTAL learns without labels). Test videos need one for
    mAP unless ``require_test_annotations`` is False (prediction only). Every label of a video in a
    split must be in the class list, and no video may be in both splits (but in a dataset without labels: discovering
    actions in a folder of unannotated videos trains on the videos it localizes).
    """
    layout = resolve_layout(layout)
    if not layout.gt_path.is_file():
        raise DatasetError(
            f"{layout.gt_path}: annotation file not found ({layout.name} layout, docs/method.md sec. 1.1)"
        )
    annotations = read_annotations(layout.gt_path, layout.ignored_labels)
    classes = read_classes(layout, annotations)
    known = set(classes)
    splits = {split: read_split_ids(layout, split, annotations) for split in (layout.train_split, layout.test_split)}
    skipped: dict[str, list[str]] = {}
    if layout.missing_features == "skip":
        for split, ids in splits.items():
            missing = [vid for vid in ids if not all(path.is_file() for path in layout.feature_files(split, vid))]
            if missing:
                kept = [vid for vid in ids if vid not in set(missing)]
                if not kept:
                    folder = layout.feature_files(split, ids[0])[0].parent
                    raise DatasetError(f"{folder}: no video of the {split} split has its feature files")
                skipped[split], splits[split] = missing, kept
                shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
                log.warning(
                    f"missing_features: skip: {len(missing)} {split} videos have no feature files and are left out: "
                    f"{shown}"
                )

    overlap = set(splits[layout.train_split]) & set(splits[layout.test_split])
    if overlap and classes:  # without labels (discovery) nothing can leak: the videos localized are those trained on
        vid = sorted(overlap)[0]
        raise DatasetError(
            f'video "{vid}" is in both the {layout.train_split} and the {layout.test_split} split '
            f"({len(overlap)} such videos): test videos must not be trained on"
        )
    for split, ids in splits.items():
        for vid in ids:
            annotation = annotations.get(vid)
            if annotation is None:
                if split == layout.test_split and require_test_annotations:
                    raise DatasetError(f'{layout.gt_path}: test video "{vid}" has no annotation entry (needed for mAP)')
                continue
            unknown = [label for label in annotation.labels if label not in known]
            if unknown:
                source = layout.classes_path if layout.classes_path.is_file() else layout.gt_path
                raise DatasetError(
                    f'{layout.gt_path}: video "{vid}" has label "{unknown[0]}", '
                    f"which is not in the class list ({source})"
                )
    return DatasetIndex(layout=layout, classes=classes, splits=splits, annotations=annotations, skipped=skipped)
