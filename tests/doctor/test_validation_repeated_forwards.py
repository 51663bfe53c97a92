"""A validation pass that gives each batch to the model twice (once for the accuracy, once for the loss) evaluates
each validation example once: the doctor's readings of the validation rows count the 300 rows of the user's
validation set as 300, under an explicit ``doctor.watch`` and under ``trainwell watch``, and a validation set that
is the training set still reads as one however often its batches are given."""

import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.repeated_batches import first_of_each
from trainwell.doctor.script_watch import ScriptWatch

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

ROWS = "loop: validation examples"
INPUTS = "loop: validation inputs"


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(5, 12, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 5, (n,), generator=g)
    return centers[y] + torch.randn(n, 12, generator=g), y


def _train(leak=False, reloaded=False):
    """The user's loop: BatchNorm MLP, a validation pass per epoch computing accuracy and loss in two forwards."""
    torch.manual_seed(0)
    x, y = _blobs(600, 1)
    xv, yv = (x[:300], y[:300]) if leak else _blobs(300, 2)
    model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=100)
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            model.train()
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                if reloaded:  # the loader walked once for the accuracy, again for the loss: equal, new tensors
                    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in val_loader)
                    val = sum(float(F.cross_entropy(model(xb), yb, reduction="sum")) for xb, yb in val_loader)
                else:
                    correct = int((model(xv).argmax(1) == yv).sum())
                    val = float(F.cross_entropy(model(xv), yv, reduction="sum"))
            assert 0 <= correct <= len(yv)
            w.validate(val / len(yv))
    return w.report()


def test_a_batch_given_twice_in_a_validation_counts_its_rows_once():
    report = _train()
    for name in (ROWS, INPUTS):
        assert report[name].status == "pass", report[name]
    assert "0 of 300 validation rows" in report[ROWS].value, report[ROWS]
    assert report[INPUTS].value.startswith("300 validation rows"), report[INPUTS]


def test_a_validation_loader_walked_twice_counts_its_rows_once():
    report = _train(reloaded=True)
    assert "0 of 300 validation rows" in report[ROWS].value, report[ROWS]
    assert report[INPUTS].value.startswith("300 validation rows"), report[INPUTS]


def test_the_training_set_validated_in_two_forwards_still_reads_as_training_rows():
    report = _train(leak=True)
    assert report[ROWS].status == "fail", report[ROWS]
    assert report[ROWS].value.startswith("300 of 300 validation rows"), report[ROWS]


def test_only_batches_equal_to_an_earlier_one_are_dropped():
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert first_of_each([a, b, a.clone(), b, a[:2]]) == [0, 1, 4]
    assert first_of_each([a, a.double()]) == [0, 1]  # another dtype is another input


SCRIPT = """
import torch
from torch import nn

torch.manual_seed(1)
centers = 2.0 * torch.randn(5, 12)
def blobs(n):
    y = torch.randint(0, 5, (n,))
    return centers[y] + torch.randn(n, 12), y
x, y = blobs(600)
xv, yv = blobs(300)
model = nn.Sequential(nn.Linear(12, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 5))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(2):
    model.train()
    for i in range(0, 600, 50):
        opt.zero_grad()
        loss_fn(model(x[i:i + 50]), y[i:i + 50]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean()
        val = loss_fn(model(xv), yv)
"""


def test_trainwell_watch_counts_a_validation_forward_given_twice_once(tmp_path):
    path = tmp_path / "twice.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=5)
    [report] = runner.run(str(path), [])
    assert runner.error is None, runner.error
    assert "0 of 300 validation rows" in report[ROWS].value, report[ROWS]
    assert report[INPUTS].value.startswith("300 validation rows"), report[INPUTS]
