"""``trainwell watch --check`` on a hypernetwork: the model is called ``model(task, x)`` with the task's id a 0-d
tensor beside the batch (it picks the weights the whole call uses). The pre-flight counted the rows of its first
input with ``len()`` and raised TypeError out of the script's ``optimizer.step()``; a 0-d tensor holds no rows, and
batches of other tasks cannot be joined into one call, so the pre-flight reads on and says why it skips the loss
checks. Batches whose 0-d values agree join as one call."""
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.script_preflight import _joined, _rows
from trainwell.doctor.script_watch import ScriptWatch

HYPERNET = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    amps = 0.5 + 2 * torch.rand(8)

    class HyperNet(nn.Module):
        def __init__(self, n_tasks=8, hidden=16):
            super().__init__()
            self.task_emb = nn.Embedding(n_tasks, 4)
            self.gen = nn.Linear(4, 3 * hidden + 1)
            self.hidden = hidden

        def forward(self, task, x):
            flat, h = self.gen(self.task_emb(task)), self.hidden
            w1, b1, w2, b2 = flat[:h].view(h, 1), flat[h:2 * h], flat[2 * h:3 * h].view(1, h), flat[3 * h:]
            return F.linear(torch.tanh(F.linear(x, w1, b1)), w2, b2)

    model = HyperNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):
        task = torch.randint(0, 8, ())
        x = torch.rand(32, 1) * 2 - 1
        y = amps[task] * torch.sin(3 * x)
        loss = F.mse_loss(model(task, x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
""")


def test_rows_skip_a_value_given_to_the_whole_call():
    task, x = torch.tensor(3), torch.zeros(32, 1)
    assert _rows((task, x)) == 32 and _rows(task) == 0 and _rows((x.T, x), 1) == 32
    assert _joined([(task, x), (torch.tensor(3), x)])[0] is task  # one task for both: one call
    with pytest.raises(ValueError):
        _joined([(task, x), (torch.tensor(5), x)])


@pytest.mark.slow  # ~2 s: a script run under the watch with its pre-flight
def test_a_model_called_with_a_task_id_beside_its_batch_is_read_not_raised(tmp_path):
    path = tmp_path / "hypernet.py"
    path.write_text(HYPERNET)
    [report] = ScriptWatch(every=10, check=True).run(str(path), [])
    pre = [v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"]
    assert pre[0].status == "skip" and "0-d tensor beside its batch" in pre[0].value, pre[0]
    # such a model cannot take doctor.check(model, x, y, loss_fn) either: the line says what it can take
    assert "pass your loss to doctor.check(model, x, y, loss_fn)" not in pre[0].value
    assert pre[0].value.endswith("wrap the model in a module that holds it, whose forward(x) returns model(task, x), "
                                 "and call doctor.check(wrapped, x, y, loss_fn) on that task's examples")
    assert not [v for v in report.verdicts if v.status == "fail"], report


class OneTask(nn.Module):
    """The skip line's advice, as a user writes it: the hypernetwork with its task fixed."""

    def __init__(self, model: nn.Module, task: torch.Tensor):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x):
        return self.model(self.task, x)


@pytest.mark.slow  # ~1 s: a check run
def test_the_advised_wrapper_runs_the_loss_checks_on_one_task(tmp_path):
    space: dict = {}
    exec(compile(HYPERNET.split("model = HyperNet()")[0], "hypernet", "exec"), space)  # the script's model class
    torch.manual_seed(0)
    model, task = space["HyperNet"](), torch.tensor(3)
    x = torch.rand(128, 1) * 2 - 1
    report = doctor.check(OneTask(model, task), x, space["amps"][task] * torch.sin(3 * x), F.mse_loss)
    for name in ("overfit a tiny subset", "input-independent baseline", "gradient check (data loss)"):
        assert report[name].status == "pass", report[name]
