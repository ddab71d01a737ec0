"""`utal view`: one self-contained HTML page of what a run found (no server, no network).

A timeline per video with the detections by class and score (and the ground truth when known), the discovered
(pseudo-)classes with their most confident segments and, for a run directory, the pseudo-class of each training
video; where the video files are reachable (``--videos``), a player that jumps to a segment when it is clicked.

What it reads: a detections JSON (``utal predict``'s ActivityNet results) or a run directory, from which it takes
``detections.json``, the data root of its ``config.yaml`` (the annotation file: durations, ground truth) and
``checkpoints/last.ckpt`` (the training videos' pseudo-classes). ``--gt`` names another annotation file.
"""

from __future__ import annotations

import colorsys
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from utal_lightning.data.layout import DatasetLayout, VideoAnnotation, read_annotations, resolve_layout
from utal_lightning.errors import DatasetError
from utal_lightning.eval.io import SegmentTable, discovered_class_name, read_detections
from utal_lightning.utils import atomic_write_text, read_json
from utal_lightning.video import find_videos

VIEW_FILE = "view.html"


@dataclass
class ViewData:
    """Everything the page shows, by video id."""

    detections: SegmentTable
    video_ids: list[str] = field(default_factory=list)  # every video of the detections file, with detections or not
    annotations: dict[str, VideoAnnotation] = field(default_factory=dict)
    pseudo_classes: dict[str, str] = field(default_factory=dict)  # training video -> its pseudo-class's name
    selected: dict[str, bool] = field(default_factory=dict)  # training video -> in P (the reliable set)
    video_files: dict[str, str] = field(default_factory=dict)  # video id -> path relative to the page
    title: str = "utal view"


def read_view_data(target: str | Path, gt: str | Path | None = None, videos: str | Path | None = None) -> ViewData:
    """What :func:`write_view` draws, from a detections file or a run directory (module docstring)."""
    target = Path(target)
    annotations: dict[str, VideoAnnotation] = {}
    pseudo_classes: dict[str, str] = {}
    selected: dict[str, bool] = {}
    if target.is_dir():
        detections_path = target / "detections.json"
        if not detections_path.is_file():
            raise DatasetError(
                f"{target}: no detections.json in this run directory (write it with "
                f"`utal predict --ckpt_path {target / 'checkpoints' / 'last.ckpt'}`)"
            )
        if gt is None:
            gt = _annotation_file_of_run(target)
        pseudo_classes, selected = _pseudo_classes_of_run(target)
    elif target.is_file():
        detections_path = target
    else:
        raise DatasetError(f"{target}: no such run directory or detections file")
    detections = read_detections(detections_path)  # validated; the ids also of the videos without any:
    video_ids = list(read_json(detections_path)["results"])
    if gt is not None:
        annotations = read_annotations(gt)
    if videos is not None:
        files = _video_files(Path(videos), {*detections.videos, *annotations})
    else:  # utal extract records each video's file in the annotation file
        files = _recorded_sources(gt) if gt is not None else {}
    return ViewData(
        detections, video_ids, annotations, pseudo_classes, selected, files, title=f"utal view: {target.name}"
    )


def _annotation_file_of_run(run: Path) -> Path | None:
    """The annotation file of the data a run was fitted on (its ``config.yaml``'s ``data.init_args``), if found."""
    config_path = run / "config.yaml"
    if not config_path.is_file():
        return None
    data = (yaml.safe_load(config_path.read_text()) or {}).get("data", {}).get("init_args", {})
    root = data.get("root")
    if not root or not Path(root).is_dir():
        return None
    try:
        path = resolve_layout(DatasetLayout(Path(root))).gt_path
    except DatasetError:
        return None
    return path if path.is_file() else None


