"""``trainwell watch train.py``: a user's training script run unchanged (it never imports trainwell), its loop read
by the doctor from torch's own step hooks, backward calls and loss graphs."""

import json
import re
import textwrap

import pytest
import torch
import torch.nn.functional as F

from trainwell.cli import main
from trainwell.doctor.script_watch import ScriptWatch, saved_target

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(384, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[256:], y[256:]), batch_size=50)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
BUG = sys.argv[1] if len(sys.argv) > 1 else ""
VALS = []
for epoch in range(4):
    model.train()
    for xb, yb in train:
        if BUG != "no_zero_grad":
            opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        total = n = 0
        for xb, yb in val:
            total += F.cross_entropy(model(xb), yb, reduction="sum").item()
            n += len(yb)
    VALS.append(total / n)
if BUG == "raise":
    raise RuntimeError("the script's own error")
"""


def _script(tmp_path, text=SCRIPT, name="train.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _alarms(report):
    return {v.check: v for v in report if v.status in ("warn", "fail")}


def test_saved_target_is_the_target_torch_s_loss_saved_and_none_for_soft_targets():
    scores = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 3, 1, 2, 2, 0])
    assert saved_target(F.cross_entropy(scores, labels)) is labels
    assert saved_target(F.cross_entropy(scores, labels, label_smoothing=0.1)) is labels
    wanted = torch.randn(6, 4)
    assert torch.equal(saved_target(F.mse_loss(scores, wanted)), wanted)
    assert torch.equal(saved_target(F.binary_cross_entropy_with_logits(scores, wanted.sigmoid())), wanted.sigmoid())
    assert saved_target(F.cross_entropy(scores, wanted.softmax(1))) is None  # soft targets save none
    assert saved_target((scores - wanted).abs().mean()) is None  # written out by hand


@pytest.mark.slow  # ~1 s: two runs of a 32-step script
def test_a_script_s_loop_is_read_from_the_second_step_with_its_losses_labels_and_validations(tmp_path):
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path), [])
    assert runner.error is None and runner.names == ["model"]
    [w] = runner.watches
    assert runner.unread in (1, 2) and len(w.losses) == 32 - runner.unread  # 4 epochs of 8 batches
    script_vals = runner._globals["VALS"]  # what the script computed itself: the mean per validation example
    assert [v for _, v, _ in w._val] == pytest.approx(script_vals, rel=1e-5)
    assert not _alarms(report), report
    assert report["loop: labels"].status == "pass"  # read from the loss graph's saved targets
    buggy = ScriptWatch(every=5)
    [named] = buggy.run(_script(tmp_path), ["no_zero_grad"])
    named = _alarms(named)
    assert named["loop: gradients at optimizer.step()"].status == "fail"


@pytest.mark.slow  # ~0.6 s
def test_a_gan_s_two_modules_are_watched_side_by_side_and_the_script_s_error_still_gives_the_report(tmp_path):
    gan = """
    import torch
    import torch.nn.functional as F
    from torch import nn
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for step in range(60):
        real = torch.randn(64, 2) * 0.5 + 2.0
        fake = G(torch.randn(64, 4))
        d_loss = F.binary_cross_entropy_with_logits(D(real), torch.ones(64, 1)) + \\
            F.binary_cross_entropy_with_logits(D(fake.detach()), torch.zeros(64, 1))
        opt_d.zero_grad(); d_loss.backward(); opt_d.step()
        g_loss = F.binary_cross_entropy_with_logits(D(fake), torch.ones(64, 1))
        opt_g.zero_grad(); g_loss.backward(); opt_g.step()
    raise ValueError("stopped on purpose")
    """
    runner = ScriptWatch(every=10)
    [report] = runner.run(_script(tmp_path, gan, "gan.py"), [])
    assert runner.names == ["D", "G"] and "ValueError: stopped on purpose" in runner.error
    assert runner.unread == 2 and report.title.endswith(
        ": D, G (steps 1-2 showed which models and optimizers the loop trains: read from step 3; its loss curve from "
        "step 1)")
    assert report["loop: gradients at optimizer.step()"].status == "pass"


@pytest.mark.slow  # ~1 s: the command line, JSON out, exit codes
def test_the_watch_command_passes_the_script_its_arguments_and_exits_1_on_a_fail(tmp_path, capsys):
    path = _script(tmp_path)
    assert main(["watch", "--json", "--every", "5", path, "no_zero_grad"]) == 1
    [loop] = json.loads(capsys.readouterr().out)
    verdicts = {v["check"]: v["status"] for v in loop["verdicts"]}
    assert verdicts["loop: gradients at optimizer.step()"] == "fail"


def test_the_watch_command_names_a_missing_script_and_a_script_that_never_trains(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope.py")]) == 2
    assert "nope.py' does not exist: give the path of a Python file" in capsys.readouterr().err
    idle = _script(tmp_path, "print('no training here')\n", "idle.py")
    assert main(["watch", idle]) == 2
    assert "never called optimizer.step()" in capsys.readouterr().err


@pytest.mark.slow  # ~0.5 s
def test_under_amp_the_loss_read_is_the_one_given_to_grad_scaler_not_its_scaled_copy(tmp_path):
    amp = """
    import torch
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x.sum(1) > 0).float()[:, None]
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cpu")
    crit = nn.BCEWithLogitsLoss()
    LOSSES = []
    for epoch in range(2):
        for i in range(0, 192, 32):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = crit(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            LOSSES.append(loss.item())
        with torch.no_grad():
            crit(model(x[192:]), y[192:])
    """
    runner = ScriptWatch(every=3)
    [report] = runner.run(_script(tmp_path, amp, "amp.py"), [])
    assert report["learning rate (loss curve)"].value.split("start ")[1].startswith("0.")  # not 65536x
    assert runner.watch is None and runner.unread in (1, 2)


@pytest.mark.slow  # ~1.5 s: a teacher trained, then a student distilled from it, then LBFGS
def test_a_teacher_then_its_student_are_two_loops_each_read_on_its_own(tmp_path):
    kd = """
    import torch
    import torch.nn.functional as F
    from torch import nn
    torch.manual_seed(0)
    x = torch.randn(512, 8)
    y = (x[:, 0] - x[:, 1] > 0).long()
    teacher = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 2))
    topt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for epoch in range(3):
        for i in torch.randperm(448).split(32):
            loss = F.cross_entropy(teacher(x[i]), y[i])
            topt.zero_grad(); loss.backward(); topt.step()
    teacher.eval()
    student = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for epoch in range(3):
        for i in torch.randperm(448).split(32):
            with torch.no_grad():
                soft = teacher(x[i]).softmax(1)  # a forward on training rows without gradients: not a validation
            out = student(x[i])
            loss = F.kl_div(out.log_softmax(1), soft, reduction="batchmean") + F.cross_entropy(out, y[i])
            opt.zero_grad(); loss.backward(); opt.step()
        with torch.no_grad():
            F.cross_entropy(student(x[448:]), y[448:])
    probe = nn.Linear(8, 2)
    lbfgs = torch.optim.LBFGS(probe.parameters(), max_iter=20, line_search_fn="strong_wolfe")
    def closure():
        lbfgs.zero_grad()
        loss = F.cross_entropy(probe(x[:448]), y[:448])
        loss.backward()
        return loss
    FIRST = [float(lbfgs.step(closure)) for _ in range(6)]
    """
    runner = ScriptWatch(every=5)
    teacher, student, probe = runner.run(_script(tmp_path, kd, "kd.py"), [])
    assert [r.title.split(".py: ")[-1].split(" ")[0] for r in (teacher, student, probe)] == ["teacher", "student",
                                                                                              "probe"]
    assert not _alarms(teacher), teacher  # the student's teacher forwards are no validation of the teacher's
    assert student["loop: validation examples"].status == "pass"
    firsts = runner._globals["FIRST"]  # what lbfgs.step(closure) returned: each step's first loss
    assert runner.watches[2].losses == pytest.approx(firsts[runner.unread:])
    # the steps each loop's optimizer took before its watch began (the first ones with the last loop's watch still
    # open) start its loss curve, each step's own loss once
    assert runner.watches[2]._before == pytest.approx(firsts[:runner.unread])
    assert all(r.title.endswith("; its loss curve from step 1)") for r in (teacher, student, probe))


WEAKREF_SCRIPT = """
import weakref
import torch
import torch.nn.functional as F
from torch import nn


