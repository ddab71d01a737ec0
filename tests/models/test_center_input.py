"""Per-video centering of the networks' input (docs/method.md sec. 4.3)."""

from __future__ import annotations

import pytest
import torch

from utal_lightning.models.augment import center_over_time
from utal_lightning.models.cola import CoLA
from utal_lightning.models.iocnet import IOCNet

pytestmark = pytest.mark.usefixtures("one_thread")


def test_center_over_time_subtracts_each_videos_mean_over_its_real_snippets():
    x = torch.rand((3, 7, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lengths = torch.tensor([7, 3, 1])
    x[1, 3:] = 0.0  # zero padding, as a pooling batch has
    out = center_over_time(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        mean = sum(x[b, t] for t in range(n)) / n
        for t in range(7):
            expected = x[b, t] - mean if t < n else torch.zeros(4, dtype=torch.float64)
            torch.testing.assert_close(out[b, t], expected)
    torch.testing.assert_close(center_over_time(x[:1]), x[:1] - x[:1].mean(1, keepdim=True))


@pytest.mark.parametrize(
    "network",
    [
        lambda centred: CoLA(num_classes=3, feature_dim=8, hidden_dim=6, dropout=0.0, center_input=centred),
        lambda centred: IOCNet(num_classes=3, feature_dim=8, rgb_dim=4, hidden_dim=6, center_input=centred),
    ],
    ids=["CoLA", "IOCNet"],
)
def test_a_centred_network_ignores_a_per_video_offset(network):
    torch.manual_seed(0)
    centred = network(True).eval()
    torch.manual_seed(0)
    plain = network(False).eval()
    x = torch.rand((2, 12, 8), generator=torch.Generator().manual_seed(1))
    offset = torch.linspace(1.0, 3.0, 8)
    with torch.no_grad():
        torch.testing.assert_close(centred(x + offset).cas, centred(x).cas)
        assert not torch.allclose(plain(x + offset).cas, plain(x).cas)  # the paper's network does not
        # the same weights on the centred input: centring is the only difference
        torch.testing.assert_close(centred(x).cas, plain(x - x.mean(1, keepdim=True)).cas)
        # a padded pooling batch is centred over each video's real snippets only
        lengths = torch.tensor([12, 5])
        padded = x.clone()
        padded[1, 5:] = 0.0
        torch.testing.assert_close(centred(padded, lengths).cas, plain(center_over_time(padded, lengths)).cas)
