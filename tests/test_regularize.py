import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.config import ModelConfig, load_config
from trainwell.data.augment import augment_image, augment_signal, build, gaussian_noise
from trainwell.nn.dropout import DropActivation
from trainwell.nn.l0 import L0Linear, deterministic_gates, expected_l0, sample_gates
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
from trainwell.nn.sdr import SDRLinear, sdr_layers
from trainwell.pipeline import fit
from trainwell.regularize import (
    ActivityPenalty,
    Penalty,
    count_nonzero,
    elastic_penalty,
    l1_penalty,
    l2_penalty,
    max_norm_,
    penalized_parameters,
)
from trainwell.train import Trainer
from trainwell.train.callbacks import Callback
from trainwell.train.constraints import SDRUpdate


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


def test_l0_training_makes_the_model_sparse(workdir):
    cfg = load_config(None, ["data.name=digits", "model.kind=mlp", "model.hidden=[64]", "model.l0=true",
                             "regularize.l0=0.003", "train.epochs=25", "optim.lr=0.05", "report.enabled=false",
                             "doctor.preflight=false"])
    res = fit(cfg, out="l0", quiet=True)
    reg = res.summary["regularize"]
    assert reg["l0_sparsity"] > 0.5 and reg["density"] < 0.5  # the closed gates zero the effective weights
    assert res.summary["final"]["test_acc"] > 0.85


def test_drop_activation_signatures():
    torch.manual_seed(0)
    x = torch.randn(500)
    layer = DropActivation(0.7)
    mean_train = torch.stack([layer(x) for _ in range(4000)]).mean(0)
    layer.eval()
    assert torch.allclose(mean_train, layer(x), atol=0.05)  # average of training passes ~ test pass
    assert torch.allclose(layer(x), torch.where(x > 0, x, 0.3 * x))  # leaky ReLU with slope 1 - keep
    layer.train()
    assert torch.equal(DropActivation(1.0)(x), torch.relu(x))
    assert torch.equal(DropActivation(0.0)(x), x)


def test_sdr_with_zero_beta_and_sigma_equals_plain_sgd_bit_for_bit():
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))

    def train(cls, **kw):
        torch.manual_seed(0)
        model = nn.Sequential(cls(5, 8, **kw), nn.ReLU(), cls(8, 3, **kw))
        cbs = [SDRUpdate(beta=0.0, zeta=0.99)] if cls is SDRLinear else []
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=3, batch_size=16, callbacks=cbs,
                device="cpu", seed=0).fit((x, y))
        return [p.detach() for p in model.parameters()]

    for a, b in zip(train(nn.Linear), train(SDRLinear, sigma0=0.0), strict=True):
        assert torch.equal(a, b)


class _SigmaLog(Callback):
    """After every batch and at every epoch end, whether any SDR sigma changed (placed after SDRUpdate)."""

    def __init__(self):
        self.changed, self.last = [], None

    def _record(self, state, where):
        now = [layer.sigma.clone() for layer in sdr_layers(state.model)]
        self.changed.append((where, any(not torch.equal(a, b) for a, b in zip(now, self.last, strict=True))))
        self.last = now

    def on_fit_start(self, state):
        self.last = [layer.sigma.clone() for layer in sdr_layers(state.model)]

    def on_batch_end(self, state):
        self._record(state, "batch")

    def on_epoch_end(self, state):
        self._record(state, "end")


@pytest.mark.parametrize(("per_epoch", "steps_per_epoch", "expected"),
                         [(None, None, 12), (2, 4, 6), (2, None, 5), (4, 4, 12)])
def test_sdr_sigma_update_schedule(per_epoch, steps_per_epoch, expected):
    """Reference code (sdr-densenet): twice per epoch; every step as an option. 3 epochs of 4 batches."""
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))
    torch.manual_seed(0)
    model = nn.Sequential(SDRLinear(5, 8, sigma0=0.01), nn.ReLU(), SDRLinear(8, 3, sigma0=0.01))
    sdr = SDRUpdate(beta=1.0, zeta=0.99, per_epoch=per_epoch, steps_per_epoch=steps_per_epoch)
    Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=3, batch_size=16, callbacks=[sdr],
            device="cpu", seed=0).fit((x, y))
    assert sdr.updates == expected
    with pytest.raises(ValueError, match="per_epoch=0"):
        SDRUpdate(per_epoch=0)


