"""``trainwell watch``: the validation loss a script averages itself with the wrong denominator, read from the
script's own local variables (it is never handed to the doctor), named as the explicit ``w.validate()`` names it;
the healthy twins' right averages pass."""

import os
import textwrap

import pytest
import torch

import trainwell
from trainwell.doctor.script_watch import ScriptWatch
from trainwell.doctor.stated_validation import numbers, own_code, script_frames, stated
from trainwell.doctor.validation_average import WRONG_AVERAGE

NAME = "loop: validation loss average"

#: a classifier validated by a function of the script's that returns the average, kept in a dict of lists
EVALUATE = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(448, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
train_ds, val_ds = TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:])
train = DataLoader(train_ds, batch_size=32, shuffle=True)
val = DataLoader(val_ds, batch_size=64)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
MODE = sys.argv[1]


def evaluate(loader):
    model.eval()
    running = 0.0
    with torch.no_grad():
        for xb, yb in loader:
            running += F.cross_entropy(model(xb), yb).item()
    if MODE == "over_examples":
        return running / len(loader.dataset)
    return running / len(loader)


history = {"val": []}
for epoch in range(3):
    model.train()
    for xb, yb in train:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    history["val"].append(evaluate(val))
"""

#: a tagger on padded sequences (-100 at the pads), its validation written at the script's top level
TAGGER = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
V, C, T = 12, 4, 8
tokens = torch.randint(1, V, (320, T))
tags = tokens % C
lengths = torch.randint(2, T + 1, (320,))
pad = torch.arange(T)[None] >= lengths[:, None]
tokens[pad], tags[pad] = 0, -100
model = nn.Sequential(nn.Embedding(V, 16, padding_idx=0), nn.Linear(16, C))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
MODE = sys.argv[1]
for epoch in range(3):
    model.train()
    for i in range(0, 256, 32):
        opt.zero_grad()
        F.cross_entropy(model(tokens[i:i + 32]).view(-1, C), tags[i:i + 32].view(-1)).backward()
        opt.step()
    model.eval()
    total = count = sequences = 0
    with torch.no_grad():
        for i in range(256, 320, 16):
            yb = tags[i:i + 16]
            total += F.cross_entropy(model(tokens[i:i + 16]).view(-1, C), yb.view(-1), reduction="sum").item()
            count += yb.numel() if MODE == "positions" else int((yb != -100).sum())
            sequences += len(yb)
    if MODE in ("per_sequence", "both"):
        per_sequence = total / sequences
    if MODE != "per_sequence":
        val_loss = total / count
    print(f"epoch {epoch}: validation done")
"""


def _run(tmp_path, text: str, mode: str):
    path = tmp_path / f"{mode}.py"
    path.write_text(textwrap.dedent(text))
    runner = ScriptWatch(every=50)
    [report] = runner.run(str(path), [mode])
    assert runner.error is None, runner.error
    return {v.check: v for v in report if v.status in ("warn", "fail")}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    return {mode: _run(tmp, EVALUATE, mode) for mode in ("over_examples", "over_batches")}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tagger")
    return {mode: _run(tmp, TAGGER, mode) for mode in ("positions", "tokens", "per_sequence", "both")}


@pytest.mark.slow  # ~1 s: two runs of a 24-step script
def test_batch_means_summed_over_the_examples_in_the_script_s_own_function_are_named(evaluated):
    verdict = evaluated["over_examples"][NAME]
    assert verdict.status == "fail" and WRONG_AVERAGE in verdict.value
    assert "batch means summed and divided by the 192 examples" in verdict.value
    assert NAME not in evaluated["over_batches"]  # the mean of 3 equal batch means: right


@pytest.mark.slow  # ~1.5 s: four runs of a 24-step script
def test_a_top_level_validation_over_every_padded_position_or_per_sequence_is_named_the_right_one_not(tagged):
    positions = tagged["positions"][NAME]
    assert positions.status == "fail" and "target positions, padding included" in positions.value
    per_sequence = tagged["per_sequence"][NAME]
    assert per_sequence.status == "fail" and "divided by the 64 sequences" in per_sequence.value
    assert NAME not in tagged["tokens"]
    # a loss per sequence kept beside the loss per token: the script's validation is the right one
    assert NAME not in tagged["both"]


def test_the_script_s_value_is_the_one_wrong_average_its_locals_hold_none_beside_a_right_one():
    calls = [(64, "mean", 1.0), (64, "mean", 2.0), (64, "mean", 3.0)]  # batch means 1, 2, 3 over 192 examples
    assert stated([6.0 / 192, 0.5, 17.0], calls, []) == pytest.approx(6.0 / 192)
    assert stated([6.0 / 192, 2.0], calls, []) is None  # the mean of the means (and per example) held too
    assert stated([6.0, 0.5, 17.0], calls, []) is None  # no average at all
    assert stated([6.0 / 192, 64 * 6.0 / 3], calls, []) is None  # two wrong forms: not told which
    assert stated([6.0 / 192], calls[:1], []) is None  # one batch: every average is the same


def test_the_script_s_frames_are_its_own_code_s_with_their_numbers():
    assert not own_code(trainwell.__file__) and not own_code(torch.__file__) and not own_code("<stdin>")
    scope: dict = {}
    exec(compile("def run(f):\n    ratio = 0.25\n    hist = [1, 0.5]\n    t = torch.tensor(2.5)\n    return f()\n",
                 "/tmp/user_train.py", "exec"), {"torch": torch}, scope)
    frames = scope["run"](lambda: script_frames(__import__("sys")._getframe(0)))  # returned: run's locals kept
    assert "run" in [f.f_code.co_name for f in frames]
    assert not any(f.f_code.co_filename.startswith(os.path.dirname(pytest.__file__)) for f in frames)
    run = next(f for f in frames if f.f_code.co_name == "run")
    assert sorted(numbers([run])) == [0.25, 0.5, 2.5]

    class Trainer:  # a trainer keeping its validation loss, and a history of them, as attributes
        def validate(self):
            self.val_loss, self.history = 0.125, {"val": [0.5, 0.375]}
            return __import__("sys")._getframe(0)
    assert set(numbers([Trainer().validate()])) == {0.125, 0.375}
