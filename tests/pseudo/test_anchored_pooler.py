"""Each iteration's pooling held towards a label-free one: anchored_blend, AnchoredPooler."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.poolers import AnchoredPooler, AttentionPooler, DeviationPooler, HASPooler
from utal_lightning.pseudo.pooling import anchored_blend


def _batch(seed: int = 0, b: int = 5, t: int = 12, d: int = 6):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand(b, t, d, generator=g, dtype=torch.float64)
    lengths = torch.tensor([t, t - 3, t, 5, t - 1][:b])
    label_free = torch.rand(b, t, generator=g, dtype=torch.float64)
    attention = torch.rand(b, t, generator=g, dtype=torch.float64)
    output = LocalizationOutput(
        cas=attention[..., None], attention=attention, video_scores=torch.ones(b, 1), embeddings=features
    )
    return features, lengths, label_free, output


def _slow(features, lengths, label_free, attention, weight, fraction=0.25):
    """Video by video in numpy: the model's minmax-attention pooling, the anchor's top-``fraction`` pooling by the
    label-free score, each normalized, blended, normalized."""
    out = []
    for x, n, s, a in zip(features.numpy(), lengths.tolist(), label_free.numpy(), attention.numpy(), strict=True):
        x, s, a = x[:n], s[:n], a[:n]
        w = (a - a.min()) / (a.max() - a.min())
        model = w @ x
        model /= np.linalg.norm(model)
        k = max(1, int(np.floor(fraction * n + 1e-9)))
        top = np.argsort(-s, kind="stable")[:k]
        anchor = x[top].sum(0)
        anchor /= np.linalg.norm(anchor)
        blend = (1 - weight) * model + weight * anchor
        out.append(blend / np.linalg.norm(blend))
    return np.stack(out)


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.5, 1.0])
def test_the_pooler_blends_the_models_pooling_with_the_label_free_one_video_by_video(weight):
    features, lengths, label_free, output = _batch()
    pooler = AnchoredPooler(AttentionPooler(subtract_background=False), weight=weight)
    pooled, weights = pooler.video_features(output, features, torch.arange(5), lengths, label_free)
    expected = _slow(features, lengths, label_free, output.attention, weight)
    np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-9, atol=1e-12)
    # the diagnostics see the model's weights, not the anchor's
    inner = AttentionPooler(subtract_background=False).weights(output, features, torch.arange(5), lengths, label_free)
    torch.testing.assert_close(weights, inner)


def test_the_ends_of_the_blend_are_its_two_poolings():
    features, lengths, label_free, output = _batch(seed=3)
    model = AttentionPooler()
    anchor = DeviationPooler(fraction=0.5, subtract_background=True)
    index = torch.arange(5)
    alone = model.video_features(output, features, index, lengths, label_free)[0]
    fixed = anchor.video_features(None, features, index, lengths, label_free)[0]
    torch.testing.assert_close(
        AnchoredPooler(model, anchor, 0.0).video_features(output, features, index, lengths, label_free)[0], alone
    )
    torch.testing.assert_close(
        AnchoredPooler(model, anchor, 1.0).video_features(output, features, index, lengths, label_free)[0], fixed
    )
    half = AnchoredPooler(model, anchor, 0.5).video_features(output, features, index, lengths, label_free)[0]
    torch.testing.assert_close(half, torch.nn.functional.normalize(alone + fixed, dim=1))


def test_the_blend_rejects_a_weight_outside_the_unit_interval():
    x = torch.nn.functional.normalize(torch.rand(3, 4), dim=1)
    with pytest.raises(ValueError, match="weight"):
        anchored_blend(x, x, 1.5)
    with pytest.raises(ValueError, match="weight"):
        AnchoredPooler(AttentionPooler(), weight=-0.1)


def test_votes_and_their_state_are_the_inner_poolers():
    features, lengths, label_free, output = _batch(seed=5)
    inner = HASPooler(gamma=2, branch="cs", use_filter=False)
    pooler = AnchoredPooler(inner, weight=0.25)
    assert pooler.observes_epochs
    observed = pooler.epoch_observation(output, lengths)
    pooler.observe(observed)
    torch.testing.assert_close(inner.votes, observed.float())
    state = pooler.state_dict()
    fresh = AnchoredPooler(HASPooler(gamma=2, branch="cs", use_filter=False), weight=0.25)
    fresh.load_state_dict(state)
    index = torch.arange(5)
    torch.testing.assert_close(
        fresh.video_features(None, features, index, lengths, label_free)[0],
        pooler.video_features(None, features, index, lengths, label_free)[0],
    )
    pooler.start_iteration()
    assert inner.votes is None