def test_sdr_twice_per_epoch_updates_mid_epoch_and_at_the_end():
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))
    torch.manual_seed(0)
    model = nn.Sequential(SDRLinear(5, 8, sigma0=0.01), nn.ReLU(), SDRLinear(8, 3, sigma0=0.01))
    log = _SigmaLog()
    Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16, device="cpu", seed=0,
            callbacks=[SDRUpdate(beta=1.0, per_epoch=2, steps_per_epoch=4), log]).fit((x, y))
    epoch = [("batch", False), ("batch", True), ("batch", False), ("batch", False), ("end", True)]
    assert log.changed == epoch + epoch  # after batch 2 of 4 (mid-epoch) and at the end of each epoch


def test_sdr_sigma_grows_with_the_gradient_and_decays():
    layer = SDRLinear(3, 2, sigma0=0.1)
    layer.weight.grad = torch.full_like(layer.weight, 0.5)
    layer.update_sigma(beta=2.0, zeta=0.5)
    assert torch.allclose(layer.sigma, torch.full_like(layer.sigma, 0.5 * (2.0 * 0.5 + 0.1)))
    layer.eval()
    x = torch.randn(4, 3)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))  # test time uses mu
    layer.train()
    assert not torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


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


def test_augmentations_are_seeded_and_training_only():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x = torch.randn(8, 1, 40)
    a, b = augment_signal(x, g1, shift=3, scale=0.2), augment_signal(x, g2, shift=3, scale=0.2)
    assert torch.equal(a, b) and not torch.equal(a, x)
    shifted = augment_signal(x, torch.Generator().manual_seed(1), shift=3, scale=0.0)
    for i in range(8):  # each example is a circular shift of itself
        assert any(torch.equal(shifted[i], torch.roll(x[i], k, dims=-1)) for k in range(-3, 4))
    img = torch.randn(6, 3, 8, 8)
    out = augment_image(img, torch.Generator().manual_seed(0), crop_padding=2, flip=True)
    assert out.shape == img.shape
    flipped = augment_image(img, torch.Generator().manual_seed(0), flip=True)
    for i in range(6):
        assert torch.equal(flipped[i], img[i]) or torch.equal(flipped[i], img[i].flip(-1))
    noisy = gaussian_noise(torch.zeros(100000), 0.5, torch.Generator().manual_seed(0))
    assert float(noisy.std()) == pytest.approx(0.5, rel=0.02)
    assert build("none") is None


@pytest.mark.parametrize("setting", [["regularize.l2=0.001"]] + [pytest.param(s, marks=pytest.mark.slow) for s in [
    ["regularize.l1=0.0001"], ["regularize.max_norm=3.0"],
    ["model.dropout_keep=0.8"], ["model.activation=drop_activation"], ["model.kind=mlp", "model.sdr=true"],
    ["model.l0=true", "regularize.l0=0.0001"], ["augment.kind=signal"], ["augment.input_noise=0.1"],
    ["model.kind=mlp", "model.activation=sigmoid", "regularize.activity=0.001"],
]])
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


def test_weight_decay_leaves_l0_gates_alone():
    from trainwell.nn.l0 import L0Linear
    from trainwell.optim import build_optimizer

    layer = L0Linear(4, 3)
    before = layer.log_alpha.detach().clone()
    opt = build_optimizer(layer, "sgd", lr=0.1, weight_decay=0.5)
    opt.zero_grad()
    opt.step()  # no gradients: only decay could move a parameter
    assert torch.equal(layer.log_alpha, before)


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


@pytest.mark.parametrize(("per_epoch", "updates"), [(2, 4), (0, 12)])
def test_config_sets_the_sdr_schedule(workdir, monkeypatch, per_epoch, updates):
    import trainwell.train.constraints as constraints

    made = []
    real_init = constraints.SDRUpdate.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(constraints.SDRUpdate, "__init__", spy)
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.sdr=true", "train.epochs=2",
                             "report.enabled=false", "doctor.preflight=false", f"regularize.sdr_per_epoch={per_epoch}"])
    fit(cfg, out="run", quiet=True)
    assert made[-1].steps_per_epoch == 6 and made[-1].updates == updates  # spirals: 6 batches per epoch