class Cache:
    pass


cache = Cache()
views = [weakref.proxy(cache)]  # a proxy outliving its object: torch.compile leaves such behind
del cache
torch.manual_seed(0)
x = torch.randn(64, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(6):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
"""


@pytest.mark.slow  # ~0.5 s: a 6-step script
def test_a_dead_weakref_proxy_in_the_script_does_not_stop_the_watch(tmp_path):
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path, WEAKREF_SCRIPT), [])
    assert runner.error is None and runner.names == ["model"]



EXITS = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(64, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(6):
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
if sys.argv[1] == "raise":
    raise RuntimeError("no checkpoint directory")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.slow  # ~2-4 s: three runs of a 6-step script through the command line
def test_the_watch_command_exits_with_the_script_s_own_status_when_it_fails(tmp_path, capsys):
    path = _script(tmp_path, EXITS)
    assert main(["watch", path, "0"]) == 0  # sys.exit(0) at the end of a healthy run
    assert main(["watch", path, "3"]) == 3  # a CI job's failure is not hidden by a healthy report
    assert main(["watch", path, "raise"]) == 1
    assert "RuntimeError: no checkpoint directory" in capsys.readouterr().err


COPIES = """
import copy
import io
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(96, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
SEEN = []


def record(module, args, out):  # the script's own hook: kept by its copies
    SEEN.append(len(out))


model[0].register_forward_hook(record)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
best, best_model = float("inf"), None
for epoch in range(3):
    model.train()
    for i in range(0, 64, 16):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = F.cross_entropy(model(x[64:]), y[64:]).item()
    if val < best:
        best, best_model = val, copy.deepcopy(model)  # the best model kept in memory
buf = io.BytesIO()
torch.save(model, buf)  # the whole module pickled
buf.seek(0)
again = torch.load(buf, weights_only=False)
"""


@pytest.mark.slow  # ~1-2 s: a 12-step script
def test_the_script_s_deepcopy_and_torch_save_of_its_model_copy_the_model_not_the_watch(tmp_path):
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path, COPIES), [])
    assert runner.error is None, runner.error
    g = runner._globals
    for copied in (g["best_model"], g["again"]):
        hooks = [h for m in copied.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
        assert [h.__name__ for h in hooks] == ["record"]  # the script's own hook only
    assert len(runner.watches[0]._val) == 3  # and the watched loop still read whole


FOLDS = """
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(96, 8)
y = (x[:, 0] > 0).long()
for fold in range(2):  # a new model and optimizer per fold, validated under torch.inference_mode()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        model.train()
        for i in range(0, 64, 16):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
            opt.step()
        model.eval()
        with torch.inference_mode():
            val = F.cross_entropy(model(x[64:]), y[64:]).item()
"""


@pytest.mark.slow  # ~1 s: two folds of 8 steps
def test_folds_validated_under_inference_mode_are_each_read_without_breaking_the_script(tmp_path):
    runner = ScriptWatch(every=5)
    reports = runner.run(_script(tmp_path, FOLDS), [])
    assert runner.error is None, runner.error
    assert len(reports) == 2


EVALUATE_BOTH = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(2304, 8)  # 32 batches an epoch: the steps before the watch began are few of them
y = (x[:, 0] + x[:, 1] > 0).long()
train = TensorDataset(x[:2048], y[:2048])
loader = DataLoader(train, batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
VALS = []


def evaluate(data):  # the loss per example of a whole split, in eval mode
    model.eval()
    with torch.no_grad():
        return sum(F.cross_entropy(model(xb), yb, reduction="sum").item()
                   for xb, yb in DataLoader(data, batch_size=256)) / len(data)


for epoch in range(2):
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    train_loss = evaluate(train)  # logged beside the validation's
    VALS.append(evaluate(TensorDataset(x[2048:], y[2048:]) if SPLIT else train))
"""


@pytest.mark.slow  # ~2 s: two runs of a 64-step script
def test_the_training_set_evaluated_beside_the_validation_set_is_left_out_of_its_loss(tmp_path):
    # another optimizer alive in the process (as other tests leave): the watch begins at the end of step 2 always
    held = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path, "SPLIT = True\n" + EVALUATE_BOTH), [])
    [w] = runner.watches
    assert [v for _, v, _ in w._val] == pytest.approx(runner._globals["VALS"], rel=1e-5)
    assert report["loop: validation examples"].status == "pass"
    # both evaluations on the training set: the validation on the training set, named
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path, "SPLIT = False\n" + EVALUATE_BOTH), [])
    assert report["loop: validation examples"].status == "fail"
    assert runner.unread == 2 and held.param_groups


