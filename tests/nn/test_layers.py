"""The lecture's layers (nn/layers.py): RBF units, temperature sigmoid, saliency, mixture of experts, tied weights,
skip connections."""

import math

import pytest
import torch
from torch import nn

from trainwell.config import ModelConfig
from trainwell.nn.layers import (
    RBF,
    MixtureOfExperts,
    Saliency,
    SkipMLP,
    TemperatureSigmoid,
    TiedLinear,
    moe_loss,
    responsibilities,
)
from trainwell.nn.models import build_model


def test_rbf_temperature_saliency():
    rbf = RBF(2, 3)
    with torch.no_grad():
        rbf.centres.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))
        rbf.log_widths.copy_(torch.log(torch.tensor([[1.0, 1.0], [2.0, 2.0], [1.0, 4.0]])))
    x = torch.tensor([[1.0, 0.0]])
    expected = torch.exp(-torch.tensor([1.0 + 0.0, 0.0 + 1 / 2, 1.0 + 0.0]))
    assert torch.allclose(rbf(x), expected.unsqueeze(0))
    ts = TemperatureSigmoid(2)
    with torch.no_grad():
        ts.log_temperature.copy_(torch.log(torch.tensor([1.0, 4.0])))
    assert torch.allclose(ts(torch.tensor([[2.0, 2.0]])), torch.sigmoid(torch.tensor([[2.0, 0.5]])))
    sal = Saliency(3)
    with torch.no_grad():
        sal.gain.copy_(torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(sal(torch.ones(2, 3)), torch.tensor([[0.0, 1.0, 2.0]] * 2))


def test_mixture_of_experts_gradients_match_the_formulas():
    torch.manual_seed(0)
    outputs = torch.randn(1, 3, 2, requires_grad=True)
    logits = torch.randn(1, 3, requires_grad=True)
    d = torch.randn(1, 2)
    gates = torch.softmax(logits, dim=1)
    loss = moe_loss(outputs, gates, d)
    loss.backward()
    h = responsibilities(outputs.detach(), gates.detach(), d)
    expected_o = -h.unsqueeze(2) * (d.unsqueeze(1) - outputs.detach())
    assert torch.allclose(outputs.grad, expected_o, atol=1e-6)
    assert torch.allclose(logits.grad, gates.detach() - h, atol=1e-6)
    g = gates.detach()[0]
    o = outputs.detach()[0]
    direct = -math.log(sum(float(g[i]) * math.exp(-0.5 * float(((d - o[i]) ** 2).sum())) for i in range(3)))
    assert float(loss.detach()) == pytest.approx(direct, rel=1e-5)
    moe = MixtureOfExperts(4, 2, experts=3)
    out, gates = moe(torch.randn(5, 4))
    assert out.shape == (5, 3, 2) and torch.allclose(gates.sum(1), torch.ones(5))
    assert moe.predict(torch.randn(5, 4)).shape == (5, 2)


def test_tied_weights_get_the_summed_gradient():
    torch.manual_seed(0)
    tied = TiedLinear(positions=3, in_per_position=2, out_per_position=4)
    x = torch.randn(5, 6)
    tied(x).pow(2).sum().backward()
    copies = [nn.Linear(2, 4) for _ in range(3)]
    for c in copies:
        c.load_state_dict(tied.shared.state_dict())
    out = torch.cat([c(x[:, 2 * i : 2 * i + 2]) for i, c in enumerate(copies)], dim=1)
    out.pow(2).sum().backward()
    assert torch.allclose(tied.shared.weight.grad, sum(c.weight.grad for c in copies), atol=1e-5)


def test_skip_connections_solve_xor_with_the_mlp(workdir):
    m = build_model(ModelConfig(kind="mlp", hidden=[1], skip_io=True), (2,), 2)
    assert isinstance(m[0], SkipMLP)
    assert m(torch.zeros(3, 2)).shape == (3, 2)


def test_saliency_scales_features_and_channels_on_axis_1_as_batchnorm_counts_them():
    gain = torch.tensor([0.0, 1.0, 2.0])
    sal = Saliency(3)
    with torch.no_grad():
        sal.gain.copy_(gain)
    x = torch.randn(2, 3, 4, 5)  # H != W != C: a gain along W would be refused or wrong
    assert torch.equal(sal(x), x * gain[None, :, None, None])
    assert torch.equal(sal(x.to(memory_format=torch.channels_last)), x * gain[None, :, None, None])
    signal = torch.randn(2, 3, 7)
    assert torch.equal(sal(signal), signal * gain[None, :, None])
    rows = torch.randn(4, 3)
    assert torch.equal(sal(rows), rows * gain)
    per_value = Saliency((3, 4, 5))
    with torch.no_grad():
        per_value.gain.copy_(torch.arange(60.0).reshape(3, 4, 5))
    assert torch.equal(per_value(x), x * torch.arange(60.0).reshape(1, 3, 4, 5))


@pytest.mark.parametrize("shape", [(2, 5, 3), (3,), (2, 4)])
def test_saliency_refuses_an_input_whose_axis_1_is_not_its_features(shape):
    with pytest.raises(ValueError, match=r"Saliency\(3\) scales axis 1 .*got an input of shape"):
        Saliency(3)(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"takes inputs of shape \(N, 3, 4\)"):
        Saliency((3, 4))(torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="integer >= 1"):
        Saliency(0)
