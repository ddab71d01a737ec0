import os

# Tests are offline, and CPU-only unless UTAL_TEST_CUDA=1 (benchmarks/gpu_suite.sh sets it): then the tests
# marked `gpu` run on the machine's CUDA device (they skip where there is none).
os.environ.setdefault("WANDB_MODE", "disabled")
if os.environ.get("UTAL_TEST_CUDA") != "1":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Under pytest-xdist (`make test`: one worker per core) each worker, and every `utal` process it starts,
# runs one intra-op thread: workers with a thread per core each would oversubscribe the cores many times.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest


@pytest.fixture(scope="session")
def small(tmp_path_factory):
    """The `small` synthetic preset (seed 0), written once for every end-to-end test."""
    from utal_lightning.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset("small", tmp_path_factory.mktemp("data") / "small", seed=0)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """The `tiny` synthetic preset (seed 0): for runs that only need the loop to go round."""
    from utal_lightning.data.synthetic import write_synthetic_dataset

    return write_synthetic_dataset("tiny", tmp_path_factory.mktemp("data") / "tiny", seed=0)


@pytest.fixture()
def one_thread():
    """For tests of tiny tensors: intra-op threads only add contention on a shared, loaded CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
