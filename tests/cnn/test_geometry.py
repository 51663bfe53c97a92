"""Conv and pool geometry (cnn/geometry.py): same padding, torch's floor by default, strict geometry on request."""

import pytest
import torch
from torch import nn

from trainwell.cnn.geometry import GeometryError, same_padding


def test_same_padding():
    assert same_padding(3) == 1 and same_padding(7) == 3
    with pytest.raises(GeometryError, match="odd filter"):
        same_padding(4)
    with pytest.raises(GeometryError, match="stride 1"):
        same_padding(3, S=2)


RESNET_STEM = ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=7, stride=2, padding=3}, "
               "{type='pool', kind='max', kernel=3, stride=2, padding=1}]"]


def test_torch_floor_geometry_is_the_default_and_warns_only_when_input_is_lost():
    from trainwell.config import load_config
    from trainwell.nn.models import build_model
    from trainwell.pipeline import geometry_verdict

    cfg = load_config(None, RESNET_STEM)
    model = build_model(cfg.model, (3, 224, 224), 10)  # a ResNet stem: (224-7+6)/2+1 = 112.5
    ref = nn.Conv2d(3, 4, 7, stride=2, padding=3)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 10)
    assert ref(torch.zeros(1, 3, 224, 224)).shape[-1] == 112  # torch floors the same way
    # the floored row is zero padding: every input pixel reaches the output, so no false alarm
    assert geometry_verdict(model, (3, 224, 224)).status == "pass"
    lossy = load_config(None, ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=3, stride=2}]"])
    v = geometry_verdict(build_model(lossy.model, (1, 10, 10), 10), (1, 10, 10))
    assert v.status == "warn" and "0 (Conv2d): the last 1 along axis 0, 1 along axis 1" in v.value
    tiled = load_config(None, ["model.kind=cnn", "model.blocks=[{type='conv', channels=4, kernel=3, padding=1}]"])
    assert geometry_verdict(build_model(tiled.model, (1, 8, 8), 10), (1, 8, 8)).status == "pass"


def test_strict_geometry_is_an_error():
    from trainwell.cnn.geometry import GeometryError
    from trainwell.config import load_config
    from trainwell.nn.models import build_model

    cfg = load_config(None, RESNET_STEM + ["model.geometry=strict"])
    with pytest.raises(GeometryError, match=r"\(224-7\+2\*3\)/2\+1 = 112.5 is not an integer"):
        build_model(cfg.model, (3, 224, 224), 10)


def test_the_cnn_toolkit_exports_what_the_readme_names():
    import trainwell.cnn as cnn

    assert {"GeometryError", "conv_output_size", "same_padding"} <= set(cnn.__all__)
    assert cnn.same_padding(5) == 2 and cnn.conv_output_size(7, 5, 1, cnn.same_padding(5)) == 7
