"""``trainwell watch`` on a script that distills a teacher of the student's own class (trained first, then run in
eval mode without gradients inside each training step of the student): the teacher is a copy of the watched
model's shapes but not one validated in its place. Its forward on the next training batch, just before the
student's first training forward of an epoch, is not read as part of the validation the watch infers there: the
student's validation inputs are the 32 validation rows only, none of them a training row."""

import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x):
        return self.body(x)


torch.manual_seed(0)
w = torch.randn(10, 4)
x, xv = torch.randn(256, 10), torch.randn(32, 10)
y, yv = (x @ w).argmax(1), (xv @ w).argmax(1)
teacher = Net()
topt = torch.optim.Adam(teacher.parameters(), 3e-3)
for epoch in range(3):
    for i in range(0, 256, 32):
        topt.zero_grad()
        F.cross_entropy(teacher(x[i:i + 32]), y[i:i + 32]).backward()
        topt.step()
teacher.eval()
student = Net()
opt = torch.optim.Adam(student.parameters(), 3e-3)
VALS = []
for epoch in range(4):
    student.train()
    for i in range(0, 256, 32):
        with torch.no_grad():
            t = teacher(x[i:i + 32])
        out = student(x[i:i + 32])
        loss = 4 * F.kl_div(F.log_softmax(out / 2, 1), F.softmax(t / 2, 1), reduction="batchmean") + \\
            F.cross_entropy(out, y[i:i + 32])
        opt.zero_grad()
        loss.backward()
        opt.step()
    student.eval()
    with torch.no_grad():
        VALS.append(F.cross_entropy(student(xv), yv).item())
"""


@pytest.mark.slow  # ~3 s: a teacher's and a student's loop
def test_a_teacher_run_inside_training_steps_is_not_read_as_a_validation(tmp_path):
    path = tmp_path / "distill.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=5)
    reports = runner.run(str(path), [])
    assert runner.error is None, runner.error
    assert len(reports) == 2 and len(runner.watches) == 2
    student = reports[-1]
    examples = student["loop: validation examples"]
    assert examples.status == "pass" and examples.value.startswith("0 of 32 validation rows"), examples
    assert student["loop: validation inputs"].value.startswith("32 validation rows"), student["loop: validation inputs"]
    vals = [v for _, v, _ in runner.watches[-1]._val]
    assert vals == pytest.approx(runner._globals["VALS"][-len(vals):], rel=1e-5) and len(vals) >= 3
