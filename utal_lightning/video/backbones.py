"""Clip backbones: a network that turns a clip of frames into one feature vector.

``utal extract --backbone NAME`` takes a torchvision video model by name (:class:`TorchvisionBackbone`:
``r2plus1d_18``, ``r3d_18``, ``mc3_18``, ``s3d``, ``mvit_v2_s``, ...; Kinetics-400 weights from torchvision's cache)
or a class path of your own :class:`ClipBackbone` (one file).
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor, nn

WEIGHT_CHOICES = ("default", "none")


class ClipBackbone(nn.Module):
    """A clip -> feature network and how it wants its frames.

    Attributes:
        clip_length: frames per clip (consecutive frames of the video).
        frame_size: (height, width) the frames are decoded at, or one number: their short side (aspect kept).
    """

    clip_length: int = 16
    frame_size: tuple[int, int] | int = (112, 112)

    def describe(self) -> dict:
        """What made the features (recorded with them: a resumed extraction must use the same)."""
        frame_size = self.frame_size if isinstance(self.frame_size, int) else list(self.frame_size)
        kind = type(self)
        return {"backbone": f"{kind.__module__}.{kind.__qualname__}", "clip_length": self.clip_length,
                "frame_size": frame_size}  # fmt: skip

    def prepare(self, clips: Tensor) -> Tensor:
        """(B, T, H, W, 3) uint8 clips -> the network's input (default: (B, 3, T, H, W) floats in [0, 1])."""
        return clips.permute(0, 4, 1, 2, 3).float() / 255.0

    def forward(self, clips: Tensor) -> Tensor:  # (B, ...) prepared clips -> (B, D)
        raise NotImplementedError


class TorchvisionBackbone(ClipBackbone):
    """A torchvision video classifier without its classification head: its pooled features per clip
    (R(2+1)D-18 / R3D-18 / MC3-18: 512, S3D: 1024, MViT-v2-S: 768), with the input transforms of its weights
    (resize, centre crop, normalization) and 16-frame clips (at least the model's ``min_temporal_size``).

    Args:
        name: a model of ``torchvision.models.video`` (``torchvision.models.list_models(module=...video)``).
        weights: "default" (Kinetics-400, from torchvision's cache: ``$TORCH_HOME/hub/checkpoints``, downloaded
            once) or "none" (random weights: tests, trials without a download; the same transforms).
    """

    def __init__(self, name: str = "r2plus1d_18", weights: str = "default") -> None:
        super().__init__()
        if weights not in WEIGHT_CHOICES:
            raise ValueError(f"weights must be one of {WEIGHT_CHOICES}, got {weights!r}")
        try:
            from torchvision import models
        except ImportError as error:
            raise ImportError(
                "the torchvision backbones need torchvision: pip install 'utal-lightning[video]'"
            ) from error
        except RuntimeError as error:  # e.g. "operator torchvision::nms does not exist": built for another torch
            raise ImportError(
                f"torchvision does not load beside torch {torch.__version__} ({error}): install the torchvision "
                "release built for this torch"
            ) from error
        video_models = models.list_models(module=models.video)
        if name not in video_models:
            raise ValueError(f"{name!r} is not a torchvision video model ({', '.join(video_models)})")
        self.name, self.weights = name, weights
        chosen = models.get_model_weights(name).DEFAULT
        self.network = models.get_model(name, weights=chosen if weights == "default" else None)
        for head in ("fc", "classifier", "head"):  # the classification layer of each family
            if hasattr(self.network, head):
                setattr(self.network, head, nn.Identity())
                break
        self.transforms = chosen.transforms()
        self.clip_length = max(16, int(chosen.meta.get("min_temporal_size", 1)))
        size = [int(s) for s in self.transforms.resize_size]  # (h, w), or the short side (MViT, S3D: 256)
        self.frame_size = (size[0], size[1]) if len(size) == 2 else size[0]  # decoded at it: the resize is free

    def describe(self) -> dict:
        return {**super().describe(), "backbone": self.name, "weights": self.weights}

    def prepare(self, clips: Tensor) -> Tensor:
        # the transforms take (B, T, 3, H, W) (and view it: contiguous) and give (B, 3, T, h, w)
        return self.transforms(clips.permute(0, 1, 4, 2, 3).contiguous())

    def forward(self, clips: Tensor) -> Tensor:
        return self.network(clips).flatten(1)


def build_backbone(name: str, weights: str = "default") -> ClipBackbone:
    """A torchvision video model by name, or ``package.module.Class`` (a :class:`ClipBackbone` built without
    arguments; ``weights`` is then its own business)."""
    if "." not in name:
        return TorchvisionBackbone(name, weights)
    module_name, _, class_name = name.rpartition(".")
    try:
        backbone = getattr(importlib.import_module(module_name), class_name)()
    except (ImportError, AttributeError) as error:
        raise ValueError(f"cannot import {name} ({error})") from error
    if not isinstance(backbone, ClipBackbone):
        raise TypeError(f"{name} is not a ClipBackbone")
    return backbone


@torch.no_grad()
def clip_features(backbone: ClipBackbone, clips: Tensor, device: torch.device) -> Tensor:
    """(B, D) float32 features of (B, T, H, W, 3) uint8 clips, computed on ``device``."""
    return backbone(backbone.prepare(clips.to(device))).float().cpu()
