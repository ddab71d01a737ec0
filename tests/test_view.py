"""`utal view` (issue 24, item 3): one self-contained HTML page, opened in headless Chromium and checked there.

Chromium is Debian's (`make test` installs it), driven by Playwright; the page loads nothing from a network. The
screenshot is written to the test's folder and its path printed (`pytest -s` shows it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from utal_lightning.cli import main

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

DETECTIONS = {
    "clip_a": [
        {"segment": [1.5, 2.5], "label": "cluster_00", "score": 0.9},
        {"segment": [0.2, 0.8], "label": "cluster_01", "score": 0.4},
    ],
    "clip_b": [{"segment": [4.0, 9.0], "label": "cluster_01", "score": 0.7}],
}
GT = {
    "database": {
        "clip_a": {"subset": "unlabeled", "duration": 3.0, "fps": 25.0, "annotations": []},
        "clip_b": {
            "subset": "unlabeled",
            "duration": 12.0,
            "fps": 25.0,
            "annotations": [{"segment": [3.5, 9.5], "label": "cluster_01"}],
        },
    }
}


def chromium() -> str:
    path = os.environ.get("UTAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed (make test installs Debian's: apt-get install chromium)"
    return path


def write_webm(path: Path, seconds: float = 3.0, fps: int = 25) -> None:
    """A few seconds of moving colour, VP8 in WebM (what Chromium plays without proprietary codecs)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.zeros((48, 64, 3), dtype=np.uint8)
            frame[:, : (i * 2) % 64] = (40 * (i % 6), 120, 255 - 8 * (i % 30))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("view")
    (folder / "detections.json").write_text(json.dumps({"results": DETECTIONS}))
    (folder / "gt.json").write_text(json.dumps(GT))
    videos = folder / "videos"
    videos.mkdir()
    write_webm(videos / "clip_a.webm")  # clip_b has no file
    out = folder / "view.html"
    assert main(["view", str(folder / "detections.json"), "--gt", str(folder / "gt.json"), "--videos", str(videos),
                 "--out", str(out)]) == 0  # fmt: skip
    return out


def test_the_page_is_self_contained(page_file):
    text = page_file.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "<script src" not in text and "<link" not in text  # nothing loaded from elsewhere


def test_the_page_shows_the_timelines_the_classes_and_plays_a_clicked_segment(page_file):
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(page_file.as_uri())
        assert page.locator(".video").count() == 2
        assert page.locator(".class").count() == 2  # cluster_00, cluster_01
        # every detection and the one ground-truth segment, drawn on its video's timeline
        assert page.locator('.video[data-video="clip_a"] rect.segment').count() == 2
        assert page.locator('.video[data-video="clip_b"] rect.segment').count() == 2
        assert page.locator('.class[data-class="cluster_01"] .example').count() == 2  # its best segments
        assert page.locator("#player").is_visible()  # clip_a's file was found
        # the detection [1.5, 2.5] of clip_a starts clip_a's video there
        page.locator('.video[data-video="clip_a"] rect.segment[data-start="1.5"]').click()
        page.wait_for_function(
            "() => { const v = document.getElementById('player'); return v.readyState >= 1 && "
            "Math.abs(v.currentTime - 1.5) < 0.3; }",
            timeout=15_000,
        )
        assert "clip_a" in page.locator("#player").get_attribute("src")
        assert "clip_a: cluster_00 from 1.5 s" in page.locator("#now").inner_text()
        # a video without its file says so instead of playing
        page.locator('.video[data-video="clip_b"] rect.segment[data-start="4"]').click()
        assert "no video file" in page.locator("#now").inner_text()
        screenshot = page_file.with_suffix(".png")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert not errors, errors
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


def test_a_run_directory_without_detections_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["view", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no detections.json" in err[0] and "utal predict" in err[0]
