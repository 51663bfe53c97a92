"""A multi-task model with one ``nn.ModuleDict`` head per task, the task chosen per batch (``model(x, task)``):
the same image is a digit for one head and a parity for another, so a row that comes back under another task
comes back with another label, and each task's batches have their own label mix. Neither is a loop bug: the rows
are compared, and the label mix tested, per task. Labels shuffled apart from their inputs are still named."""

import pytest
import torch
from torch import nn

from trainwell import doctor

TASKS = {"digit": (lambda y: y, 6), "parity": (lambda y: y % 2, 2), "big": (lambda y: (y >= 3).long(), 2)}


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(32, c) for k, (_, c) in TASKS.items()})

    def forward(self, x, task="digit"):
        return self.heads[task](self.trunk(x))


def _run(shuffled_apart: bool):
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = x[:, :6].argmax(1)
    model = MultiTask()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    names = list(TASKS)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(9):
            labels = y[torch.randperm(len(y))] if shuffled_apart else y  # the bug: labels drawn apart each epoch
            for k, i in enumerate(torch.randperm(len(x)).split(32)):
                task = names[k % len(names)]  # one task per batch, in turn
                t = TASKS[task][0](labels[i])
                loss = loss_fn(model(x[i], task), t)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=t)
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {apart: _run(apart) for apart in (False, True)}


@pytest.mark.slow  # ~0.5 s each
def test_rows_under_another_task_keep_their_labels_per_task(reports):
    healthy = reports[False]
    checks = [v.check for v in healthy.verdicts]
    assert "loop: labels follow their inputs" not in checks, healthy
    assert healthy["loop: labels"].status == "pass", healthy["loop: labels"]
    assert reports[True]["loop: labels follow their inputs"].status == "fail", reports[True]


class StepAware(nn.Module):
    """A forward that takes the step's index (a drop-path or curriculum schedule): no task."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 6))

    def forward(self, x, step=0):
        return self.net(x)


def test_a_step_index_given_to_forward_is_no_task_and_sorted_labels_are_still_named():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = x[:, :6].argmax(1)
    order = torch.argsort(y)  # the bug: data sorted by label, never shuffled
    x, y = x[order], y[order]
    model = StepAware()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for step, i in enumerate(torch.arange(len(x)).split(16)):
            loss = nn.functional.cross_entropy(model(x[i], step), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i])
    assert w.report()["loop: labels"].status == "warn"
