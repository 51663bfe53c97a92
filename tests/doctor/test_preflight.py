"""The pre-flight checks (doctor/preflight.py) on models built to fail each one and a healthy one; the doctor as fit
and the ``doctor`` command run it."""

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.doctor_fixtures import WrongBackward, healthy
from tests.helpers import boring_net
from trainwell import init
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.data import load
from trainwell.doctor import preflight as pf
from trainwell.doctor.verdict import Verdict, worst
from trainwell.pipeline import fit


def test_a_healthy_model_passes_every_check(spirals):
    x, y = spirals
    verdicts = pf.run_all(healthy(), x, y)
    assert len(verdicts) == len(pf.CHECKS) == 12
    assert [v.check for v in verdicts if v.status == "fail"] == []
    assert worst(verdicts) in ("pass", "warn")


class Square(nn.Module):
    def forward(self, x):
        return WrongBackward.apply(x)


def test_gradient_check_catches_a_wrong_backward(spirals):
    x, y = spirals
    model = nn.Sequential(nn.Linear(2, 8), Square(), nn.Linear(8, 3))
    assert pf.gradient_check(model, x, y).status == "fail"
    fixed = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
    v = pf.gradient_check(fixed, x, y)
    assert v.status == "pass" and "good" in v.value  # smooth network: <= 1e-7


CLASS_WEIGHTS = torch.tensor([1.0, 3.0, 0.5])  # float32, held by the loss below as a global


def _weighted(out, y):  # a user's class-weighted loss as a plain function: _double_loss cannot convert its weights
    return F.cross_entropy(out, y, weight=CLASS_WEIGHTS)


def test_gradient_check_runs_a_loss_holding_float32_class_weights_itself(spirals):
    """A class-weighted loss holding float32 weights itself - a function over a global, a closure, a partial, a loss
    module: the float64 copy's check runs (the first two used to be skipped with 'expected scalar type Double but
    found Float'), passes on the healthy network and still catches the wrong backward; the weights stay float32."""
    x, y = spirals
    w = CLASS_WEIGHTS.clone()
    for loss in (_weighted, lambda out, t: F.cross_entropy(out, t, weight=w), partial(F.cross_entropy, weight=w),
                 nn.CrossEntropyLoss(weight=w)):
        wrong = nn.Sequential(nn.Linear(2, 8), Square(), nn.Linear(8, 3))
        assert pf.gradient_check(wrong, x, y, loss).status == "fail"
        v = pf.gradient_check(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)), x, y, loss)
        assert v.status == "pass" and "good" in v.value
    assert CLASS_WEIGHTS.dtype == w.dtype == torch.float32


def test_initial_loss_flags_a_last_layer_scaled_x100_and_names_it(spirals):
    x, y = spirals
    model = healthy()
    assert pf.initial_loss(model, x, y).status == "pass"
    with torch.no_grad():
        model[4].weight.mul_(100)
    v = pf.initial_loss(model, x, y)
    assert v.status == "fail" and "layer '4'" in v.advice
    assert pf.initial_loss(healthy(), x, y, F.multi_margin_loss).expected.startswith("(C-1)/C")


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_linear_model_cannot_overfit_xor():
    s = load("xor")
    x, y = s.train
    linear = nn.Sequential(nn.Linear(2, 16), nn.Linear(16, 2))
    assert pf.overfit_tiny_subset(linear, x, y).status == "fail"
    torch.manual_seed(0)
    nonlinear = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    assert pf.overfit_tiny_subset(nonlinear, x, y).status == "pass"


class TrainModeBatchNorm(nn.BatchNorm1d):
    """A planted bug: batch statistics even in eval mode."""

    def forward(self, x):
        return F.batch_norm(x, None, None, self.weight, self.bias, training=True)


