"""L0 regularization with hard-concrete gates (nn/l0.py; Louizos, Welling and Kingma 2018)."""

import pytest
import torch

from trainwell.config import load_config
from trainwell.nn.l0 import L0Linear, deterministic_gates, expected_l0, sample_gates
from trainwell.pipeline import fit
from trainwell.regularize import (
    Penalty,
)


def test_hard_concrete_gate_signatures():
    zero = torch.zeros(1)
    assert float(expected_l0(zero)) == pytest.approx(0.8318, abs=1e-4)
    assert float(deterministic_gates(zero)) == pytest.approx(0.5)
    torch.manual_seed(0)
    samples = sample_gates(torch.zeros(200_000))
    assert float((samples > 0).float().mean()) == pytest.approx(0.8318, abs=0.005)
    assert float(samples.min()) >= 0 and float(samples.max()) <= 1
    assert float((samples == 1).float().mean()) > 0  # the stretch makes exact 0s and 1s possible


def test_l0_linear_uses_gated_weights_and_test_gates_in_eval():
    layer = L0Linear(4, 3)
    with torch.no_grad():
        layer.log_alpha.fill_(-20.0)  # every gate closed
    layer.eval()
    assert torch.allclose(layer(torch.randn(2, 4)), layer.bias.expand(2, 3))
    assert layer.sparsity() == 1.0
    pen = Penalty(layer, l0=0.1)
    assert float(pen(layer).detach()) == pytest.approx(0.1 * float(expected_l0(layer.log_alpha.detach())))


@pytest.mark.slow  # 0.3-1.2 s each
def test_l0_training_makes_the_model_sparse(workdir):
    cfg = load_config(None, ["data.name=digits", "model.kind=mlp", "model.hidden=[64]", "model.l0=true",
                             "regularize.l0=0.003", "train.epochs=25", "optim.lr=0.05", "report.enabled=false",
                             "doctor.preflight=false"])
    res = fit(cfg, out="l0", quiet=True)
    reg = res.summary["regularize"]
    assert reg["l0_sparsity"] > 0.5 and reg["density"] < 0.5  # the closed gates zero the effective weights
    assert res.summary["final"]["test_acc"] > 0.85


def test_weight_decay_leaves_l0_gates_alone():
    from trainwell.nn.l0 import L0Linear
    from trainwell.optim import build_optimizer

    layer = L0Linear(4, 3)
    before = layer.log_alpha.detach().clone()
    opt = build_optimizer(layer, "sgd", lr=0.1, weight_decay=0.5)
    opt.zero_grad()
    opt.step()  # no gradients: only decay could move a parameter
    assert torch.equal(layer.log_alpha, before)
