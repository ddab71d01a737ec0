"""A small clip backbone for tests: random weights, nothing downloaded (torchvision's video models do not install
beside the CPU torch wheel these tests run on)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from utal_lightning.video.backbones import ClipBackbone


class TinyBackbone(ClipBackbone):
    """Conv3d + global average pool: 16-frame clips at 32 x 32 -> 24 features (seeded: the same weights each time)."""

    clip_length = 16
    frame_size = (32, 32)

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = nn.Conv3d(3, 24, kernel_size=(4, 5, 5), stride=(2, 4, 4))
        with torch.no_grad():
            for parameter in self.conv.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)

    def forward(self, clips: Tensor) -> Tensor:
        return torch.relu(self.conv(clips)).mean(dim=(2, 3, 4))
