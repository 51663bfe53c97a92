"""Torch's warnings from a method the doctor wraps point at the user's line, and the user's filters still decide."""

import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.script_watch import ScriptWatch

SCHEDULE_FIRST = "Detected call of `lr_scheduler.step()` before `optimizer.step()`"


def _loop(watched: bool, schedule, steps: int = 4):
    """A user's loop that steps its schedule at the top of each epoch, before the optimizer's first step (torch
    warns, on the schedule's first step); ``schedule(sched, epoch)`` is the user's line that steps it."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)

    def epochs(w=None):
        for epoch in range(steps):
            schedule(sched, epoch)
            for i in range(0, 64, 16):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 16]), y[i:i + 16])
                loss.backward()
                opt.step()
                if w is not None:
                    w.step(loss, y=y[i:i + 16])

    if watched:
        with doctor.watch(model, opt, every=4) as w:
            epochs(w)
    else:
        epochs()
    return sched


def _first(sched, epoch):
    sched.step()  # the line torch's warning names


def _seen(watched: bool, schedule, action: str = "always"):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter(action)
        _loop(watched, schedule)
    return [(w.filename, w.lineno, str(w.message)[:40]) for w in seen if w.category is not DeprecationWarning]


def test_torch_s_warning_inside_a_wrapped_scheduler_step_names_the_user_s_line_as_without_the_doctor():
    plain, watched = _seen(False, _first), _seen(True, _first)
    assert [w for w in watched if w[2] == SCHEDULE_FIRST[:40]] == [w for w in plain if w[2] == SCHEDULE_FIRST[:40]]
    [(filename, lineno, _)] = [w for w in watched if w[2] == SCHEDULE_FIRST[:40]]
    assert filename == __file__ and lineno == _first.__code__.co_firstlineno + 1


def test_an_error_filter_still_raises_inside_the_method_before_it_steps_the_schedule():
    for watched in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            with pytest.raises(UserWarning, match="before `optimizer.step\\(\\)`") as raised:
                _loop(watched, _first)
        assert any(entry.path.name == "lr_scheduler.py" for entry in raised.traceback)  # inside the method, before
        # it stepped the schedule, as without a watch


def _two_lines(sched, epoch):
    """Two user lines each warning on every call (torch's deprecated ``step(epoch)``), and a warning of the user's."""
    if epoch % 2:
        sched.step(epoch)
    else:
        sched.step(epoch)
    warnings.warn("the user's own warning, every epoch", stacklevel=1)


@pytest.mark.parametrize("action", ["default", "once", "module"])
def test_default_once_and_module_filters_show_what_they_would_without_the_doctor(action):
    plain, watched = _seen(False, _two_lines, action), _seen(True, _two_lines, action)
    assert watched == plain and plain
    if action == "default":  # once per text and line: the two step(epoch) lines, the first step's, the user's own
        assert len(set(watched)) == len(watched) == 4


SCRIPT = """
import torch
import torch.nn.functional as F
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(128, 6), torch.randint(0, 3, (128,))
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
for stage, lr in enumerate((0.1, 0.01)):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    for epoch in range(3):
        sched.step()
        for i in range(0, 128, 32):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
"""


@pytest.mark.slow  # ~0.5 s: a script under the command's reader
def test_under_trainwell_watch_the_warning_names_the_script_s_line(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ScriptWatch(every=4).run(str(path), [])
    first = [(w.filename, w.lineno) for w in seen if str(w.message).startswith(SCHEDULE_FIRST)]
    line = textwrap.dedent(SCRIPT).splitlines().index("        sched.step()") + 1
    assert first == [(str(path), line)] * 2  # each stage's schedule, the second one under the watch's readers
