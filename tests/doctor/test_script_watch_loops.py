"""``trainwell watch train.py`` on loop bugs the explicit ``doctor.watch`` names from what it is given and the
command must read itself: a scheduler that was a local of a training function that has returned, the rate the
optimizer was built with (a warm-up stuck at its first step), an optimizer created again every epoch, an optimizer
built on a copy of the model or never stepped (no step of the model's parameters to find the loop from), and a
sequence loss given flattened targets."""

import gc
import textwrap
from types import SimpleNamespace

import pytest

from trainwell.doctor.script_watch import ScriptWatch

#: a user's script: everything inside a training function (its scheduler a local, gone when the report is written);
#: argv[1] plants one bug, or its healthy twin
SCRIPT = """
import copy
import sys
import torch
import torch.nn.functional as F
from torch import nn

KIND = sys.argv[1] if len(sys.argv) > 1 else ""
torch.manual_seed(0)
x = torch.randn(320, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()


def evaluate(model):
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(x[256:]), y[256:]).item()


def train():
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
    params = copy.deepcopy(model).parameters() if KIND == "copy" else model.parameters()
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    if KIND.startswith("steplr"):
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    if KIND.startswith("plateau"):
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    step = 0
    if KIND == "probed":  # the gradient's norm on a few batches before training, no step
        for i in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x[i * 32:(i + 1) * 32]), y[i * 32:(i + 1) * 32]).backward()
    for epoch in range(6):
        if (KIND == "rebuilt" and epoch) or (KIND == "stages" and epoch == 2):  # the same optimizer made again
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if (KIND == "stages" and epoch == 4) or (KIND == "early_stage" and epoch == 3):  # a fine-tuning stage:
            opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)  # another optimizer, another rate
        model.train()
        perm = torch.randperm(256)
        for i in range(0, 256, 32):
            idx = perm[i:i + 32]
            if KIND == "accumulate":  # four micro-batches of 8 backed through before each step
                opt.zero_grad()
                for part in idx.chunk(4):
                    (F.cross_entropy(model(x[part]), y[part]) / 4).backward()
                opt.step()
                continue
            if KIND.startswith("warmup"):  # a warm-up written by hand over 24 steps
                for g in opt.param_groups:
                    g["lr"] = 0.1 * min(1.0, (step + 1) / 24)
                step += KIND == "warmup_advancing"  # "warmup": the counter never incremented
            opt.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            if KIND == "manual":  # updated by hand: no optimizer step, and none needed
                with torch.no_grad():
                    for p in model.parameters():
                        p -= 0.1 * p.grad
            elif KIND != "no_step":
                opt.step()
        val = evaluate(model)
        if KIND == "steplr_stepped":
            sched.step()
        if KIND == "plateau_stepped":
            sched.step(val)
    return model


train()
"""

#: a tagger on padded sequences (token 0 and tag 0 are the padding), its scores and tags flattened for the loss
TAGGER = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

IGNORE = int(sys.argv[1])
torch.manual_seed(0)
ids = torch.randint(1, 16, (256, 8))
tags = 1 + (ids + torch.cat([torch.zeros(256, 1, dtype=ids.dtype), ids[:, :-1]], 1)) % 4
pad = torch.arange(8) >= torch.randint(3, 9, (256, 1))
ids[pad], tags[pad] = 0, 0


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(16, 16, padding_idx=0)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens):
        return self.head(self.rnn(self.emb(tokens))[0])


model = Tagger()
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for epoch in range(3):
    for i in range(0, 256, 32):
        out = model(ids[i:i + 32])
        loss = F.cross_entropy(out.view(-1, 5), tags[i:i + 32].view(-1), ignore_index=IGNORE)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _script(tmp_path, text, name):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _alarms(reports):
    return {v.check: v for report in reports for v in report if v.status in ("warn", "fail")}


@pytest.fixture(scope="module")
def readings(tmp_path_factory):
    """Each kind of the script under the script watch: (its reports, what the run read: its error, the steps before
    the watch began, per loop the rates and losses read and the rate its optimizer was built with). The watches are
    not kept: the next run's search of the heap for optimizers and modules stays small."""
    path = _script(tmp_path_factory.mktemp("loops"), SCRIPT, "train.py")
    out = {}
    for kind in ("steplr", "steplr_stepped", "plateau", "plateau_stepped", "warmup", "warmup_advancing", "rebuilt",
                 "stages", "early_stage", "copy", "no_step", "manual", "accumulate",
                 "probed"):
        runner = ScriptWatch(every=20)
        reports = runner.run(path, [kind])
        out[kind] = (reports, SimpleNamespace(error=runner.error, unread=runner.unread, loops=[SimpleNamespace(
            lrs=list(w.probe.lrs), losses=w.losses, built=w.probe.optimizer.defaults["lr"]) for w in runner.watches]))
        del runner
        gc.collect()
    return out


