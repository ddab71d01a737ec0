"""On a CUDA device (UTAL_TEST_CUDA=1, as benchmarks/gpu_suite.sh runs them; skipped elsewhere): the networks and
the pseudolabel maths give the CPU's results, and `utal fit` runs in fp32 and bf16-mixed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers.fit import SHORT, fit
from utal_lightning.models.cola import CoLA
from utal_lightning.models.iocnet import IOCNet
from utal_lightning.pseudo.cci import cci_refine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (UTAL_TEST_CUDA=1)"),
]


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 off: the comparisons below are of fp32 arithmetic on both devices."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("network", [CoLA, IOCNet])
def test_networks_give_the_cpus_outputs(network):
    torch.manual_seed(0)
    widths = {"rgb_dim": 32} if network is IOCNet else {}
    model = network(num_classes=5, feature_dim=64, hidden_dim=32, **widths).eval()
    features = torch.randn(3, 40, 64)
    with torch.no_grad():
        on_cpu = model(features)
        on_gpu = model.cuda()(features.cuda())
    for name in ("cas", "attention"):
        if hasattr(on_cpu, name):
            torch.testing.assert_close(getattr(on_gpu, name).cpu(), getattr(on_cpu, name), rtol=1e-4, atol=1e-5)


def test_cci_gives_the_cpus_labels_and_distances():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(8, 32)) * 2
    x = torch.tensor(means[rng.integers(0, 8, 500)] + rng.normal(size=(500, 32)))
    centres = torch.tensor(means + rng.normal(size=(8, 32)) * 0.3)
    on_cpu = cci_refine(x, centres, 20, 6, 0.7)
    on_gpu = cci_refine(x.cuda(), centres.cuda(), 20, 6, 0.7)
    assert torch.equal(on_gpu.labels.cpu(), on_cpu.labels)
    torch.testing.assert_close(on_gpu.distance.cpu(), on_cpu.distance, rtol=0, atol=1e-9)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("config", ["synthetic_copl.yaml", "synthetic_feel.yaml"])
def test_fit_on_the_gpu_runs_every_iteration_and_learns(small, tmp_path, config, precision):
    summary = fit(config, small, tmp_path, "--trainer.accelerator=gpu", f"--trainer.precision={precision}", *SHORT[:1])
    iterations = summary["iterations"]
    assert len(iterations) == 2
    # the second iteration's pseudolabels come from the trained model: as good as the first's, on `small`
    assert iterations[-1]["nmi"] >= iterations[0]["nmi"] - 0.05, iterations