EMA = """
import copy
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(160, 8)
y = (x[:, 0] + x[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
ema = copy.deepcopy(model).requires_grad_(False)  # a moving average of the weights, evaluated beside the model
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
VALS, EMA_VALS = [], []


def score(net):
    out = net(x[128:])
    return F.nll_loss(F.log_softmax(out, 1), y[128:]) if NLL else F.cross_entropy(out, y[128:])


for epoch in range(3):
    model.train()
    for i in range(0, 128, 16):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
        opt.step()
        with torch.no_grad():
            for p, q in zip(ema.parameters(), model.parameters()):
                p.mul_(0.9).add_(q, alpha=0.1)
    model.eval()
    with torch.no_grad():
        VALS.append(score(model).item())
        EMA_VALS.append(score(ema).item())
"""


@pytest.mark.slow  # ~1 s: two runs of a 24-step script
def test_an_ema_copy_evaluated_after_the_model_is_left_out_of_its_validation_loss(tmp_path):
    runner = ScriptWatch(every=5)
    runner.run(_script(tmp_path, "NLL = False\n" + EMA), [])
    [w] = runner.watches
    assert [v for _, v, _ in w._val] == pytest.approx(runner._globals["VALS"], rel=1e-5)
    # both scored on log_softmax(out): no call reads the model's own output, and none is left out
    runner = ScriptWatch(every=5)
    runner.run(_script(tmp_path, "NLL = True\n" + EMA), [])
    [w] = runner.watches
    g = runner._globals
    both = [(v + e) / 2 for v, e in zip(g["VALS"], g["EMA_VALS"], strict=True)]
    assert [v for _, v, _ in w._val] == pytest.approx(both, rel=1e-5)


