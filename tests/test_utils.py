"""Output files: atomic and readable by others (mode as open() gives, not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from utal_lightning.eval.io import write_detections
from utal_lightning.reporting.summary import write_summary
from utal_lightning.utils import atomic_write_json, atomic_write_text


@pytest.fixture
def umask():
    def set_umask(mask: int) -> None:
        os.umask(mask)

    old = os.umask(0o022)
    yield set_umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_mode_of_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives: the reference
    assert _mode(plain) == expected
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == expected
    assert _mode(atomic_write_json(tmp_path / "a.json", {"a": 1})) == expected


def test_run_outputs_are_group_readable(tmp_path, umask):
    umask(0o022)
    summary = write_summary(tmp_path, [{"iteration": 1}], {"iteration": 1})
    assert _mode(summary) == 0o644
    detections = write_detections(tmp_path / "detections.json", ["v"], [np.zeros((0, 4))], ["a"])
    assert _mode(detections) == 0o644
