"""Dead ReLUs the monitor finds while a loop cause drives the steps (gradients summed over steps without
``zero_grad()``, batches sorted by label) name that cause and keep their level: "lower the learning rate" is not
what to do first. Without a loop cause (a rate simply too high) they keep the monitor's own advice."""

import torch
from torch import nn

from trainwell import doctor
from trainwell.doctor.loop_deferral import defer
from trainwell.doctor.verdict import Verdict

DEAD = Verdict("monitor: dead ReLUs", "warn", "body.4 at step 50: 98% of units never active",
               "at most 50% of a layer's units never active",
               "lower the learning rate, use He init with a small positive bias, or leaky ReLU")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.body(x))


def _run(zero_grad: bool):
    g = torch.Generator().manual_seed(0)
    centers = 2.5 * torch.randn(4, 8, generator=g)
    y = torch.randint(0, 4, (512,), generator=g)
    x = centers[y] + torch.randn(512, 8, generator=g)
    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _epoch in range(3):
            perm = torch.randperm(512)
            for i in range(0, 512, 32):
                idx = perm[i:i + 32]
                if zero_grad:
                    opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return w.report()


def test_units_killed_by_gradients_summed_over_steps_name_the_missing_zero_grad():
    report = _run(zero_grad=False)
    by_check = {v.check: v for v in report.verdicts}
    assert by_check["loop: gradients at optimizer.step()"].status == "fail"
    dead = [v for v in report.verdicts if v.check == "monitor: dead ReLUs" and v.status == "warn"]
    assert dead, [(v.check, v.status, v.value) for v in report.verdicts]
    for v in dead:
        assert "explained by 'loop: gradients at optimizer.step()'" in v.value
        assert v.advice.startswith("fix 'loop: gradients at optimizer.step()' first")
    assert report.likely_cause.check == "loop: gradients at optimizer.step()"


def test_the_same_loop_with_zero_grad_has_no_dead_units():
    report = _run(zero_grad=True)
    assert not [v for v in report.verdicts if v.status in ("warn", "fail")], report.verdicts


def test_a_loop_cause_on_the_training_steps_explains_dead_units_and_keeps_their_level():
    sorted_labels = Verdict("loop: labels", "warn", "batches differ from the run's label mix by 0.75", "-",
                            "shuffle")
    out = {v.check: v for v in defer([sorted_labels, DEAD])}["monitor: dead ReLUs"]
    assert out.status == "warn" and out.value.endswith("(explained by 'loop: labels')")
    assert out.advice.startswith("fix 'loop: labels' first") and "lower the learning rate" in out.advice


def test_without_a_loop_cause_or_with_one_in_the_validations_only_dead_units_keep_their_advice():
    assert defer([DEAD]) == [DEAD]
    validation = Verdict("loop: validation inputs", "warn", "the validation inputs are not preprocessed", "-", "x")
    out = {v.check: v for v in defer([validation, DEAD])}["monitor: dead ReLUs"]
    assert out.advice == DEAD.advice and "explained by" not in out.value