@pytest.mark.slow  # ~1.5 s: a heap walk or two
def test_a_script_optimizing_raw_tensors_is_not_searched_for_a_model_on_every_step(tmp_path, monkeypatch, capsys):
    import trainwell.doctor.script_model as sm

    walks = []
    alive = sm.alive  # the heap walks, where the model is searched for and where optimizers are counted
    monkeypatch.setattr(sm, "alive", lambda kind: walks.append(kind) or alive(kind))
    raw = """
    import torch
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    for _ in range(50):
        loss = ((w - 1.0) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    """
    runner = ScriptWatch()
    assert runner.run(_script(tmp_path, raw, "raw.py"), []) == [] and runner.error is None
    assert len(walks) <= 3  # one search (optimizers, then modules), not one per step


LBFGS = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 20)
y = (x @ torch.randn(20, 4) + 2 * torch.randn(256, 4)).argmax(1)  # noisy labels: no perfect fit
model = nn.Linear(20, 4)
if sys.argv[1:] == ["tiny_rate"]:  # one iteration a step at a rate that moves nothing: a flat curve from step 1
    opt = torch.optim.LBFGS(model.parameters(), lr=1e-5, max_iter=1)
else:  # full-batch L-BFGS: it reaches the minimum within its first step
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=10, line_search_fn="strong_wolfe")
LOSSES = []
for it in range(15):
    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y) + 1e-3 * model.weight.pow(2).sum()
        loss.backward()
        return loss
    LOSSES.append(float(opt.step(closure)))