def _pseudo_classes_of_run(run: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """The training videos' pseudo-classes and membership of P in the run's last checkpoint ({} without one)."""
    import torch

    checkpoint = run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        return {}, {}
    state = torch.load(checkpoint, map_location="cpu", weights_only=True).get("UTALDataModule") or {}
    ids, labels, chosen = state.get("train_ids"), state.get("labels"), state.get("selected")
    if ids is None or labels is None:
        return {}, {}
    return (
        {vid: discovered_class_name(k) for vid, k in zip(ids, labels.tolist(), strict=True) if k >= 0},
        {vid: bool(s) for vid, s in zip(ids, chosen.tolist(), strict=True)} if chosen is not None else {},
    )


def _recorded_sources(annotation_file: str | Path) -> dict[str, str]:
    """Video id -> the ``source`` file its annotation entry records (``utal extract``'s), where that file exists."""
    database = (read_json(annotation_file) or {}).get("database") or {}
    return {
        vid: str(Path(entry["source"]).resolve())
        for vid, entry in database.items()
        if isinstance(entry, dict) and isinstance(entry.get("source"), str) and Path(entry["source"]).is_file()
    }


def _video_files(folder: Path, video_ids: set[str]) -> dict[str, str]:
    """Video id -> its file in ``folder`` (``<id>.<ext>``, or ``v_<id>.<ext>``), as an absolute path."""
    by_stem = {path.stem: path for path in find_videos(folder)}
    found = {vid: by_stem.get(vid) or by_stem.get(f"v_{vid}") for vid in video_ids}
    return {vid: str(path.resolve()) for vid, path in found.items() if path is not None}


def class_colors(names: list[str]) -> dict[str, str]:
    """One distinct colour per class (evenly spaced hues)."""
    colors = {}
    for i, name in enumerate(names):
        r, g, b = colorsys.hls_to_rgb(i / max(1, len(names)), 0.45, 0.65)
        colors[name] = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
    return colors


def _page_data(view: ViewData, top: int, examples: int, page_dir: Path) -> dict:
    """The JSON the page renders: videos (duration, detections, ground truth, pseudo-class, file), classes."""
    table = view.detections
    by_video: dict[str, list[dict]] = {}
    for vid, (start, end), label, score in zip(table.videos, table.segments, table.labels, table.scores, strict=True):
        by_video.setdefault(vid, []).append(
            {"start": round(float(start), 3), "end": round(float(end), 3), "label": label, "score": float(score)}
        )
    video_ids = sorted({*view.video_ids, *by_video})
    truth_names = {label for a in view.annotations.values() for label in a.labels}
    names = sorted({*table.labels, *truth_names, *view.pseudo_classes.values()})  # pseudo-classes: a card each
    videos = []
    for vid in video_ids:
        rows = sorted(by_video.get(vid, []), key=lambda d: -d["score"])[:top]
        annotation = view.annotations.get(vid)
        truth = (
            [
                {"start": float(s), "end": float(e), "label": label}
                for (s, e), label in zip(annotation.segments, annotation.labels, strict=True)
            ]
            if annotation is not None
            else []
        )
        ends = [d["end"] for d in rows] + [t["end"] for t in truth]
        duration = annotation.duration if annotation is not None and annotation.duration else max(ends, default=1.0)
        file = view.video_files.get(vid)
        videos.append(
            {
                "id": vid,
                "duration": float(duration),
                "detections": rows,
                "truth": truth,
                "pseudo_class": view.pseudo_classes.get(vid),
                "selected": view.selected.get(vid),
                "file": Path(file).relative_to(page_dir).as_posix() if file and _inside(file, page_dir) else file,
            }
        )
    classes = []
    for name in names:
        best = sorted(
            ({"video": vid, **d} for vid, rows in by_video.items() for d in rows if d["label"] == name),
            key=lambda d: -d["score"],
        )[:examples]
        members = sorted(v for v, k in view.pseudo_classes.items() if k == name)
        if best or members:  # a ground-truth class the detections never name has no card (its colour stays)
            classes.append({"name": name, "examples": best, "members": members})
    return {"title": view.title, "videos": videos, "classes": classes, "colors": class_colors(names)}


def _inside(path: str, folder: Path) -> bool:
    try:
        Path(path).relative_to(folder)
    except ValueError:
        return False
    return True


def write_view(view: ViewData, out: str | Path, top: int = 20, examples: int = 6) -> Path:
    """Write the page to ``out`` (atomically): the data as JSON inside, drawn by the page's own script."""
    out = Path(out)
    data = _page_data(view, top, examples, out.resolve().parent)
    # "</" would end the script element early: JSON allows "<\/" for it
    payload = json.dumps(data).replace("</", "<\\/")
    page = PAGE.replace("__TITLE__", html.escape(view.title)).replace("__DATA__", payload)
    return atomic_write_text(out, page)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
  header { padding: 12px 20px; background: #f4f4f6; border-bottom: 1px solid #ddd; }
  h1 { font-size: 18px; margin: 0 0 4px; }
  main { display: flex; gap: 20px; padding: 12px 20px; }
  #lists { flex: 1 1 auto; min-width: 0; }
  #side { flex: 0 0 420px; position: sticky; top: 12px; align-self: flex-start; }
  #player { width: 100%; background: #000; display: none; }
  #now { font-size: 12px; color: #555; min-height: 1.4em; }
  .class { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; margin: 0 0 10px; }
  .class h3 { margin: 0 0 6px; font-size: 14px; }
  .swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; }
  .example { cursor: pointer; border: 1px solid #ccc; border-radius: 4px; background: #fff; margin: 2px;
             padding: 2px 6px; font-size: 12px; }
  .example:hover { background: #eef; }
  .members { font-size: 12px; color: #555; }
  .video { margin: 0 0 14px; }
  .video h4 { margin: 0 0 2px; font-size: 13px; font-weight: 600; }
  .video h4 small { font-weight: 400; color: #666; }
  svg.timeline { width: 100%; height: 46px; background: #fafafa; border: 1px solid #e4e4e4; }
  svg.timeline rect.segment { cursor: pointer; }
  svg.timeline rect.segment:hover { stroke: #000; stroke-width: 1; }
  .legend { font-size: 12px; color: #555; margin: 6px 0 12px; }
</style>
</head>
<body>
<header><h1>__TITLE__</h1><div id="summary"></div></header>
<main>
  <div id="lists">
    <h2>Classes</h2>
    <div id="classes"></div>
    <h2>Videos</h2>
    <div class="legend">each timeline: ground truth above (where known), detections below, the bar's opacity its
      score; click a segment to play it</div>
    <div id="videos"></div>
  </div>
  <div id="side">
    <video id="player" controls preload="metadata"></video>
    <div id="now"></div>
  </div>
</main>
<script type="application/json" id="data">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const colors = data.colors;
const files = Object.fromEntries(data.videos.filter(v => v.file).map(v => [v.id, v.file]));
const player = document.getElementById("player");
const now = document.getElementById("now");
if (Object.keys(files).length) { player.style.display = "block"; }

function play(video, start, label) {
  const file = files[video];
  if (!file) {
    now.textContent = video + " at " + start.toFixed(1) + " s (no video file: give utal view --videos DIR)";
    return;
  }
  const seek = () => { player.currentTime = start; player.play().catch(() => {}); };
  if (player.dataset.video !== video) {
    player.dataset.video = video;
    player.src = file;
    player.addEventListener("loadedmetadata", seek, { once: true });
  } else {
    seek();
  }
  now.textContent = video + ": " + label + " from " + start.toFixed(1) + " s";
}

function element(tag, attributes, text) {
  const node = tag === "svg" || tag === "rect" || tag === "title" || tag === "line"
    ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) { node.setAttribute(key, value); }
  if (text !== undefined) { node.textContent = text; }
  return node;
}

function segmentRect(video, segment, duration, y, height, opacity) {
  const x = 100 * segment.start / duration, w = Math.max(0.2, 100 * (segment.end - segment.start) / duration);
  const rect = element("rect", {
    class: "segment", x: x + "%", y: y, width: w + "%", height: height,
    fill: colors[segment.label] || "#888", "fill-opacity": opacity,
    "data-video": video, "data-start": segment.start, "data-label": segment.label,
  });
  const score = segment.score === undefined ? "ground truth" : "score " + segment.score.toFixed(3);
  rect.appendChild(element("title", {}, segment.label + " " + segment.start.toFixed(1) + "-" +
    segment.end.toFixed(1) + " s, " + score));
  rect.addEventListener("click", () => play(video, segment.start, segment.label));
  return rect;
}

const classList = document.getElementById("classes");
for (const cls of data.classes) {
  const box = element("div", { class: "class", "data-class": cls.name });
  const title = element("h3");
  title.appendChild(element("span", { class: "swatch", style: "background:" + colors[cls.name] }));
  title.appendChild(document.createTextNode(cls.name));
  box.appendChild(title);
  for (const ex of cls.examples) {
    const button = element("button", { class: "example", "data-video": ex.video, "data-start": ex.start },
      ex.video + " " + ex.start.toFixed(1) + "-" + ex.end.toFixed(1) + " s (" + ex.score.toFixed(2) + ")");
    button.addEventListener("click", () => play(ex.video, ex.start, cls.name));
    box.appendChild(button);
  }
  if (cls.members.length) {
    box.appendChild(element("div", { class: "members" },
      cls.members.length + " training videos in this pseudo-class: " + cls.members.slice(0, 12).join(", ") +
      (cls.members.length > 12 ? ", ..." : "")));
  }
  classList.appendChild(box);
}

const videoList = document.getElementById("videos");
for (const video of data.videos) {
  const box = element("div", { class: "video", "data-video": video.id });
  const heading = element("h4", {}, video.id + " ");
  const notes = [video.duration.toFixed(1) + " s", video.detections.length + " detections shown"];
  if (video.pseudo_class !== null && video.pseudo_class !== undefined) {
    notes.push("pseudo-class " + video.pseudo_class +
      (video.selected === false ? " (not in P)" : ""));
  }
  heading.appendChild(element("small", {}, notes.join(", ")));
  box.appendChild(heading);
  const svg = element("svg", { class: "timeline", "aria-label": "timeline of " + video.id });
  for (const segment of video.truth) {
    svg.appendChild(segmentRect(video.id, segment, video.duration, 3, 14, 0.45));
  }
  for (const segment of video.detections) {
    svg.appendChild(segmentRect(video.id, segment, video.duration, 22, 20, 0.25 + 0.75 * Math.min(1, segment.score)));
  }
  box.appendChild(svg);
  videoList.appendChild(box);
}
document.getElementById("summary").textContent = data.videos.length + " videos, " + data.classes.length +
  " classes" + (Object.keys(files).length ? ", " + Object.keys(files).length + " with their video file" : "");
</script>
</body>
</html>
"""
