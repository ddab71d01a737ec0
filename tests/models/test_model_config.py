"""The network, its loss and the optimizer are injected into the LightningModules: no argument is written twice,
each reaches what it configures, and every one is reachable from the configs."""

from __future__ import annotations

import dataclasses
import inspect
from functools import partial

import pytest
import torch

from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.eval.detect import DetectionSettings
from utal_lightning.eval.evaluator import Evaluator
from utal_lightning.models import modules
from utal_lightning.models.cola import CoLA
from utal_lightning.models.copl_losses import IOCNetLoss
from utal_lightning.models.iocnet import IOCNet
from utal_lightning.models.losses import CoLALoss

pytestmark = pytest.mark.usefixtures("one_thread")

LINKED = {"num_classes", "feature_dim", "rgb_dim"}  # linked from the data, given to the network by the module

# A valid non-default value for every network argument (a new argument without one fails the test).
NON_DEFAULT = {
    CoLA: dict(
        hidden_dim=8,
        dropout=0.5,
        embed_kernel=5,
        cls_kernel=3,
        cls_depthwise_kernel=3,
        cls_depthwise_dilation=3,
        r_easy=4,
        center_input=True,
        glorot_fans="pytorch",
    ),
    IOCNet: dict(
        hidden_dim=8,
        h_beta=0.5,
        top_l_divisor=2,
        dropout=0.3,
        center_input=True,
        zero_init_agnostic_heads=False,
    ),
}
DIMENSIONS = {CoLA: dict(num_classes=4, feature_dim=12), IOCNet: dict(num_classes=4, feature_dim=12, rgb_dim=5)}
MODULE_OF = {CoLA: modules.CoLAModule, IOCNet: modules.IOCNetModule}
LOSS_OF = {CoLA: CoLALoss, IOCNet: IOCNetLoss}
CONFIG_OF = {CoLA: ["thumos_feel.yaml", "anet_feel.yaml"], IOCNet: ["thumos_copl.yaml", "anet_copl.yaml"]}


