"""The one output type every localization model returns, so every pseudolabeler part works with every model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class LocalizationOutput:
    """What a localization model says about a batch of videos sampled to T snippets.

    ``attention`` is the class-specific actionness in [0, 1] (``sigmoid(sum_k CAS)``, docs/method.md sec. 3.1);
    ``agnostic_attention`` the class-agnostic one (IOCNet's ``A_ca``), or None for models without
    that branch (CoLA): a pooler that needs it falls back to ``attention``.
    """

    cas: Tensor  # (B, T, K) class activation sequence used for localization
    attention: Tensor  # (B, T) class-specific actionness in [0, 1]
    video_scores: Tensor  # (B, K) video-level class probabilities (softmax)
    embeddings: Tensor  # (B, T, E) snippet embeddings
    agnostic_attention: Tensor | None = None  # (B, T) class-agnostic actionness in [0, 1]

    def actionness(self) -> Tensor:
        """(B, T) class-agnostic actionness: the class-agnostic branch where the model has one
        (IOCNet's ``A_ca``), else ``sum_k CAS`` (CoLA's actionness, unbounded: its CAS is non-negative)."""
        return self.agnostic_attention if self.agnostic_attention is not None else self.cas.sum(dim=2)

    def class_map(self) -> Tensor:
        """(B, T, K) the model's class-specific localization map (docs/method.md sec. 5): CoLA's CAS."""
        return self.cas
