"""Benchmark: `utal extract`'s speed, clips per second, against decoding alone in the same run.

Run from the repository root:  .venv/bin/python benchmarks/bench_extract.py [--backbone r2plus1d_18]
[--weights none] [--device cpu|cuda] [--seconds 20] [--fps 30] [--size 320x240] [--stride 4] [--batch-size 16]

Data: one generated video (moving colour blocks, MPEG-4 part 2, ``--seconds`` at ``--fps``, ``--size``) written
with PyAV into a temporary folder. Measured, each the best of ``--repeat`` runs: decoding every frame resized to the
backbone's frame size (the floor: what extraction costs with a free backbone), then the whole extraction of that
video (decode + clips + backbone, ``utal_lightning.video.extract.extract_folder``). Prints frames/s of decoding,
clips/s of extraction and the ratio of their times. ``--backbone`` takes a torchvision video model (needs
torchvision) or a ``ClipBackbone`` class path (e.g. ``tests.helpers.backbones.TinyBackbone``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from utal_lightning.video.backbones import build_backbone
from utal_lightning.video.extract import extract_folder, open_video


def write_video(path: Path, seconds: float, fps: int, width: int, height: int) -> int:
    import av

    frames = round(seconds * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            frame = np.zeros((height, width, 3), dtype=np.uint8)
            frame[:, (5 * i) % width :] = (37 * (i // 15) % 255, 90, 160)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="r2plus1d_18")
    parser.add_argument("--weights", default="none", choices=("default", "none"))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    try:
        backbone = build_backbone(args.backbone, args.weights)
    except ImportError as error:
        print(f"error: {args.backbone}: {error}", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        videos = folder / "videos"
        videos.mkdir()
        frames = write_video(videos / "clip.mp4", args.seconds, args.fps, width, height)
        decode_seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            with open_video(videos / "clip.mp4", backbone.frame_size) as video:
                decoded = sum(1 for _ in video.frames)
            decode_seconds.append(time.perf_counter() - started)
        assert decoded == frames, (decoded, frames)
        extract_seconds, clips = [], 0
        for i in range(args.repeat):
            started = time.perf_counter()
            report = extract_folder(
                videos, folder / f"out{i}", backbone, args.stride, args.batch_size, args.device, progress=False
            )
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            extract_seconds.append(time.perf_counter() - started)
            clips = report.clips
        decode, extract = min(decode_seconds), min(extract_seconds)
        print(
            f"backbone {args.backbone} ({args.weights} weights), {args.device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; video {args.seconds:g} s at {args.fps} fps, {width}x{height}, "
            f"clips of {backbone.clip_length} frames at {backbone.frame_size[1]}x{backbone.frame_size[0]} every "
            f"{args.stride} frames, batches of {args.batch_size}"
        )
        print(f"decoding alone: {frames / decode:.0f} frames/s ({decode:.2f} s)")
        print(f"extraction:     {clips / extract:.1f} clips/s ({clips} clips, {extract:.2f} s)")
        print(f"extraction / decoding time: {extract / decode:.1f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
