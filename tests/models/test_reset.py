"""Restarting an outer iteration: ``reset_weights(seed)`` rebuilds the network as its constructor does."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.helpers.models import cola_module, iocnet_module

pytestmark = pytest.mark.usefixtures("one_thread")

MODULES = {
    "cola": lambda: cola_module(num_classes=3, feature_dim=16, hidden_dim=32),
    "iocnet": lambda: iocnet_module(num_classes=3, feature_dim=16, rgb_dim=6, hidden_dim=8),
}


def _scramble(module: nn.Module) -> None:
    """Weights far from any initialisation (as after training)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p)).mul_(3.0)


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", sorted(MODULES))
def test_reset_equals_a_freshly_built_model(name):
    torch.manual_seed(123)
    fresh = MODULES[name]()
    torch.manual_seed(0)
    module = MODULES[name]()
    _scramble(module.model)
    module.reset_weights(123)
    _assert_same_weights(module.model, fresh.model)


def test_cola_reset_keeps_xavier_init_and_zero_biases():
    module = MODULES["cola"]()
    _scramble(module.model)
    module.reset_weights(5)
    convs = [m for m in module.model.modules() if isinstance(m, nn.Conv1d)]
    assert len(convs) == 2
    for conv in convs:
        if conv.bias is not None:
            assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    # Xavier-uniform bound sqrt(6 / (fan_in + fan_out)) is reached (PyTorch's default bound is smaller)
    embed = module.model.embed[0]
    fan_in, fan_out = 16 * 3, 32 * 3
    assert embed.weight.abs().max() > 0.9 * (6 / (fan_in + fan_out)) ** 0.5 > 1.1 * (1 / fan_in) ** 0.5


def test_reset_does_not_depend_on_or_move_the_global_rng():
    a, b = MODULES["cola"](), MODULES["cola"]()
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a.reset_weights(42)
    assert torch.equal(torch.get_rng_state(), before)  # global streams untouched
    torch.manual_seed(2)
    torch.rand(7)
    b.reset_weights(42)  # from another global RNG state: the same weights
    _assert_same_weights(a.model, b.model)
    b.reset_weights(43)
    assert not torch.equal(b.model.embed[0].weight, a.model.embed[0].weight)


def test_iocnet_teacher_restarts_from_the_fresh_student():
    torch.manual_seed(9)
    fresh = MODULES["iocnet"]()
    module = MODULES["iocnet"]()
    features = torch.randn(2, 10, 16)
    for _ in range(3):  # the teacher averages a few (scrambled) students
        _scramble(module.model)
        module.teacher.update_parameters(module.model)
    assert int(module.teacher.n_averaged) == 3
    module.reset_weights(9)
    _assert_same_weights(module.teacher.module, fresh.teacher.module)
    assert int(module.teacher.n_averaged) == 0
    torch.testing.assert_close(module.localize(features).h_cs, fresh.localize(features).h_cs, rtol=0, atol=0)
