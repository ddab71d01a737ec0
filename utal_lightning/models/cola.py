"""CoLA, FEEL's localization model (docs/method.md sec. 4.1), as a plain ``nn.Module`` (no Lightning).

``forward`` returns a :class:`LocalizationOutput`; training adds the snippet mining and the losses, pure
functions of the output (``losses.cola_training_loss`` with its settings ``losses.CoLALoss``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from utal_lightning.models.augment import center_over_time
from utal_lightning.models.mining import num_selected
from utal_lightning.models.outputs import LocalizationOutput

__all__ = ["CoLA"]


def glorot_uniform_(conv: nn.Conv1d) -> None:
    """Xavier/Glorot uniform init of ``conv.weight`` with the fans of one group: ``U(-b, b)``,
    ``b = sqrt(6 / (fan_in + fan_out))``, ``fan_in = in/groups * k``, ``fan_out = out/groups * k``.

    ``nn.init.xavier_uniform_`` takes ``fan_out = out * k`` whatever the groups, which for the
    ActivityNet variant's depthwise conv over K = 100 classes (k = 7) gives b = 0.09 instead of 0.65:
    its output starts 7x too small and on anet-lite the weakly supervised CoLA stayed at chance
    (docs/method.md sec. 4.1). For ``groups = 1`` this is exactly ``xavier_uniform_``.
    """
    out_channels, in_per_group, k = conv.weight.shape
    fan_in = in_per_group * k
    fan_out = out_channels // conv.groups * k
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        conv.weight.uniform_(-bound, bound)


class CoLA(nn.Module):
    """CoLA (docs/method.md sec. 4.1), defaults = CoLA's released THUMOS configuration.

    * ``embed = ReLU(Conv1d(D, hidden, embed_kernel, 'same'))``; ``embeddings`` are taken before the
      dropout (as CoLA's code), the classifier sees ``Dropout(dropout)(embed)``.
    * ``CAS = ReLU(Conv1d(hidden, K, cls_kernel, 'same', bias=False))``; with
      ``cls_depthwise_kernel`` set (ActivityNet variant: ``embed_kernel=9, cls_kernel=9,
      cls_depthwise_kernel=7, cls_depthwise_dilation=2``) a bias-free depthwise conv over the K class
      channels follows the classifier conv, before the ReLU.
    * actionness = ``sum_k CAS``; attention = ``sigmoid(actionness)``; video scores = softmax over
      classes of the per-class mean of the top ``max(1, T // r_easy)`` CAS values (``r_easy``: THUMOS 5,
      ActivityNet 10; the easy-snippet mining of ``losses.cola_mine`` takes as many).

    Weights: Xavier-uniform, zero biases (CoLA's ``weight_init``), with Glorot's fans counted per
    group (:func:`glorot_uniform_`), which matters for the depthwise conv only; ``glorot_fans="pytorch"``
    gives ``nn.init.xavier_uniform_``'s fans (CoLA's code). ``center_input``: subtract each video's mean
    snippet from the input first (:func:`~utal_lightning.models.augment.center_over_time`, docs/method.md
    sec. 4.3; CoLA: off).
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 2048,
        hidden_dim: int = 2048,
        dropout: float = 0.7,
        embed_kernel: int = 3,
        cls_kernel: int = 1,
        cls_depthwise_kernel: int | None = None,
        cls_depthwise_dilation: int = 2,
        r_easy: int = 5,
        center_input: bool = False,
        glorot_fans: Literal["per_group", "pytorch"] = "per_group",
    ) -> None:
        super().__init__()
        if glorot_fans not in ("per_group", "pytorch"):
            raise ValueError(f"glorot_fans must be per_group or pytorch, got {glorot_fans!r}")
        self.center_input, self.glorot_fans = center_input, glorot_fans
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if r_easy < 1:
            raise ValueError(f"r_easy must be >= 1, got {r_easy}")
        self.num_classes = num_classes
        self.r_easy = r_easy

        self.embed = nn.Sequential(
            nn.Conv1d(feature_dim, hidden_dim, kernel_size=embed_kernel, padding="same"),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(p=dropout)
        cls_layers: list[nn.Module] = [
            nn.Conv1d(hidden_dim, num_classes, kernel_size=cls_kernel, padding="same", bias=False)
        ]
        if cls_depthwise_kernel is not None:
            cls_layers.append(
                nn.Conv1d(
                    num_classes,
                    num_classes,
                    kernel_size=cls_depthwise_kernel,
                    dilation=cls_depthwise_dilation,
                    padding="same",
                    groups=num_classes,
                    bias=False,
                )
            )
        cls_layers.append(nn.ReLU())
        self.classifier = nn.Sequential(*cls_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv1d):
                if self.glorot_fans == "per_group":
                    glorot_uniform_(module)
                else:  # CoLA's code: PyTorch's fans, which count every group's outputs
                    nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> LocalizationOutput:
        """``features`` (B, T, D) -> CAS (B, T, K), attention (B, T), video scores (B, K), embeddings (B, T, hidden).
        ``lengths`` (B,): real positions of a zero-padded batch, for ``center_input`` only."""
        if features.dim() != 3:
            raise ValueError(f"features must be (B, T, D), got shape {tuple(features.shape)}")
        T = features.shape[1]
        if self.center_input:
            features = center_over_time(features, lengths)
        x = self.embed(features.transpose(1, 2))  # (B, hidden, T)
        embeddings = x.transpose(1, 2)
        cas = self.classifier(self.dropout(x)).transpose(1, 2)  # (B, T, K)
        actionness = cas.sum(dim=2)
        k_easy = num_selected(T, self.r_easy)
        video_scores = torch.softmax(cas.topk(k_easy, dim=1).values.mean(dim=1), dim=1)
        return LocalizationOutput(
            cas=cas,
            attention=torch.sigmoid(actionness),
            video_scores=video_scores,
            embeddings=embeddings,
        )
