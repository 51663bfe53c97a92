import pytest
import torch
from torch import nn

from trainwell.cnn.geometry import GeometryError, conv_output_size
from trainwell.config import ModelConfig
from trainwell.errors import ConfigError
from trainwell.nn.models import build_model


@pytest.mark.parametrize("act, cls", [("relu", nn.ReLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid),
                                      ("leaky_relu", nn.LeakyReLU), ("linear", nn.Identity)])
def test_mlp_has_the_requested_widths_and_activation(act, cls):
    m = build_model(ModelConfig(kind="mlp", hidden=[7, 5], activation=act), (1, 40), 10)
    linears = [l for l in m if isinstance(l, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(40, 7), (7, 5), (5, 10)]
    assert sum(isinstance(l, cls) for l in m) == 2
    assert m(torch.randn(3, 1, 40)).shape == (3, 10)


def test_mlp_without_hidden_layers_is_logistic_regression():
    m = build_model(ModelConfig(kind="mlp", hidden=[]), (2,), 3)
    assert [type(l) for l in m] == [nn.Flatten, nn.Linear]


def test_default_cnn_on_mnist1d_matches_hand_computed_geometry():
    m = build_model(ModelConfig(), (1, 40), 10)
    convs = [l for l in m if isinstance(l, nn.Conv1d)]
    assert len(convs) == 4
    x = torch.randn(2, 1, 40)
    sizes = []
    for layer in m:
        x = layer(x)
        if isinstance(layer, nn.Conv1d):
            sizes.append(x.shape[-1])
    assert sizes == [40, 20, 10, 5]


def test_2d_cnn_with_pooling_and_dense_layers():
    blocks = [{"type": "conv", "channels": 8, "kernel": 3, "padding": 1}, {"type": "pool", "kind": "avg"},
              {"type": "conv", "channels": 4, "kernel": [3, 1]}, {"type": "pool", "kind": "max", "kernel": [2, 4]}]
    m = build_model(ModelConfig(kind="cnn", blocks=blocks, dense=[16]), (1, 8, 8), 10)
    assert any(isinstance(l, nn.AvgPool2d) for l in m) and any(isinstance(l, nn.MaxPool2d) for l in m)
    assert m(torch.randn(5, 1, 8, 8)).shape == (5, 10)


def test_impossible_geometry_in_strict_mode_fails_before_training_with_the_formula():
    blocks = [{"type": "conv", "channels": 4, "kernel": 3, "stride": 2}]
    with pytest.raises(GeometryError, match=r"\(10-3\+2\*0\)/2\+1 = 4.5 is not an integer.*\[1, 7\]"):
        build_model(ModelConfig(kind="cnn", blocks=blocks, geometry="strict"), (1, 10), 2)


def test_conv_output_size_examples_from_the_lecture():
    assert conv_output_size(227, 11, 4, 0) == 55
    assert conv_output_size(10, 3, 1, 0) == 8 and conv_output_size(10, 3, 7, 0) == 2
    with pytest.raises(GeometryError, match="larger than the padded input"):
        conv_output_size(3, 5)


@pytest.mark.parametrize(
    "blocks, shape, fragment",
    [
        ([{"type": "dense"}], (1, 8), "model.blocks\\[0\\].type = 'dense'"),
        ([{"type": "conv"}], (1, 8), "needs 'channels'"),
        ([{"type": "conv", "channels": 2, "kernal": 3}], (1, 8), "unknown key model.blocks\\[0\\].'kernal'"),
        ([{"type": "pool", "kind": "median"}], (1, 8), "kind = 'median'"),
        ([{"type": "conv", "channels": 2, "kernel": [3, 3, 3]}], (1, 8, 8), "list of 2 integers"),
        ([], (4,), "needs \\(C, L\\) or \\(C, H, W\\)"),
    ],
)
def test_bad_block_specs_are_config_errors(blocks, shape, fragment):
    with pytest.raises(ConfigError, match=fragment):
        build_model(ModelConfig(kind="cnn", blocks=blocks), shape, 2)
