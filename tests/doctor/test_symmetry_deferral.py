"""A network whose every weight starts at 0: its hidden units stay identical (``loop: symmetry``), and the readings
that follow from that (parameters that get no gradient, outputs that ignore the inputs, ReLUs never active, a flat
loss curve) name the symmetry instead of their own advice (a loss weight of 0, an EmbeddingBag's offsets, a lower
learning rate); the pre-flight's overfit, baseline and variance propagation name it too. Healthy twin: the same
loop with PyTorch's default init."""

import pytest
import torch
from torch import nn

from trainwell import doctor

FOLLOWERS = ("loop: every trainable parameter learns", "loop: inputs reach the outputs", "monitor: dead ReLUs",
             "learning rate (loss curve)")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _data():
    g = torch.Generator().manual_seed(0)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (256,), generator=g)
    return centers[y] + torch.randn(256, 8, generator=g), y


def _model(zeros: bool) -> Net:
    torch.manual_seed(0)
    model = Net()
    if zeros:  # "a clean start"
        for p in model.parameters():
            nn.init.zeros_(p)
    return model


def _watched(zeros: bool):
    x, y = _data()
    model = _model(zeros)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=8) as w:
        for _epoch in range(2):
            perm = torch.randperm(256)
            for i in range(0, 256, 32):
                idx = perm[i:i + 32]
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return w.report()


def test_readings_of_a_zero_init_name_the_symmetry():
    report = _watched(zeros=True)
    by_check = {v.check: v for v in report.verdicts}
    assert by_check["loop: symmetry"].status == "fail"
    deferred = [v for v in report.verdicts if v.check in FOLLOWERS]
    assert deferred, [(v.check, v.status) for v in report.verdicts]
    for v in deferred:
        assert v.status not in ("warn", "fail") and "explained by 'loop: symmetry'" in str(v.value), v
    assert report.likely_cause.check == "loop: symmetry"


def test_a_healthy_init_defers_nothing_to_the_symmetry():
    report = _watched(zeros=False)
    assert not [v for v in report.verdicts if "symmetry" in f"{v.check} {v.value} {v.advice}"]
    assert not [v for v in report.verdicts if v.status in ("warn", "fail")], report.verdicts


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
def test_the_preflight_of_a_zero_init_names_the_symmetry_before_the_variance():
    x, y = _data()
    model = _model(zeros=True)
    report = doctor.check(model, x[:64], y[:64], nn.CrossEntropyLoss(),
                          optimizer=torch.optim.SGD(model.parameters(), lr=0.05))
    by_check = {v.check: v for v in report.verdicts}
    assert by_check["symmetry"].status == "fail"
    for name in ("overfit a tiny subset", "input-independent baseline", "variance propagation"):
        if by_check[name].status in ("warn", "fail"):
            assert (by_check[name].advice or "").startswith("fix 'symmetry' first"), by_check[name]
    penalty = by_check["regularization raises loss"]  # an L2 penalty on all-zero weights is 0 at any strength
    assert penalty.status == "warn" and "(the penalty is 0 at both strengths" in penalty.value, penalty
    assert penalty.advice.startswith("fix 'symmetry' first: every weight is 0"), penalty


@pytest.mark.slow  # ~0.5 s: a check run
def test_a_penalty_that_reads_real_weights_keeps_its_own_advice():
    x, y = _data()
    model = _model(zeros=False)
    v = doctor.check(model, x[:64], y[:64], nn.CrossEntropyLoss())["regularization raises loss"]
    assert v.status == "pass" and "penalty is 0" not in v.value