"""


@pytest.mark.slow  # ~2-3 s: two runs of 15 L-BFGS steps
def test_the_loss_curve_starts_at_the_loop_s_first_step_so_lbfgs_converging_in_it_is_not_flat(tmp_path):
    path = _script(tmp_path, LBFGS, "lbfgs.py")
    runner = ScriptWatch(every=5)
    [report] = runner.run(path, [])
    assert report["learning rate (loss curve)"].status == "pass", report  # not "flat" from step 2 on
    [w] = runner.watches
    first = runner._globals["LOSSES"]  # what opt.step(closure) returned: each step's first loss
    assert w._before == pytest.approx(first[:runner.unread]) and w.losses == pytest.approx(first[runner.unread:])
    assert torch.equal(w._before_ys[0], runner._globals["y"])  # the first step's labels, read from its loss
    assert runner.curve_from == 1 and report.title.endswith(f": read from step {runner.unread + 1}; its loss curve "
                                                            "from step 1)")
    runner = ScriptWatch(every=5)
    [report] = runner.run(path, ["tiny_rate"])
    assert report["learning rate (loss curve)"].value.startswith("flat")


HELPFUL = """
import argparse
import sys

parser = argparse.ArgumentParser(description="trains a small classifier")
parser.add_argument("--every", type=int, default=1, help="log every N steps")
args = parser.parse_args()
print(f"logging every {args.every}")
if args.every < 1:
    sys.exit(3)  # its own check, failed before training
"""


def test_a_script_that_exits_before_training_gives_its_own_output_and_status(tmp_path, capsys):
    path = _script(tmp_path, HELPFUL, "cli.py")
    assert main(["watch", path, "-h"]) == 0  # the script's help, not trainwell's, and its status
    out, err = capsys.readouterr()
    assert "trains a small classifier" in out and "log every N steps" in out
    assert "cli.py exited (status 0) before any training loop: nothing was watched" in err
    assert "never called" not in err
    assert main(["watch", path, "--every", "0"]) == 3
    assert "exited (status 3) before any training loop" in capsys.readouterr().err
    assert main(["watch", "--json", path, "--every", "0"]) == 3  # --json: no loop, an empty list
    assert capsys.readouterr().out.splitlines()[-1] == "[]"
    # the options after the script's name are the script's: it ran to its end without training
    assert main(["watch", path, "--every", "5"]) == 2
    out, err = capsys.readouterr()
    assert "logging every 5" in out and "never called optimizer.step()" in err


def test_trainwell_s_options_come_before_the_script_s_name(capsys):
    assert main(["watch", "-h"]) == 0  # trainwell's help
    out = " ".join(capsys.readouterr().out.split())  # the description is wrapped to the terminal
    assert "--model NAME" in out and "everything after it goes to the script" in out


TRAINER = """
import torch
import torch.nn.functional as F
from torch import nn


class Trainer:
    def __init__(self):
        self.model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def fit(self, x, y, steps):
        for _ in range(steps):
            self.opt.zero_grad()
            F.cross_entropy(self.model(x), y).backward()
            self.opt.step()


