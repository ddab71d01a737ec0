import json
import re

import numpy as np
import pytest

from tests.helpers.datasets import write_dataset
from utal_lightning.errors import DatasetError
from utal_lightning.eval.io import read_detections, read_ground_truth, write_detections


def test_detections_round_trip(tmp_path):
    path = tmp_path / "out" / "pred.json"
    rows = [np.array([[0.0, 1.5, 0.9, 1], [2.0, 3.0, 0.4, 0]]), np.zeros((0, 4))]
    write_detections(path, ["a", "b"], rows, ["Walk", "Jump"])
    table = read_detections(path)
    assert table.videos == ["a", "a"] and table.labels == ["Jump", "Walk"]
    np.testing.assert_allclose(table.segments, [[0.0, 1.5], [2.0, 3.0]])
    np.testing.assert_allclose(table.scores, [0.9, 0.4])
    assert json.loads(path.read_text())["results"]["b"] == []
    assert [p.name for p in path.parent.iterdir()] == ["pred.json"]  # no temporary file left behind


def test_write_is_atomic_when_serialization_fails(tmp_path):
    path = tmp_path / "pred.json"
    path.write_text("old")
    with pytest.raises(IndexError):
        write_detections(path, ["a"], [np.array([[0.0, 1.0, 0.5, 7]])], ["Walk"])  # class 7 does not exist
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.json"]


@pytest.mark.parametrize(
    "content,fragment",
    [
        ('{"results": {"a": [{"segment": [1, 2], "label": "x"}]}}', 'video "a" detection 0'),
        ('{"results": {"a": [{"segment": [1], "label": "x", "score": 1}]}}', 'video "a" detection 0'),
        ('{"results": {"a": {"segment": [1, 2]}}}', "not a list"),
        ('{"results": [1]}', '"results"'),
        ('{"results": {"a": [{"segment": [1, "nan"], "label": "x", "score": 1}]}}', "not a finite number"),
        ("{oops", "malformed JSON"),
    ],
)
def test_bad_detection_files(tmp_path, content, fragment):
    path = tmp_path / "pred.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=re.escape("pred.json")) as info:
        read_detections(path)
    assert fragment in str(info.value)


def test_ground_truth_by_subset(tmp_path):
    root = write_dataset(tmp_path / "ds")
    table = read_ground_truth(root / "gt.json", "test")
    assert table.videos == ["video_test_1", "video_test_2"] and table.labels == ["Walk", "Swim"]
    np.testing.assert_allclose(table.segments, [[1.0, 5.0], [0.0, 1.9]])
    assert len(read_ground_truth(root / "gt.json")) == 6
    # subset names compare case-insensitively (ActionFormer's file says "Test"), and a list accepts any
    assert read_ground_truth(root / "gt.json", "Test").videos == table.videos
    assert len(read_ground_truth(root / "gt.json", ["VALIDATION", "test"])) == 6
    with pytest.raises(DatasetError, match='no video has subset "testing" or "val"'):
        read_ground_truth(root / "gt.json", ["testing", "val"])
