"""Every network constructor argument is an argument of its LightningModule, reaches the network,
and is reachable from the configs."""

from __future__ import annotations

import inspect

import pytest
import torch

from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.models import modules
from utal_lightning.models.cola import CoLA
from utal_lightning.models.iocnet import IOCNet

pytestmark = pytest.mark.usefixtures("one_thread")

LINKED = {"num_classes", "feature_dim", "rgb_dim"}  # linked from the data, not written in configs

# A valid non-default value for every network argument (a new argument without one fails the test).
NON_DEFAULT = {
    CoLA: dict(
        num_classes=4,
        feature_dim=12,
        hidden_dim=8,
        dropout=0.5,
        embed_kernel=5,
        cls_kernel=3,
        cls_depthwise_kernel=3,
        cls_depthwise_dilation=3,
        r_easy=4,
        r_hard=10,
        m=2,
        M=5,
        drop_rate=0.3,
        hard_threshold=0.5,
        cls_loss="ce",
        center_input=True,
        glorot_fans="pytorch",
    ),
    IOCNet: dict(
        num_classes=4,
        feature_dim=12,
        rgb_dim=5,
        hidden_dim=8,
        h_beta=0.5,
        top_l_divisor=2,
        dropout=0.3,
        center_input=True,
        zero_init_agnostic_heads=False,
    ),
}
MODULE_OF = {CoLA: modules.CoLAModule, IOCNet: modules.IOCNetModule}
CONFIG_OF = {CoLA: ["thumos_feel.yaml", "anet_feel.yaml"], IOCNet: ["thumos_copl.yaml", "anet_copl.yaml"]}


def network_parameters(network: type) -> dict[str, inspect.Parameter]:
    return {k: p for k, p in inspect.signature(network.__init__).parameters.items() if k != "self"}


def module_parameters(module: type) -> set[str]:
    """What the LightningModule accepts: its own arguments and, through ``**inference``, the base's."""
    own = inspect.signature(module.__init__).parameters
    names = {k for k, p in own.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    if any(p.kind == p.VAR_KEYWORD for p in own.values()):
        names |= set(inspect.signature(modules.LocalizationModule.__init__).parameters)
    return names - {"self"}


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_every_network_argument_is_a_module_argument(network):
    params = network_parameters(network)
    assert set(NON_DEFAULT[network]) == set(params)
    missing = set(params) - module_parameters(MODULE_OF[network])
    assert not missing, f"{MODULE_OF[network].__name__} does not accept {sorted(missing)}"
    for name, value in NON_DEFAULT[network].items():  # the values below do test something
        assert params[name].default is inspect.Parameter.empty or params[name].default != value, name


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_every_module_argument_reaches_the_network(network, monkeypatch):
    received: list[dict] = []

    class Recording(network):
        def __init__(self, *args, **kwargs):
            received.append(dict(inspect.signature(network.__init__).bind(None, *args, **kwargs).arguments))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(modules, network.__name__, Recording)
    values = NON_DEFAULT[network]
    module = MODULE_OF[network](**values)
    module.reset_weights(0)  # a restart builds the same network
    assert len(received) == 2
    for arguments in received:
        arguments.pop("self")
        assert arguments == values
    assert isinstance(module.model, network)


def test_cola_arguments_shape_the_network():
    model = modules.CoLAModule(**NON_DEFAULT[CoLA]).model
    assert model.hard_threshold == 0.5 and model.drop_rate == 0.3 and model.cls_loss == "ce"
    assert model.center_input and model.glorot_fans == "pytorch"
    assert model.dropout.p == 0.5 and model.embed[0].kernel_size == (5,)
    depthwise = model.classifier[1]
    assert depthwise.kernel_size == (3,) and depthwise.dilation == (3,) and depthwise.groups == 4
    assert model(torch.randn(2, 20, 12)).cas.shape == (2, 20, 4)


def test_iocnet_arguments_shape_the_network():
    model = modules.IOCNetModule(**NON_DEFAULT[IOCNet]).model
    assert model.dropout.p == 0.3 and model.rgb_dim == 5 and model.h_beta == 0.5 and model.top_l(20) == 10
    assert model.embed_rgb[0].in_channels == 5 and model.embed_flow[0].in_channels == 7
    assert model.center_input and model.attention_rgb.weight.abs().sum() > 0  # PyTorch's init, not zero heads


@pytest.mark.parametrize("network", [CoLA, IOCNet], ids=lambda n: n.__name__)
def test_every_network_argument_is_reachable_from_the_configs(network, capsys):
    for config in CONFIG_OF[network]:
        with pytest.raises(SystemExit) as info:
            main(["fit", "--config", str(CONFIGS / config), "--print_config"])
        assert info.value.code == 0
        printed = capsys.readouterr().out
        model_section = printed[printed.index("\nmodel:") :]
        for name in set(network_parameters(network)) - LINKED:
            assert f"\n    {name}:" in model_section, (config, name)


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
