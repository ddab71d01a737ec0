"""From video files to features: decoding, clip backbones and ``utal extract`` (the ActionFormer layout)."""

from __future__ import annotations

from pathlib import Path

from utal_lightning.errors import DatasetError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")  # what `utal extract` reads and `utal view` plays


def find_videos(folder: Path) -> list[Path]:
    """The video files of ``folder`` (by extension), sorted; two files of one name are an error (one id each)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: video folder not found")
    videos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    seen: dict[str, Path] = {}
    for path in videos:
        if path.stem in seen:
            raise DatasetError(f"{path}: the same video id as {seen[path.stem]} (one file per name)")
        seen[path.stem] = path
    if not videos:
        raise DatasetError(f"{folder}: no video files ({', '.join(VIDEO_EXTENSIONS)})")
    return videos
