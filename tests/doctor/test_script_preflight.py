"""``trainwell watch --check train.py``: the pre-flight (``doctor.check``) of a user's unchanged script, on a copy
of its model as it was at the first step, its first batches, and its loss rebuilt from the loss's graph."""

import gc
import json
import textwrap

import pytest
import torch
import torch._dynamo  # noqa: F401  (imported before any watch, as benchmarks/watch_bugs.py does: imported first inside
import torch.nn.functional as F  # a watch, it would keep that script's optimizer alive, and the next script's watch
from torch import nn

from trainwell.cli import main
from trainwell.doctor.graph_loss import graph_loss
from trainwell.doctor.script_watch import ScriptWatch  # would begin a step later, with two optimizers alive)

SCRIPT = """
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

BUG = sys.argv[1] if len(sys.argv) > 1 else ""
torch.manual_seed(0)
random.seed(0)
np.random.seed(0)
x = torch.randn(384, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))

    def forward(self, h):
        if BUG == "doubled":
            return h + self.body(h) + h
        return h + self.body(h)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(8, 32)
        self.blocks = nn.Sequential(Block(), Block())
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.drop(self.blocks(torch.relu(self.inp(x)))))


def focal(out, t):  # Lin et al. 2017
    ce = F.cross_entropy(out, t, reduction="none")
    return ((1 - torch.exp(-ce)) ** 2 * ce).mean()


def weighted(out, t):  # the examples weighted by a feature of their inputs (read before the forward)
    return (F.cross_entropy(out, t, reduction="none") * WEIGHTS).mean()


model = Net()
if BUG == "zeros":
    for p in model.parameters():
        nn.init.zeros_(p)
if BUG in ("focal_large", "smooth_large"):  # the scores 30x too large at init
    with torch.no_grad():
        model.head.weight.mul_(30.0)
        model.head.bias.mul_(30.0)
if BUG in ("focal", "focal_large"):
    loss_fn = focal
elif BUG in ("doubled", "weighted"):
    loss_fn = weighted
elif BUG in ("smooth", "smooth_large"):
    def loss_fn(out, t):
        return F.cross_entropy(out, t, label_smoothing=0.1)
else:
    loss_fn = nn.CrossEntropyLoss(ignore_index=0 if BUG == "ignore0" else -100)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
LOSSES = []
for epoch in range(2):
    model.train()
    for xb, yb in train:
        opt.zero_grad()
        WEIGHTS = 1.0 + (xb[:, 3] > 0).float()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        LOSSES.append(loss.item())
DRAWS = (torch.rand(3), random.random(), np.random.rand())  # the script's draws after training
STATE = {k: v.clone() for k, v in model.state_dict().items()}
"""


