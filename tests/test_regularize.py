"""Penalties and constraints (regularize.py): L1, L2 and elastic penalties, max-norm, activity penalties, and
what counts as a weight."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.regularize import (
    ActivityPenalty,
    count_nonzero,
    elastic_penalty,
    l1_penalty,
    l2_penalty,
    max_norm_,
    penalized_parameters,
)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_penalties_skip_biases_and_norm_parameters():
    model = small_model()
    params = penalized_parameters(model)
    assert [p.shape for p in params] == [torch.Size([4, 3]), torch.Size([2, 4])]
    w = [model[0].weight, model[3].weight]
    assert torch.allclose(l2_penalty(model, 0.1), 0.5 * 0.1 * sum((p**2).sum() for p in w))
    assert torch.allclose(l1_penalty(model, 0.1), 0.1 * sum(p.abs().sum() for p in w))
    # one convention: the L2 half of the elastic net is 1/2 lambda sum w^2, as l2_penalty and regularize.l2
    assert torch.allclose(elastic_penalty(model, 0.1, 0.2), 0.1 * sum(p.abs().sum() for p in w)
                          + 0.5 * 0.2 * sum((p**2).sum() for p in w))
    assert torch.allclose(elastic_penalty(model, 0.1, 0.2), l1_penalty(model, 0.1) + l2_penalty(model, 0.2))


def test_l2_penalty_gradient_is_lambda_w():
    model = small_model()
    l2_penalty(model, 0.3).backward()
    assert torch.allclose(model[0].weight.grad, 0.3 * model[0].weight)
    assert model[0].bias.grad is None and model[1].weight.grad is None


def test_max_norm_clips_rows_and_keeps_directions():
    layer = nn.Linear(5, 6)
    with torch.no_grad():
        layer.weight.mul_(torch.arange(1.0, 7.0).unsqueeze(1) * 3)
    before = layer.weight.detach().clone()
    max_norm_(layer, 1.0)
    norms = layer.weight.norm(dim=1)
    assert torch.all(norms <= 1.0 + 1e-5)
    small = before.norm(dim=1) <= 1.0
    assert torch.allclose(layer.weight[small], before[small])
    cos = F.cosine_similarity(layer.weight, before, dim=1)
    assert torch.allclose(cos, torch.ones(6), atol=1e-5)
    conv = nn.Conv2d(2, 3, 3)
    with torch.no_grad():
        conv.weight.mul_(100)
    max_norm_(conv, 3.0)
    assert torch.all(conv.weight.reshape(3, -1).norm(dim=1) <= 3.0 + 1e-4)


def test_count_nonzero():
    layer = nn.Linear(4, 5)
    with torch.no_grad():
        layer.weight[:2] = 0
    stats = count_nonzero(layer)
    assert stats == {"nonzero": 12, "total": 20, "density": 0.6}


def test_activity_penalty_is_zero_for_binary_outputs_and_at_most_h_over_4():
    model = nn.Sequential(nn.Linear(2, 6), nn.Sigmoid(), nn.Linear(6, 2))
    pen = ActivityPenalty(model, 1.0)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    model(torch.zeros(3, 2))
    value = pen(model)  # outputs exactly 0.5: o(1-o) = 1/4 per unit, 6 units
    assert float(value.detach()) == pytest.approx(6 / 4)
    with torch.no_grad():
        model[0].bias.fill_(100.0)
    model(torch.zeros(3, 2))
    assert float(pen(model).detach()) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="the model has no Sigmoid layer"):
        ActivityPenalty(nn.Linear(2, 2), 1.0)


@pytest.mark.parametrize("setting", [["regularize.l2=0.001"]] + [pytest.param(s, marks=pytest.mark.slow) for s in [
    ["regularize.l1=0.0001"], ["regularize.max_norm=3.0"],
    ["model.dropout_keep=0.8"], ["model.activation=drop_activation"], ["model.kind=mlp", "model.sdr=true"],
    ["model.l0=true", "regularize.l0=0.0001"], ["augment.kind=signal"], ["augment.input_noise=0.1"],
    ["model.kind=mlp", "model.activation=sigmoid", "regularize.activity=0.001"],
]])
@pytest.mark.slow  # 0.3-1.2 s each
def test_each_regularizer_runs_on_mnist1d(workdir, setting):
    cfg = load_config(None, setting + ["train.epochs=1", "report.enabled=false", "doctor.preflight=false"])
    res = fit(cfg, out="run", quiet=True)
    assert res.summary["epochs"] == 1 and math.isfinite(res.summary["final"]["test_loss"])
    if any(s.startswith(("regularize.l", "regularize.activity")) for s in setting):
        from trainwell.rundir import read_jsonl

        assert read_jsonl(res.run_dir / "metrics.jsonl")[0]["reg_loss"] > 0


def test_gate_logits_and_rbf_widths_are_not_weights():
    from trainwell.nn.l0 import L0Linear
    from trainwell.nn.layers import RBF
    from trainwell.optim import param_groups
    from trainwell.regularize import l2_penalty, penalized_parameters

    model = nn.Sequential(L0Linear(4, 3), RBF(3, 2))
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in penalized_parameters(model)) == ["0.weight", "1.centres"]
    decayed = next(g for g in param_groups(model, 0.01) if g["weight_decay"] > 0)["params"]
    assert sorted(names[id(p)] for p in decayed) == ["0.weight", "1.centres"]
    expected = 0.5 * 2.0 * (model[0].weight.pow(2).sum() + model[1].centres.pow(2).sum())
    assert torch.allclose(l2_penalty(model, 2.0), expected)


def test_max_norm_constrains_the_weight_a_pruned_layer_uses():
    from torch.nn.utils import prune as torch_prune

    from trainwell.regularize import max_norm_

    layer = nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight.mul_(50)
    torch_prune.random_unstructured(layer, "weight", amount=0.5)
    max_norm_(layer, 1.0)
    x = torch.randn(5, 6)
    used = layer.weight_orig * layer.weight_mask
    assert torch.all(used.norm(dim=1) <= 1.0 + 1e-5)
    assert torch.allclose(layer(x), x @ used.T + layer.bias)  # the forward pass sees the constrained weight


def test_negative_or_non_numeric_strengths_are_refused_with_the_argument_named():
    from trainwell.regularize import Penalty

    model = small_model()
    calls = {
        "strength": [lambda v: l1_penalty(model, v), lambda v: l2_penalty(model, v),
                     lambda v: ActivityPenalty(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), v)],
        "l1": [lambda v: elastic_penalty(model, v, 0.1), lambda v: Penalty(model, l1=v)],
        "l2": [lambda v: elastic_penalty(model, 0.1, v), lambda v: Penalty(model, l2=v)],
        "activity": [lambda v: Penalty(model, activity=v)],
        "l0": [lambda v: Penalty(model, l0=v)],
    }
    for name, fns in calls.items():
        for fn in fns:
            for bad in (-1.0, float("nan"), float("inf")):
                with pytest.raises(ValueError, match=rf"^{name}=-?(1\.0|nan|inf) is not allowed: use a number >= 0"):
                    fn(bad)
            for bad in ("0.1", None, True):
                with pytest.raises(TypeError, match=rf"^{name}=.* is not allowed: use a number >= 0"):
                    fn(bad)
    assert float(l2_penalty(model, 0).detach()) == 0.0 and float(l1_penalty(model, torch.tensor(0.5)).detach()) > 0


def test_penalties_take_the_model_not_a_tensor():
    weights = torch.randn(3, 3)
    for fn in (l1_penalty, l2_penalty):
        with pytest.raises(TypeError, match=r"takes the model \(an nn.Module"):
            fn(weights, 0.1)
    with pytest.raises(TypeError, match="max_norm_ takes the model"):
        max_norm_(weights, 3.0)


def test_max_norm_names_the_layers_it_leaves_unconstrained():
    from trainwell.regularize import SkippedLayersWarning

    torch.manual_seed(0)
    model = nn.ModuleDict({"emb": nn.Embedding(10, 8), "lstm": nn.LSTM(8, 8), "out": nn.Linear(8, 2)})
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(100.0)
    lstm_before = [p.clone() for p in model["lstm"].parameters()]
    with pytest.warns(SkippedLayersWarning, match=r"max_norm_ .* emb \(Embedding\), lstm \(LSTM\)"):
        max_norm_(model, 1.0)
    assert float(model["out"].weight.detach().norm(dim=1).max()) <= 1.0 + 1e-5
    assert all(torch.equal(a, b) for a, b in zip(lstm_before, model["lstm"].parameters(), strict=True))


@pytest.mark.parametrize("model", [nn.ReLU(), nn.Sequential(nn.ReLU(), nn.Flatten())])
def test_a_penalty_of_a_model_without_parameters_is_zero(model):
    from trainwell.regularize import Penalty

    penalty = Penalty(model, l1=0.1, l2=0.1)
    value = penalty(model)
    assert isinstance(value, torch.Tensor) and value.shape == () and float(value) == 0.0
    assert float(l2_penalty(model, 0.1)) == float(l1_penalty(model, 0.1)) == 0.0  # what the parts give alone


def test_the_activity_penalty_covers_only_forwards_made_with_the_current_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Sigmoid())
    pen = ActivityPenalty(model, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(16, 3)
    model(x).sum().backward()  # a step that never called the penalty: its outputs are stale after opt.step()
    opt.step()
    opt.zero_grad()
    out = model(x)
    h1 = torch.sigmoid(model[0](x))
    expected = 0.5 * ((h1 * (1 - h1)).sum(1).mean() + (out * (1 - out)).sum(1).mean())
    got = pen(model)
    assert torch.allclose(got, expected)
    got.backward()  # the stale graph (its weights changed in place) is not in it
    assert model[0].weight.grad is not None


@pytest.mark.slow
def test_the_pre_flight_leaves_an_activity_penalized_run_as_it_is(workdir):
    setting = ["model.kind=mlp", "model.hidden=[32, 32]", "model.activation=sigmoid", "regularize.activity=0.01",
               "train.epochs=1", "report.enabled=false"]
    on = fit(load_config(None, setting), out="on", quiet=True)
    off = fit(load_config(None, setting + ["doctor.preflight=false"]), out="off", quiet=True)
    from trainwell.rundir import read_jsonl

    first = [read_jsonl(r.run_dir / "metrics.jsonl")[0] for r in (on, off)]
    assert first[0]["reg_loss"] == first[1]["reg_loss"] and first[0]["train_loss"] == first[1]["train_loss"]


@pytest.mark.parametrize("fused", [True, False])
def test_the_activity_penalty_drops_forwards_before_a_fused_optimizers_step(fused):
    # a fused kernel leaves the weights' version counters as they were: the steps themselves are counted
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Sigmoid())
    pen = ActivityPenalty(model, 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=fused)
    x = torch.randn(16, 3)
    for _ in range(3):  # warm-up steps that do not call the penalty
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    out = model(x)
    got = pen(model)
    assert torch.allclose(got, (out * (1 - out)).sum(1).mean())
    (model(x).sum() * 0 + got).backward()  # no graph of a stale forward to go through twice


def test_a_frozen_backbone_is_not_penalized():
    """Fine-tuning: the backbone's weights cannot move, so an L1/L2 term on them would be a constant added to the
    loss; the penalties and weight decay act on the head's weight alone."""
    model = small_model()
    model[0].requires_grad_(False)
    assert penalized_parameters(model) == [model[3].weight]
    assert torch.allclose(l2_penalty(model, 0.1), 0.5 * 0.1 * (model[3].weight ** 2).sum())
    assert torch.allclose(l1_penalty(model, 0.1), 0.1 * model[3].weight.abs().sum())


def test_max_norm_leaves_frozen_weights_alone():
    torch.manual_seed(0)
    model = small_model()
    with torch.no_grad():
        model[0].weight.mul_(10.0)
        model[3].weight.mul_(10.0)
    model[0].requires_grad_(False)
    frozen = model[0].weight.detach().clone()
    max_norm_(model, 1.0)
    assert torch.equal(model[0].weight, frozen)
    assert torch.allclose(model[3].weight.norm(dim=1), torch.ones(2))