def test_batch_independence_catches_batchnorm_stuck_in_train_mode(spirals):
    x, _ = spirals
    buggy = nn.Sequential(nn.Linear(2, 8), TrainModeBatchNorm(8), nn.ReLU(), nn.Linear(8, 3))
    assert pf.batch_independence(buggy, x).status == "fail"
    fine = nn.Sequential(nn.Linear(2, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    assert pf.batch_independence(fine, x).status == "pass"


def test_zero_init_fails_the_symmetry_check(spirals):
    model = init.apply(healthy(), "zeros")
    v = pf.symmetry(model)
    assert v.status == "fail" and "0" in v.value
    assert pf.symmetry(healthy()).status == "pass"


def deep_relu_mlp(scheme, depth=30, width=256):
    torch.manual_seed(0)
    layers, d = [nn.Flatten()], 40
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, 10))
    return init.apply(nn.Sequential(*layers), scheme, generator=torch.Generator().manual_seed(0))


@pytest.mark.slow  # ~1.5 s: a watched loop or check run
def test_variance_propagation_30_relu_layers_xavier_collapses_he_holds():
    s = load("mnist1d")
    x, y = s.train[0][:256], s.train[1][:256]
    xavier = pf._activation_stats(deep_relu_mlp("xavier_normal"), x, y, F.cross_entropy)
    he = pf._activation_stats(deep_relu_mlp("he_normal"), x, y, F.cross_entropy)
    assert xavier[-1][1] / xavier[0][1] < 1e-3  # SCIENCE.md signature
    assert 0.3 <= he[-1][1] / he[0][1] <= 3
    v = pf.variance_propagation(deep_relu_mlp("xavier_normal"), x, y)
    assert v.status == "fail" and "he_normal" in v.advice
    assert pf.variance_propagation(deep_relu_mlp("he_normal"), x, y).status == "pass"


class _ZeroInitResidual(nn.Module):
    """A residual block whose last BatchNorm scale starts at zero (torchvision's zero_init_residual), its
    activations called as functions."""

    def __init__(self, d):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(d, d, bias=False), nn.BatchNorm1d(d)
        self.fc2, self.bn2 = nn.Linear(d, d, bias=False), nn.BatchNorm1d(d)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x):
        return F.relu(x + self.bn2(self.fc2(F.relu(self.bn1(self.fc1(x))))))


