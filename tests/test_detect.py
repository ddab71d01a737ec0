import torch

from utal_lightning.eval.detect import detect_with_mapping


def _video():
    # T = 8, K = 2 clusters: cluster 0 fires on snippets 2-4, cluster 1 on 6-7
    cas = torch.zeros(8, 2)
    cas[2:5, 0] = 1.0
    cas[6:8, 1] = 1.0
    return cas, torch.tensor([0.6, 0.4])


def test_hungarian_mapping_relabels_clusters():
    cas, scores = _video()
    mapping = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # cluster 0 -> class 2, cluster 1 -> class 0
    rows = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.3, nms_iou=0.5, scale=1)
    by_class = {int(r[3]): r for r in rows}
    assert set(by_class) == {0, 2}  # both kept clusters give detections: all predicted classes are kept
    assert by_class[2][0].item() == 2 * 0.64 and by_class[2][1].item() == 5 * 0.64
    assert by_class[0][0].item() == 6 * 0.64


def test_majority_soft_mapping_emits_once_per_class_with_weights():
    cas, scores = _video()
    mapping = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    rows = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.5, nms_iou=0.5, scale=1)
    assert sorted(rows[:, 3].tolist()) == [0.0, 1.0]
    full, half = (rows[rows[:, 3] == c][0] for c in (0.0, 1.0))
    assert torch.allclose(half[2], 0.5 * full[2]) and torch.equal(half[:2], full[:2])