@pytest.mark.slow  # ~8 s, shared: fourteen runs of a 48-step script
@pytest.mark.parametrize("kind", ["steplr_stepped", "plateau_stepped", "warmup_advancing", "stages", "manual",
                                  "accumulate", "probed"])
def test_the_healthy_loops_are_clean(readings, kind):
    reports, runner = readings[kind]
    assert runner.error is None and not _alarms(reports), (runner.error, reports)


@pytest.mark.slow  # shares the runs above
def test_a_loop_ended_by_a_new_stage_is_reported_after_the_stage_s_first_backward_not_inside_it(readings):
    """The report of the loop that ended may read the model by changing its weights in place and back (its loss
    curve read as too low: :func:`~trainwell.doctor.scale_invariant_rate.grown_norms`); made between the new
    stage's first forward and its backward, that broke the script's backward (a saved tensor modified in place)."""
    reports, runner = readings["early_stage"]
    assert runner.error is None and len(reports) == 2, runner.error


@pytest.mark.slow  # shares the runs above
@pytest.mark.parametrize("kind, said", [
    ("steplr", "StepLR created on the optimizer, but scheduler.step() never ran"),
    ("plateau", "ReduceLROnPlateau(mode='min') created on the optimizer, but scheduler.step(metric) never ran"),
])
def test_a_scheduler_local_to_a_returned_training_function_is_read_as_never_stepped(readings, kind, said):
    reports, _ = readings[kind]
    assert said in str(_alarms(reports)["loop: learning rate applied"].value)


@pytest.mark.slow  # shares the runs above
def test_a_hand_written_warm_up_stuck_at_its_first_step_is_read_against_the_rate_the_optimizer_was_built_with(
        readings):
    reports, _ = readings["warmup"]
    value = str(_alarms(reports)["loop: learning rate applied"].value)
    assert "1/24 of the 0.1" in value and "a warm-up stuck at its first step" in value


@pytest.mark.slow  # shares the runs above
def test_an_optimizer_created_again_every_epoch_goes_on_with_the_same_loop(readings):
    reports, runner = readings["rebuilt"]
    assert len(reports) == 1  # one loop, not one per optimizer
    value = str(_alarms(reports)["loop: optimizer built once"].value)
    assert value.startswith("6 SGD optimizers over the same parameters, a new one at the start of each epoch")
    [w] = runner.loops
    assert len(w.lrs) == len(w.losses) == 48 - runner.unread  # the new optimizers' steps read as the loop's
    # the same optimizer made again once, then another for a new stage: not the bug; the stage a loop of its own
    reports, runner = readings["stages"]
    assert len(reports) == 2 and runner.loops[1].built == 0.03


@pytest.mark.slow  # shares the runs above
def test_the_model_a_backward_reached_is_watched_when_no_step_of_its_parameters_runs(readings):
    copy_reports, _ = readings["copy"]
    owned = _alarms(copy_reports)["loop: optimizer holds the parameters"]
    assert owned.status == "fail" and "the optimizer holds 4 tensors that are not this model's" in owned.value
    no_step, runner = readings["no_step"]
    stepped = _alarms(no_step)["loop: optimizer.step() runs"]
    assert stepped.status == "fail" and stepped.value.endswith("optimizer.step() never ran")
    assert runner.unread == 3  # read from the pass after the three that found it
    assert readings["manual"][0] == []  # updated by hand: no loop of an optimizer's
    _, accumulated = readings["accumulate"]  # micro-batches backed through before the first step: read from a step
    assert accumulated.unread in (1, 2) and len(accumulated.loops) == 1
    _, probed = readings["probed"]  # passes with no step before training: their watch dropped at the first step
    assert len(probed.loops) == 1 and len(probed.loops[0].losses) == 48 - probed.unread


@pytest.mark.slow  # ~0.7 s: two runs of a 24-step tagger
def test_a_sequence_loss_given_flattened_targets_has_them_read_per_sequence(tmp_path):
    path = _script(tmp_path, TAGGER, "tagger.py")
    reports = ScriptWatch(every=20).run(path, ["-100"])
    assert "the loss trains and counts" in _alarms(reports)["loop: padding in the loss"].value
    assert not _alarms(ScriptWatch(every=20).run(path, ["0"]))