def parameters(function) -> set[str]:
    """The named parameters of a callable (no self, no ``*args`` / ``**kwargs``)."""
    params = inspect.signature(function).parameters.values()
    return {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def module_parameters(module: type) -> set[str]:
    """What the LightningModule declares: its own arguments and, through ``**kwargs``, the base's."""
    return parameters(module.__init__) | parameters(modules.LocalizationModule.__init__)


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_no_argument_is_written_twice(network):
    # the module declares none of its network's or loss's arguments (but the data's, which it passes on)
    network_args, loss_args = parameters(network.__init__), {f.name for f in dataclasses.fields(LOSS_OF[network])}
    assert set(NON_DEFAULT[network]) | set(DIMENSIONS[network]) == network_args
    assert module_parameters(MODULE_OF[network]) & (network_args | loss_args) == set(DIMENSIONS[network])
    assert not network_args & loss_args
    evaluator_args = {f.name for f in dataclasses.fields(Evaluator)}  # the inference's, as the baseline's
    detection_args = {f.name for f in dataclasses.fields(DetectionSettings)}
    assert not module_parameters(MODULE_OF[network]) & (evaluator_args | detection_args)
    assert not evaluator_args & detection_args
    for name, value in NON_DEFAULT[network].items():  # the values below do test something
        default = inspect.signature(network.__init__).parameters[name].default
        assert default != value, name


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_the_injected_network_is_built_with_its_arguments_and_the_datas_dimensions(network):
    received: list[dict] = []

    class Recording(network):
        def __init__(self, **kwargs):
            received.append(kwargs)
            super().__init__(**kwargs)

    module = MODULE_OF[network](partial(Recording, **NON_DEFAULT[network]), **DIMENSIONS[network])
    module.reset_weights(0)  # a restart builds the same network
    assert received == [{**NON_DEFAULT[network], **DIMENSIONS[network]}] * 2
    assert isinstance(module.model, network)


def test_cola_arguments_shape_the_network():
    model = modules.CoLAModule(partial(CoLA, **NON_DEFAULT[CoLA]), **DIMENSIONS[CoLA]).model
    assert model.center_input and model.glorot_fans == "pytorch" and model.r_easy == 4
    assert model.dropout.p == 0.5 and model.embed[0].kernel_size == (5,)
    depthwise = model.classifier[1]
    assert depthwise.kernel_size == (3,) and depthwise.dilation == (3,) and depthwise.groups == 4
    assert model(torch.randn(2, 20, 12)).cas.shape == (2, 20, 4)


def test_iocnet_arguments_shape_the_network():
    model = modules.IOCNetModule(partial(IOCNet, **NON_DEFAULT[IOCNet]), **DIMENSIONS[IOCNet]).model
    assert model.dropout.p == 0.3 and model.rgb_dim == 5 and model.h_beta == 0.5 and model.top_l(20) == 10
    assert model.embed_rgb[0].in_channels == 5 and model.embed_flow[0].in_channels == 7
    assert model.center_input and model.attention_rgb.weight.abs().sum() > 0  # PyTorch's init, not zero heads


def test_the_injected_optimizer_gets_the_networks_parameters():
    optimizer = partial(torch.optim.SGD, lr=0.5, momentum=0.9)
    module = modules.CoLAModule(partial(CoLA, hidden_dim=8), optimizer=optimizer, num_classes=3, feature_dim=6)
    built = module.configure_optimizers()
    assert isinstance(built, torch.optim.SGD) and built.defaults["lr"] == 0.5 and built.defaults["momentum"] == 0.9
    assert [id(p) for p in built.param_groups[0]["params"]] == [id(p) for p in module.model.parameters()]


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_every_network_and_loss_argument_is_reachable_from_the_configs(network, capsys):
    for config in CONFIG_OF[network]:
        with pytest.raises(SystemExit) as info:
            main(["fit", "--config", str(CONFIGS / config), "--print_config"])
        assert info.value.code == 0
        printed = capsys.readouterr().out
        model_section = printed[printed.index("\nmodel:") :]
        network_section = model_section[model_section.index("\n    network:") : model_section.index("\n    loss:")]
        assert f"class_path: {network.__module__}.{network.__name__}\n" in network_section
        for name in NON_DEFAULT[network]:
            assert f"\n        {name}:" in network_section, (config, name)
        for field in dataclasses.fields(LOSS_OF[network]):
            assert "\n    loss:" in model_section and f"\n      {field.name}:" in model_section, (config, field.name)
        assert "class_path: torch.optim.Adam" in model_section


@pytest.mark.parametrize(
    "config, fragment",
    [
        ("thumos_feel.yaml", "paper_feel.yaml"),
        ("anet_feel.yaml", "paper_feel.yaml"),
        ("thumos_copl.yaml", "paper_copl_thumos.yaml"),
        ("anet_copl.yaml", "paper_copl_anet.yaml"),
    ],
)
def test_the_paper_fragments_restore_the_papers_form(config, fragment, capsys):
    # docs/paper_tables.md: every shipped default that differs from the papers, switched back by one fragment.
    with pytest.raises(SystemExit) as info:
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / config),
                "--config",
                str(CONFIGS / "ablations" / fragment),
                "--print_config",
            ]
        )
    assert info.value.code == 0
    printed = capsys.readouterr().out
    expected = [
        "class_path: utal_lightning.pseudo.poolers.MeanPooler",  # iteration 1
        "subtract_background: false",
        "subtract_video_background: false",
        "class_scores: network",
        "localization: class_map",
        "test_grid: sampled",
    ]
    if "feel" in config:
        expected += ["attention: sigmoid", "glorot_fans: pytorch"]
    else:
        gamma = "20.0" if "thumos" in config else "2.0"  # a float argument
        expected += [f"gamma: {gamma}", "branch: both", "use_filter: true", "cohesion: size"]
        expected += ["zero_init_agnostic_heads: false"]
    for line in expected:
        assert f" {line}\n" in printed, line
    loop = printed[printed.index("\nloop:") : printed.index("\n  max_iterations:")]
    assert " subtract_background: true\n" not in loop  # neither pooler
    # ... and the shipped config alone has the project's defaults
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / config), "--print_config"])
    shipped = capsys.readouterr().out
    assert " class_path: utal_lightning.pseudo.poolers.DeviationPooler\n" in shipped
    assert " subtract_video_background: true\n" in shipped


def test_a_scripts_model_is_the_one_utal_fit_builds_from_the_config():
    # what benchmarks/bench_train.py drives: the config's model block, the data's dimensions given
    from utal_lightning.lightning_cli import instantiate_model
    from utal_lightning.utils import read_configs

    config = read_configs([str(CONFIGS / "thumos_copl.yaml"), str(CONFIGS / "lite" / "thumos_copl.yaml")])
    module = instantiate_model(config["model"], num_classes=4, feature_dim=64, rgb_dim=32)
    assert isinstance(module, modules.IOCNetModule) and isinstance(module.model, IOCNet)
    assert module.model.embed_rgb[0].in_channels == 32 and module.model.embed_rgb[0].out_channels == 128  # lite
    assert module.loss == IOCNetLoss() and module.shift_channels == 16
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["lr"] == 1e-4
    assert optimizer.defaults["weight_decay"] == 5e-4
