"""A validation set evaluated twice after each epoch (``evaluate(loader)`` returning the loss and the accuracy, called
once for each) is one validation per epoch: the training loss beside it is the epoch's, not its last batch's; the
epochs that train nothing after an iterator is used up are still named when each is evaluated twice."""

import gc

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(600, 10)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.8).long()
train_loader = DataLoader(TensorDataset(x[:480], y[:480]), batch_size=32, shuffle=True,
                          generator=torch.Generator().manual_seed(1))  # each iter() of a loader draws a seed
val_loader = DataLoader(TensorDataset(x[480:], y[480:]), batch_size=60)
model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 3))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
MODE = sys.argv[1]


def evaluate(loader):
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for xb, yb in loader:
            out = model(xb)
            total += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
            n += len(yb)
    return total / n, correct / n


batches = iter(train_loader)  # the bug: used up after the first epoch
history = {"val_loss": [], "val_acc": []}
for epoch in range(4):
    model.train()
    for xb, yb in (batches if MODE == "empty" else train_loader):
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if MODE == "once":
        val_loss, val_acc = evaluate(val_loader)
    else:  # the validation set read twice: for the loss, then for the accuracy
        val_loss = evaluate(val_loader)[0]
        val_acc = evaluate(val_loader)[1]
    history["val_loss"].append(val_loss)
    history["val_acc"].append(val_acc)
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The loop evaluating once per epoch, twice per epoch, and twice per epoch with its epochs after the first
    training nothing, each under the script watch (~1 s each)."""
    path = tmp_path_factory.mktemp("repeated") / "train.py"
    path.write_text(SCRIPT)
    found = {}
    for mode in ("once", "twice", "empty"):
        runner = ScriptWatch(every=20)
        [report] = runner.run(str(path), [mode])
        assert runner.error is None, runner.error
        [w] = runner.watches
        found[mode] = ({v.check: v for v in report.verdicts}, (len(w._val), w._history(None)),
                       runner._globals["history"])
        del runner, w  # its optimizer gone before the next run: each finds its own alone, as in a process of its own
        gc.collect()
    return found


@pytest.mark.slow  # the module's runs
def test_a_validation_set_read_twice_an_epoch_reads_as_the_loop_reading_it_once(reports):
    once, w_once, h_once = reports["once"]
    twice, w_twice, h_twice = reports["twice"]
    assert h_once == h_twice  # the same training, the same numbers
    assert w_twice[0] == 8 and len(w_twice[1]) == len(w_once[1]) == 4  # one validation per epoch
    for a, b in zip(w_twice[1], w_once[1], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"]) and a["val_loss"] == pytest.approx(b["val_loss"])
    assert twice["overfitting"].value == once["overfitting"].value  # the gap to the epoch's training loss
    assert twice["overfitting"].status == once["overfitting"].status == "pass"


@pytest.mark.slow  # the module's runs
def test_epochs_training_nothing_are_named_when_each_is_evaluated_twice(reports):
    empty, w, _ = reports["empty"]
    assert empty["loop: steps between validations"].status == "fail"
    assert len(w[1]) == w[0] == 8  # one step count validated: not one evaluation repeated


def test_repeats_are_read_only_from_a_uniform_pattern():
    from trainwell.doctor.repeated_validations import once_each, repeats

    assert once_each([(10, 1.0), (10, 1.0), (20, 0.8), (20, 0.8)]) == [(10, 1.0), (20, 0.8)]
    # a final evaluation after the loop, of the same weights
    assert once_each([(10, 1.0), (10, 1.0), (20, 0.8), (20, 0.8), (20, 0.8)]) == [(10, 1.0), (20, 0.8)]
    assert repeats([(10, 1.0), (10, 1.0), (10, 1.0), (20, 0.8), (20, 0.8)]) == [False] * 5  # not k each
    assert repeats([(10, 1.0), (10, 0.9), (20, 0.8), (20, 0.7)]) == [False] * 4  # a validation and a test loss
    assert repeats([(10, 1.0), (10, 1.0), (10, 1.0)]) == [False] * 3  # epochs after the first train nothing
    assert repeats([(0, 2.0), (10, 1.0), (10, 1.0), (20, 0.8), (20, 0.8)]) == [False] * 5  # a baseline at step 0