torch.manual_seed(0)
x = torch.randn(64, 8)
y = (x[:, 0] > 0).long()
LR = 0.1
probe = nn.Linear(8, 2)  # a module beside the trained one, trained by no optimizer
trainer = Trainer()
trainer.fit(x, y, 12)
"""


@pytest.mark.slow  # ~0.5 s: a 12-step script
def test_model_names_the_script_s_variable_holding_the_model_to_watch(tmp_path):
    runner = ScriptWatch(every=5, model="trainer.model")
    [report] = runner.run(_script(tmp_path, TRAINER), [])
    assert runner.error is None and runner.names == ["trainer.model"]
    assert runner.watches[0].probe.model is runner._globals["trainer"].model
    # from step 2, or 3 when an optimizer of an earlier test is still alive in this process (several optimizers:
    # the loop's is known when it steps again), as for the first test's `unread in (1, 2)`
    read = r": trainer\.model \(steps? 1(-2)? showed which model and optimizers? the loop trains: read from " \
        r"step [23]; its loss curve from step 1\)"
    assert re.search(read, report.title), report.title


@pytest.mark.parametrize("name, said", [
    ("trainer.modle", "--model trainer.modle: trainer (of type Trainer) has no attribute 'modle'; the nn.Modules "
                      "trainer (of type Trainer) holds: model"),
    ("net", "--model net: the script has no global 'net'; the nn.Modules the script holds: probe"),
    ("LR", "--model LR is of type float, not a torch nn.Module; the nn.Modules the script holds: probe"),
])
def test_model_naming_no_module_of_the_script_is_one_line_naming_what_it_holds(tmp_path, capsys, name, said):
    assert main(["watch", "--model", name, _script(tmp_path, TRAINER)]) == 2
    err = capsys.readouterr().err
    assert f"trainwell watch: error: {said}" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_model_naming_a_module_no_optimizer_trains_watches_nothing(tmp_path, capsys):
    assert main(["watch", "--model", "probe", _script(tmp_path, TRAINER)]) == 2
    assert "--model probe holds none of the parameters of the optimizers that stepped" in capsys.readouterr().err


def test_the_training_rows_and_the_validation_split_key_each_batch_once(monkeypatch):
    import trainwell.doctor.validation_rows as vr
    from trainwell.doctor.script_training_rows import TrainingRows

    keyed, calls = vr._float_keys, []
    monkeypatch.setattr(vr, "_float_keys", lambda *a: calls.append(1) or keyed(*a))
    split = vr.SplitRows()  # the watch's own reader of the training rows (loop: validation examples)
    rows = TrainingRows(split.keys)  # trainwell watch's, sharing its keys
    x = torch.randn(32, 8)
    rows.forward(x, True)  # the script's training forward: trainwell watch's hook, then the watch's
    split.with_grad(x)
    split.stepped()
    [(n, read)] = split.train
    assert n == 32 and torch.equal(read()[0], rows._train[0]) and len(calls) == 1  # keyed once, read by both
    assert torch.equal(rows._train[0], vr.RowKeys()(x)[0])  # the same keys as on its own


LATE_HEAD = """
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(64, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
aux = nn.Linear(8, 2)
for step in range(24):
    loss = F.cross_entropy(model(x), y) + (F.cross_entropy(aux(x), y) if step >= 8 else 0)
    opt.zero_grad()
    loss.backward()
    if step >= 8:
        if step == 8:
            aux_opt = torch.optim.SGD(aux.parameters(), lr=0.1)  # a head's optimizer added mid-run
        aux_opt.step()  # stepped before the model's, on the same loss
    opt.step()
"""


@pytest.mark.slow  # ~0.5 s: a 24-step script
def test_an_optimizer_the_watch_does_not_hold_stepping_first_on_the_loss_leaves_it_to_the_model_s_step(tmp_path):
    runner = ScriptWatch(every=5)
    runner.run(_script(tmp_path, LATE_HEAD, "late_head.py"), [])
    [w] = runner.watches
    assert runner.error is None and len(w.losses) == 24 - runner.unread  # every step of the model's read


HF_STYLE = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


class Examples(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.labels = (self.x[:, 0] + self.x[:, 1] > 0).long() + (self.x[:, 2] > 0.5).long()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "labels": self.labels[i]}


class SelfScoring(nn.Module):  # returns its own loss when given labels, as Hugging Face's models do
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, features, labels=None):
        logits = self.net(features)
        return {"loss": F.cross_entropy(logits, labels) if labels is not None else None, "logits": logits}


torch.manual_seed(0)
model = SelfScoring()
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
train = DataLoader(Examples(256, 1), batch_size=32, shuffle=True)
val = DataLoader(Examples(100, 2), batch_size=50)
VALS = []
for epoch in range(3):
    model.train()
    for batch in train:
        out = model(**batch)
        out["loss"].backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        VALS.append(sum(model(**b)["loss"].item() * len(b["labels"]) for b in val) / len(val.dataset))
"""


@pytest.mark.slow  # ~0.7 s
def test_a_model_given_its_batch_by_name_that_returns_its_own_loss_has_its_labels_and_validations_read(tmp_path):
    """``out = model(**batch)``, ``out["loss"].backward()``: the batch's rows are read from the keyword arguments
    (the labels then match them) and the validation's loss calls inside the forward give the validation curve."""
    runner = ScriptWatch(every=5)
    [report] = runner.run(_script(tmp_path, HF_STYLE), [])
    assert runner.error is None
    [w] = runner.watches
    assert report["loop: labels"].status == "pass", report["loop: labels"]
    assert [v for _, v, _ in w._val] == pytest.approx(runner._globals["VALS"], rel=1e-5)


DETACHED = """
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for epoch in range(3):
    model.train()
    for i in range(0, 256, 32):  # 8 steps an epoch
        out = model(x[i:i + 32])
        loss = F.cross_entropy(out.detach(), y[i:i + 32]) + 1e-3 * sum((p ** 2).sum() for p in model.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        F.cross_entropy(model(x[:64]), y[:64]).item()
"""


@pytest.mark.slow  # ~1 s
def test_an_observed_step_right_after_a_validation_reads_its_own_training_forward(tmp_path):
    """The validation is handed to the watch at the next training forward, not at the next step: a step the watch
    reads whole that follows a validation (here its 8th, the first of epoch 2) sees its training forward only, and
    the loss computed on detached outputs is named on every observed step."""
    runner = ScriptWatch(every=8)
    [report] = runner.run(_script(tmp_path, DETACHED), [])
    assert runner.error is None
    v = report["loop: loss reaches the outputs"]
    assert v.status == "fail", v
    assert len(runner.watches[0]._val) == 3


USED_UP = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(448, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
train = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[256:384], y[256:384]), batch_size=50)
test = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=50)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
batches = iter(train)  # made once: used up after the first epoch


def evaluate(loader):
    total = n = 0
    for xb, yb in loader:
        total += F.cross_entropy(model(xb), yb, reduction="sum").item()
        n += len(yb)
    return total / n


for epoch in range(5):
    model.train()
    for xb, yb in (batches if sys.argv[1] == "bug" else train):
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        print(epoch, evaluate(val), evaluate(test))  # the validation, then the test loss
"""


@pytest.mark.slow  # ~0.6 s: two runs of a 5-epoch script
def test_validations_with_no_step_between_them_are_told_apart_and_the_used_up_iterator_named(tmp_path):
    path = _script(tmp_path, USED_UP)
    buggy = ScriptWatch(every=5)
    [named] = buggy.run(path, ["bug"])
    assert buggy.error is None, buggy.error
    assert len(buggy.watches[0]._val) == 5  # each epoch's validation on its own, not one merged at the end
    assert _alarms(named)["loop: steps between validations"].status == "fail"
    healthy = ScriptWatch(every=5)
    [clean] = healthy.run(path, ["twin"])
    assert len(healthy.watches[0]._val) == 5  # the test loader after the validation's is not a validation
    assert not _alarms(clean), clean