def _script(tmp_path, text=SCRIPT, name="train.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _pre(report):
    return [v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"]


def _alarms(verdicts):
    return {v.check: v for v in verdicts if v.status in ("warn", "fail")}


def test_the_loss_is_rebuilt_from_its_graph_as_torch_s_module_or_said_why_not():
    torch.manual_seed(0)
    scores = torch.randn(6, 4, requires_grad=True) * 1.0
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    loss_fn, text = graph_loss(F.cross_entropy(scores, labels, ignore_index=0), [scores])
    assert isinstance(loss_fn, nn.CrossEntropyLoss) and loss_fn.ignore_index == 0 and "ignore_index=0" in text
    assert torch.equal(loss_fn(scores, labels), F.cross_entropy(scores, labels, ignore_index=0))
    loss_fn, _ = graph_loss(F.cross_entropy(scores, labels), [scores])
    assert loss_fn.ignore_index == -100  # torch's default, saved as an unsigned integer in the graph
    # a regressor's (B, 1) output squeezed: rebuilt as an MSELoss on the output flattened as the script did
    out, wanted = torch.randn(6, 1, requires_grad=True) * 1.0, torch.randn(6)
    loss_fn, text = graph_loss(F.mse_loss(out.squeeze(1), wanted), [out])
    assert isinstance(loss_fn, nn.MSELoss) and torch.equal(loss_fn(out, wanted), F.mse_loss(out.squeeze(1), wanted))
    # the second output of a tuple, flattened over (B, T); a reduction="none" loss averaged by .mean()
    tokens, aux = torch.randn(2, 3, 5, requires_grad=True) * 1.0, torch.randn(2, 2, requires_grad=True) * 1.0
    tags = torch.randint(0, 5, (2, 3))
    loss_fn, text = graph_loss(F.cross_entropy(tokens.view(-1, 5), tags.view(-1), reduction="none").mean(),
                               [aux, tokens])
    assert "output 2 of 2" in text and torch.allclose(loss_fn((aux, tokens), tags.view(-1)),
                                                      F.cross_entropy(tokens.view(-1, 5), tags.view(-1)))
    # label smoothing's two terms, (1 - e) NLL + e/C sum(-log p): read as cross-entropy with that smoothing
    for kwargs in ({}, {"reduction": "sum"}, {"ignore_index": 2}, {"weight": torch.rand(4)}):
        smoothed = F.cross_entropy(scores, labels, label_smoothing=0.1, **kwargs)
        loss_fn, text = graph_loss(smoothed, [scores])
        assert isinstance(loss_fn, nn.CrossEntropyLoss) and loss_fn.label_smoothing == 0.1, text
        assert "label_smoothing=0.1" in text and torch.allclose(loss_fn(scores, labels), smoothed)
    loss_fn, _ = graph_loss(F.cross_entropy(scores, labels) + 0.1 * F.cross_entropy(scores, labels), [scores])
    assert loss_fn is None  # a sum of two cross-entropies is no smoothing
    # a focal loss is the script's own arithmetic: not rebuilt, and why is said
    ce = F.cross_entropy(scores, labels, reduction="none")
    loss_fn, why = graph_loss(((1 - torch.exp(-ce)) ** 2 * ce).mean(), [scores])
    assert loss_fn is None and "MeanBackward0 <- MulBackward0" in why


def test_a_loss_written_out_is_replayed_on_other_outputs_unless_it_reads_a_tensor_of_its_batch_s_own():
    from trainwell.doctor.script_watch import saved_target
    from trainwell.doctor.taped_loss import LossTape

    torch.manual_seed(0)
    weight, x, labels = torch.randn(8, 4, requires_grad=True), torch.randn(32, 8), torch.randint(0, 4, (100,))

    def focal(out, t):
        ce = F.cross_entropy(out, t, reduction="none")
        return ((1 - torch.exp(-ce)) ** 2 * ce).mean()

    tape, out = LossTape(), x @ weight
    tape.start([out])
    t = labels[:32]  # the batch's labels sliced after the forward: the slice is not replayed, the labels are given
    loss = focal(out, t)
    taped = tape.loss(loss, saved_target(loss), {32})
    other = torch.randn(20, 4)
    assert taped is not None and torch.allclose(taped(other, t[:20]), focal(other, t[:20]))
    tape, out = LossTape(), (x @ weight).bfloat16()  # an autocast forward's output, cast back by the script
    tape.start([out])
    loss = F.cross_entropy(out.float(), t)
    taped = tape.loss(loss, saved_target(loss), {32})  # the cast is left out: the check's float64 stays float64
    assert taped(other.double(), t[:20]).dtype == torch.float64
    mask = (x[:, 0] > 0).float()  # read from the inputs before the forward: this batch's alone
    tape, out = LossTape(), x @ weight
    tape.start([out])
    loss = (F.cross_entropy(out, t, reduction="none") * mask).mean()
    assert tape.loss(loss, saved_target(loss), {32}) is None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The script's healthy and buggy versions under the script watch, with and without the pre-flight (one run
    each: ~1 s, plus a check of 1-2 s with --check)."""
    path = _script(tmp_path_factory.mktemp("preflight"))
    found = {}
    # the runs compared come after another; each runner is let go before the next run (its optimizer with it)
    for bug, check in (("zeros", True), ("", False), ("", True), ("ignore0", True), ("doubled", True),
                       ("weighted", True), ("focal_large", True), ("focal", True), ("ignore0", False),
                       ("smooth_large", True), ("smooth", True)):
        gc.collect()  # the earlier runs' optimizers gone: each run finds its own alone, as in a process of its own
        runner = ScriptWatch(every=5, check=check)
        reports = runner.run(path, [bug] if bug else [])
        assert runner.error is None, runner.error
        found[bug, check] = (reports, {k: runner._globals[k] for k in ("LOSSES", "STATE", "DRAWS")})
        del runner
    return found


@pytest.mark.slow  # ~15 s: the module's runs
def test_the_pre_flight_names_a_model_initialized_to_zero_and_an_ignored_real_class(runs):
    [report] = runs["zeros", True][0]
    pre = _pre(report)
    assert pre[0].check == "pre-flight" and pre[0].status == "info"
    assert "first 8 training batches (256 examples)" in pre[0].value and "nn.CrossEntropyLoss()" in pre[0].value
    assert _alarms(pre)["symmetry"].status == "fail"
    [report] = runs["ignore0", True][0]
    targets = _alarms(_pre(report))["targets"]
    assert targets.status == "fail" and "ignore_index=0" in targets.value


@pytest.mark.slow  # the module's runs
def test_a_loss_that_cannot_be_rebuilt_still_gets_the_structure_readings_and_says_what_was_skipped(runs):
    [report] = runs["doubled", True][0]
    pre = _pre(report)
    assert pre[0].status == "skip" and "on the model's structure only" in pre[0].value
    assert "initial loss" in pre[0].value and "MeanBackward0 <- MulBackward0" in pre[0].value
    assert _alarms(pre)["residual blocks"].status == "fail"
    [twin] = runs["weighted", True][0]
    assert not _alarms(_pre(twin)) and _pre(twin)[0].status == "skip"


@pytest.mark.slow  # the module's runs
def test_a_loss_written_out_is_replayed_from_its_first_step_and_its_large_initial_loss_named(runs):
    [report] = runs["focal_large", True][0]
    pre = _pre(report)
    assert pre[0].status == "info" and "the script's own (7 torch calls: cross_entropy" in pre[0].value
    assert _alarms(pre)["initial loss"].status == "fail"
    [twin] = runs["focal", True][0]
    assert _pre(twin)[0].status == "info" and not _alarms(_pre(twin))


@pytest.mark.slow  # the module's runs
def test_a_cross_entropy_with_label_smoothing_is_read_as_one_and_its_large_initial_loss_named(runs):
    [report] = runs["smooth_large", True][0]
    pre = _pre(report)
    assert "nn.CrossEntropyLoss(label_smoothing=0.1), read from its graph" in pre[0].value, pre[0].value
    assert _alarms(pre)["initial loss"].status == "fail"
    [twin] = runs["smooth", True][0]
    assert "label_smoothing=0.1" in _pre(twin)[0].value and not _alarms(_pre(twin))


@pytest.mark.slow  # the module's runs
def test_the_healthy_script_s_pre_flight_is_clean_and_its_training_is_bit_for_bit_unchanged(runs):
    [report] = runs["", True][0]
    pre = _pre(report)
    assert pre[0].status == "info" and len(pre) > 5 and not _alarms(pre)
    for bug in ("", "ignore0"):
        (plain, without), (checked, within) = runs[bug, False], runs[bug, True]
        assert without["LOSSES"] == within["LOSSES"]
        assert all(torch.equal(without["STATE"][k], within["STATE"][k]) for k in without["STATE"])
        assert torch.equal(without["DRAWS"][0], within["DRAWS"][0]) and without["DRAWS"][1:] == within["DRAWS"][1:]
        # the watch's own readings are those it gives without the pre-flight
        [plain], [checked] = plain, checked
        assert not _pre(plain)
        assert [(v.check, v.status, str(v.value)) for v in plain] == \
            [(v.check, v.status, str(v.value)) for v in checked if v not in _pre(checked)]


@pytest.mark.slow  # ~3 s: the command line, one run with the pre-flight
def test_the_watch_command_s_check_flag_folds_the_pre_flight_into_its_report(tmp_path, capsys):
    path = _script(tmp_path)
    assert main(["watch", "--check", "--json", path, "zeros"]) == 1
    [loop] = json.loads(capsys.readouterr().out)
    verdicts = {v["check"]: v for v in loop["verdicts"]}
    assert verdicts["pre-flight"]["status"] == "info" and verdicts["symmetry"]["status"] == "fail"
    assert verdicts["symmetry"]["phase"] == "pre"
