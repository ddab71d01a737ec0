"""IOCNet, COPL's localization model (docs/method.md sec. 4.2, paper Eq. 11-14), as a plain ``nn.Module``.

``forward`` returns an :class:`IOCNetOutput`, a :class:`LocalizationOutput` subclass, so every
pooler written against the shared output type keeps working; the extra fields are what the COPL
losses (``copl_losses``) need. No Lightning here: a thin LightningModule calls
``out = student(temporal_shift(x)); teacher_out = teacher(x); iocnet_loss(out, teacher_out, ...)``.

Architecture (docs/method.md sec. 4.2):

* class-specific branch: ``embed = ReLU(Conv1d(D, hidden, k=3, pad=1))``,
  ``CAS = Conv1d(hidden, K, k=1)(embed)`` (logits), ``A_cs = sigmoid(sum_k CAS)`` (Eq. 11);
* class-agnostic branch per modality m in {RGB, flow} (RGB = ``features[..., :rgb_dim]``, flow = the
  rest): ``embed_m = ReLU(Conv1d(D_m, hidden, k=3, pad=1))``,
  ``A_ca^m = sigmoid(Conv1d(hidden, 1, k=1)(embed_m))`` (Eq. 12); ``A_ca = (A_ca^R + A_ca^F)/2`` (Eq. 13);
* ``h_cs = beta * softmax_k(CAS) + (1 - beta) * (A_ca^R + A_ca^F)/2`` (Eq. 14, read as in AICL so that
  beta = 1/3 weighs softmax, A_ca^R and A_ca^F equally);
* per class, the top ``l = max(1, T // top_l_divisor)`` snippets by ``h_cs`` (T = the input's actual
  length); ``video_logits`` = mean of that class's CAS logits over them; ``video_scores`` = their
  softmax over classes.

Decisions: ``embeddings*`` are the first convs' outputs after the ReLU and before the (optional,
default off) dropout, which is applied to the input of the second conv of each branch, as CoLA does.
Initialization: PyTorch's default ``Conv1d`` init, except the two class-agnostic heads (the k=1
convs giving ``A_ca^R``, ``A_ca^F``), which start at zero, so ``A_ca = 0.5`` everywhere before
training. Why: ``L_asl`` takes its positives from the top-l snippets of ``h_cs``, which ``A_ca``
dominates (weight ``1 - beta`` = 2/3 on THUMOS), so whatever ordering ``A_ca`` has at the start is
reinforced. A randomly initialized head ranks snippets by a random direction of their features:
on long videos with many short actions, whether that first ordering favours the actions or the
background is a coin flip per seed, and a head that starts "inverted" trains into an inverted
``A_ca`` (detections between the true segments), with ``A_cs`` following it through ``L_CI``.
Zero heads let the class-specific branch (softmax of the CAS, trained by ``L_cls``) choose the
first positives. See docs/method.md, sec. 4.2. ``zero_init_agnostic_heads=False`` gives PyTorch's default
init (AICL's code). ``center_input``: subtract each video's mean snippet from the input first (docs/method.md
sec. 4.3; COPL: off).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from utal_lightning.models.augment import center_over_time
from utal_lightning.models.outputs import LocalizationOutput

__all__ = ["IOCNet", "IOCNetOutput"]


@dataclass(kw_only=True)
class IOCNetOutput(LocalizationOutput):
    """:class:`LocalizationOutput` plus IOCNet's branch outputs (docs/method.md sec. 4.2).

    Inherited: ``cas`` = CAS logits (B, T, K); ``attention`` = ``A_cs`` (B, T); ``video_scores`` =
    softmax of ``video_logits`` (B, K); ``embeddings`` = class-specific (fused) embedding (B, T, H);
    ``agnostic_attention`` = ``A_ca = (A_ca^R + A_ca^F)/2`` (B, T). The added fields are keyword-only
    (the parent ends with a defaulted field) and required.
    """

    video_logits: Tensor  # (B, K) per class, mean CAS logit over its top-l snippets by h_cs
    h_cs: Tensor  # (B, T, K) action selection function (Eq. 14)
    agnostic_rgb: Tensor  # (B, T) A_ca^R
    agnostic_flow: Tensor  # (B, T) A_ca^F
    embeddings_rgb: Tensor  # (B, T, H)
    embeddings_flow: Tensor  # (B, T, H)
    top_l_index: Tensor  # (B, l, K) per-class top-l snippet indices (L_asl positives)

    def class_map(self) -> Tensor:
        """COPL localizes with the action selection function h_cs (docs/method.md sec. 5); class scores still come
        from the CAS."""
        return self.h_cs


class IOCNet(nn.Module):
    """IOCNet (docs/method.md sec. 4.2).

    The defaults are COPL's THUMOS configuration (``h_beta=1/2, top_l_divisor=2`` for ActivityNet).
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int = 2048,
        rgb_dim: int = 1024,
        hidden_dim: int = 512,
        h_beta: float = 1 / 3,
        top_l_divisor: int = 8,
        dropout: float = 0.0,
        center_input: bool = False,
        zero_init_agnostic_heads: bool = True,
    ) -> None:
        super().__init__()
        self.center_input = center_input
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 < rgb_dim < feature_dim:
            raise ValueError(f"rgb_dim must be in (0, feature_dim={feature_dim}), got {rgb_dim}")
        if hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {hidden_dim}")
        if not 0.0 <= h_beta <= 1.0:
            raise ValueError(f"h_beta must be in [0, 1], got {h_beta}")
        if top_l_divisor < 1:
            raise ValueError(f"top_l_divisor must be >= 1, got {top_l_divisor}")
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.rgb_dim = rgb_dim
        self.hidden_dim = hidden_dim
        self.h_beta = float(h_beta)
        self.top_l_divisor = top_l_divisor
        flow_dim = feature_dim - rgb_dim

        self.embed = nn.Sequential(nn.Conv1d(feature_dim, hidden_dim, kernel_size=3, padding=1), nn.ReLU())
        self.classifier = nn.Conv1d(hidden_dim, num_classes, kernel_size=1)
        self.embed_rgb = nn.Sequential(nn.Conv1d(rgb_dim, hidden_dim, kernel_size=3, padding=1), nn.ReLU())
        self.attention_rgb = nn.Conv1d(hidden_dim, 1, kernel_size=1)
        self.embed_flow = nn.Sequential(nn.Conv1d(flow_dim, hidden_dim, kernel_size=3, padding=1), nn.ReLU())
        self.attention_flow = nn.Conv1d(hidden_dim, 1, kernel_size=1)
        self.dropout = nn.Dropout(p=dropout)
        if zero_init_agnostic_heads:  # A_ca starts at 0.5 (module docstring); else PyTorch's init (AICL's code)
            for head in (self.attention_rgb, self.attention_flow):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def top_l(self, T: int) -> int:
        """``l = max(1, T // top_l_divisor)`` (THUMOS T/8, ANet T/2), never more than T."""
        return max(1, min(T, T // self.top_l_divisor))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> IOCNetOutput:
        """``features`` (B, T, D) -> :class:`IOCNetOutput` (see the module docstring). ``lengths`` (B,): real
        positions of a zero-padded batch, for ``center_input`` only."""
        if features.dim() != 3:
            raise ValueError(f"features must be (B, T, D), got shape {tuple(features.shape)}")
        if features.shape[2] != self.feature_dim:
            raise ValueError(f"expected feature dim {self.feature_dim}, got {features.shape[2]}")
        T = features.shape[1]
        if T < 1:
            raise ValueError("features must have at least one snippet (T >= 1)")
        if self.center_input:
            features = center_over_time(features, lengths)
        x = features.transpose(1, 2)  # (B, D, T)

        emb = self.embed(x)  # (B, H, T)
        cas = self.classifier(self.dropout(emb)).transpose(1, 2)  # (B, T, K) logits
        emb_r = self.embed_rgb(x[:, : self.rgb_dim])
        emb_f = self.embed_flow(x[:, self.rgb_dim :])
        a_r = torch.sigmoid(self.attention_rgb(self.dropout(emb_r))).squeeze(1)  # (B, T)
        a_f = torch.sigmoid(self.attention_flow(self.dropout(emb_f))).squeeze(1)
        a_cs = torch.sigmoid(cas.sum(dim=2))
        return self._output(cas, a_cs, a_r, a_f, emb.transpose(1, 2), emb_r.transpose(1, 2), emb_f.transpose(1, 2))

    def _output(
        self, cas: Tensor, a_cs: Tensor, a_r: Tensor, a_f: Tensor, emb: Tensor, emb_r: Tensor, emb_f: Tensor
    ) -> IOCNetOutput:
        """Eq. 13-14 and the top-l video scores from the branch outputs."""
        a_ca = (a_r + a_f) / 2
        h_cs = self.h_beta * torch.softmax(cas, dim=2) + (1.0 - self.h_beta) * a_ca.unsqueeze(2)
        top_l_index = h_cs.topk(self.top_l(cas.shape[1]), dim=1).indices  # (B, l, K)
        video_logits = cas.gather(1, top_l_index).mean(dim=1)  # (B, K)
        return IOCNetOutput(
            cas=cas,
            attention=a_cs,
            video_scores=torch.softmax(video_logits, dim=1),
            embeddings=emb,
            agnostic_attention=a_ca,
            video_logits=video_logits,
            h_cs=h_cs,
            agnostic_rgb=a_r,
            agnostic_flow=a_f,
            embeddings_rgb=emb_r,
            embeddings_flow=emb_f,
            top_l_index=top_l_index,
        )

    def reverse_actionness(self, output: IOCNetOutput) -> IOCNetOutput:
        """``output`` read with both actionness branches reversed (docs/method.md sec. 4.2.2): ``1 - A_ca^m``,
        ``1 - A_cs``, and ``h_cs``, its top-l snippets and the video scores recomputed from them (Eq. 13-14)."""
        return self._output(
            output.cas,
            1 - output.attention,
            1 - output.agnostic_rgb,
            1 - output.agnostic_flow,
            output.embeddings,
            output.embeddings_rgb,
            output.embeddings_flow,
        )
