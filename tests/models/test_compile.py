"""`compile_training` (issue 12, item 7): the compiled training forward agrees with the eager one."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.helpers.models import cola_module, iocnet_module

# aot_eager runs anywhere; inductor generates C++ on CPU (where a compiler exists: once, it is slow to build)
CASES = [(cola_module, {}, "aot_eager"), (iocnet_module, {"shift_channels": 2}, "aot_eager")]
if shutil.which("c++") or shutil.which("g++"):
    CASES.append((cola_module, {}, "inductor"))


def _modules(cls, backend, **kw):
    torch.manual_seed(0)
    eager = cls(num_classes=3, feature_dim=8, hidden_dim=16, dropout=0.0, rgb_dim=4, **kw)
    compiled = cls(
        num_classes=3,
        feature_dim=8,
        hidden_dim=16,
        dropout=0.0,
        rgb_dim=4,
        compile_training=True,
        compile_backend=backend,
        **kw,
    )
    compiled.load_state_dict(eager.state_dict())
    return eager, compiled


@pytest.mark.parametrize("cls,kw,backend", CASES)
def test_compiled_training_forward_and_gradients_agree_with_eager(cls, kw, backend, one_thread):
    eager, compiled = _modules(cls, backend, **kw)
    assert compiled.training_model is not compiled.model and eager.training_model is eager.model
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # the wrapper adds no second copy
    features = torch.rand(4, 24, 8, generator=torch.Generator().manual_seed(1))
    outputs = [m.training_model(features) for m in (eager, compiled)]
    for name in ("cas", "attention", "video_scores"):
        a, b = (getattr(o, name, None) for o in outputs)
        if a is not None:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    for output in outputs:  # every output the losses use
        sum(
            getattr(output, name).sum()
            for name in ("cas", "attention", "video_scores")
            if getattr(output, name, None) is not None
        ).backward()
    for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters(), strict=True):
        grads = [torch.zeros_like(t) if t.grad is None else t.grad for t in (p, q)]  # unreached: None or zeros
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