def test_variance_propagation_reads_a_zero_initialized_residual_branch_as_silent_by_design():
    """The gradient inside each residual branch is exactly 0 at init when the branch ends in a BatchNorm of scale
    0: not a vanishing signal (the ratio to it was 1e25, a fail advising He init). The silent layers are left out
    and named; the rest of the network is judged."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), _ZeroInitResidual(32), nn.Linear(32, 32), _ZeroInitResidual(32),
                          nn.Linear(32, 3))
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    v = pf.variance_propagation(model, x, y)
    assert v.status == "pass", v
    assert "1.fc1, 1.fc2, 3.fc1, 3.fc2" in v.value and "zero-initialized scale of 1.bn2, 3.bn2" in v.value
    for block in (model[1], model[3]):  # the same model with scale 1: every layer read, nothing left out
        nn.init.ones_(block.bn2.weight)
    assert "left out" not in pf.variance_propagation(model, x, y).value


def test_regularization_checks(spirals):
    x, y = spirals
    model = healthy()
    assert pf.regularization_raises_loss(model, x, y).status == "pass"
    assert pf.regularization_raises_loss(init.apply(healthy(), "zeros"), x, y).status == "warn"
    from trainwell.regularize import l2_penalty

    assert pf.regularization_dominance(model, x, y, lambda m: l2_penalty(m, 1e-4)).status == "pass"
    assert pf.regularization_dominance(model, x, y, lambda m: l2_penalty(m, 10.0)).status == "fail"


def test_input_independent_baseline(spirals):
    x, y = spirals
    assert pf.input_independent_baseline(healthy(), x, y).status == "pass"

    class IgnoresInput(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(3))

        def forward(self, x):
            return self.bias.expand(len(x), 3)

    assert pf.input_independent_baseline(IgnoresInput(), x, y).status == "fail"


@pytest.mark.slow
def test_fit_records_pre_monitor_and_post_verdicts(workdir):
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.hidden=[32]", "train.epochs=5",
                             "doctor.monitor_every=10"])
    res = fit(cfg, out="run", quiet=True)
    phases = [d["phase"] for d in res.summary["doctor"]]
    from trainwell.doctor.preflight import CHECKS

    assert phases.count("pre") == len(CHECKS)  # every registered pre-flight check (an MLP has no geometry check)
    assert "monitor" in phases and phases.count("post") == 3
    for d in res.summary["doctor"]:
        assert {"check", "status", "value", "expected", "advice"} <= set(d)
    assert (res.run_dir / "monitors.jsonl").stat().st_size > 0 and (res.run_dir / "figures" / "histograms.png").exists()
    assert (res.run_dir / "figures" / "first_layer_weights.png").exists()
    assert "Doctor" in (res.run_dir / "report.html").read_text()


@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_doctor_command_exit_codes(workdir, capsys):
    base = ["--set", "data.name=spirals", "--set", "model.kind=mlp", "--set", "model.hidden=[32]"]
    assert main(["doctor", *base]) == 0
    progress = capsys.readouterr().err.splitlines()  # each check named on stderr as it starts, as fit shows them
    assert progress[0].startswith("pre-flight (1 of ") and progress[0].endswith("): parameters registered...")
    assert len(progress) == int(progress[0].split(" of ")[1].split(")")[0])
    assert main(["doctor", *base, "--set", "init.scheme=zeros", "--json"]) == 1
    import json

    out = capsys.readouterr().out
    verdicts = json.loads(out[out.index("["):])
    assert any(v["check"] == "symmetry" and v["status"] == "fail" for v in verdicts)


@pytest.mark.parametrize("dead, status", [(0, "pass"), (3, "pass"), (6, "warn"), (8, "fail")])
def test_dead_units_counts_relu_units_no_example_activates(dead, status):
    model = boring_net(4, 8, 3).train()
    with torch.no_grad():
        model[0].weight.mul_(0.01)
        model[0].bias.fill_(100.0)
        model[0].bias[:dead] = -100.0  # these units' pre-activations are negative for every input
    v = pf.dead_units(model, torch.randn(32, 4))
    assert v.status == status and v.value.startswith(f"{dead / 8:.0%} of the units of '1' (ReLU after Linear(4 -> 8))")
    assert model.training  # the model's mode is restored


def test_dead_units_skips_a_model_without_relu():
    assert pf.dead_units(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)), torch.randn(8, 4)).status == "skip"


def test_preflight_checks_are_addressed_by_name(spirals):
    x, y = spirals
    replaced = Verdict("symmetry", "fail", "replaced", "-")
    verdicts = pf.run_all(healthy(), x[:32], y[:32], replace={"symmetry": lambda s: replaced})
    assert len(verdicts) == len(pf.CHECKS) and verdicts[list(pf.CHECKS).index("symmetry")] is replaced
    with pytest.raises(ValueError, match="replace='symetry' is not a pre-flight check: use one of parameters"):
        pf.run_all(healthy(), x, y, replace={"symetry": lambda s: replaced})


def test_the_learning_checks_train_their_copy_as_torch_adam_does():
    """``_train_copy`` (the copy the baseline, overfit and other learning checks train, with torch's fused Adam
    where it applies) against a hand-written loop with torch's reference (single-tensor) Adam: the same weights
    to float rounding after 30 full-batch steps, and the user's model untouched."""
    from trainwell.doctor.fitting import _train_copy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    trained, last = _train_copy(model, x, y, F.cross_entropy, steps=30, lr=1e-2, seed=0)
    ref = copy.deepcopy(model)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, foreach=False)
    for _ in range(30):
        loss = F.cross_entropy(ref(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for (name, a), b in zip(trained.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert last == pytest.approx(float(loss.detach()), rel=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_fit_shorter_than_the_monitor_cadence_is_still_observed(workdir):
    # spirals: 810 training rows in batches of 128 -> 7 steps, far fewer than one in 50
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.hidden=[16]", "train.epochs=1",
                             "doctor.preflight=false", "report.enabled=false"])
    res = fit(cfg, out="run", quiet=True)
    from trainwell.rundir import read_jsonl

    assert len(read_jsonl(res.run_dir / "monitors.jsonl")) >= 1
    monitors = next(d for d in res.summary["doctor"] if d["check"].startswith("monitor"))
    assert "no step observed" not in monitors["value"]
