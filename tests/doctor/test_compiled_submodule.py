"""doctor.watch(model, opt) on a model one of whose submodules is compiled (``model.encoder.compile()`` or
``model.encoder = torch.compile(model.encoder)``, before the watch or inside it): the steps the watch observes run
the encoder uncompiled (the watch's hooks never reach its graph: no graph break, no recompile), the other steps
run it compiled, and a planted bug (eval mode left on after validation) is still named. Run in a subprocess:
importing torch's compiler changes what the optimizers of the other tests go through."""

import json
import subprocess
import sys

import pytest

LOOP = """
import json, warnings
import torch, torch.nn.functional as F
from torch import nn
from trainwell import doctor

runs = []
def counting(gm, example_inputs):  # dynamo's graph run as it is: counts the steps that ran compiled
    def run(*args):
        runs.append(1)
        return gm.forward(*args)
    return run

class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner, self.outer, self.drop = nn.Linear(8, 64), nn.Linear(64, 64), nn.Dropout(0.2)

    def forward(self, x):
        return F.relu(self.outer(self.drop(F.relu(self.inner(x)))))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.encoder(x))

torch.manual_seed(0)
centers = 3 * torch.randn(4, 8)
y = torch.randint(0, 4, (1024,))
x = centers[y] + torch.randn(1024, 8)
yv = torch.randint(0, 4, (256,))
xv = centers[yv] + torch.randn(256, 8)  # held out: validation rows are no training rows
model = Net()
WHERE, EVAL_BUG = "{where}", {bug}
if WHERE == "before_in_place":
    model.encoder.compile(backend=counting)
elif WHERE == "before_wrapper":
    model.encoder = torch.compile(model.encoder, backend=counting)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
with warnings.catch_warnings(record=True) as shown:
    warnings.simplefilter("always")
    with doctor.watch(model, opt, every=20) as w:
        if WHERE == "inside_in_place":
            model.encoder.compile(backend=counting)
        elif WHERE == "inside_wrapper":
            model.encoder = torch.compile(model.encoder, backend=counting)
        for epoch in range(4):
            if epoch == 0 or not EVAL_BUG:
                model.train()
            for i in range(0, 1024, 64):
                loss = F.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad(); loss.backward(); opt.step()
                w.step(loss, y=y[i:i + 64])
            model.eval()  # left in eval mode when EVAL_BUG
            with torch.no_grad():
                w.validate(F.cross_entropy(model(xv), yv).item())
report = w.report()
from torch._dynamo.utils import counters
breaks = [k.splitlines()[0] for k in counters["graph_break"] if "torch.compiler.disable" not in k]
print(json.dumps({{"mode": report["loop: train/eval mode"].status, "monitors": report["monitors"].status,
                   "observed": sum("activations" in r for r in w.monitor.records), "breaks": breaks,
                   "alarms": [v.check for v in report if v.status in ("warn", "fail")],
                   "warnings": [str(m.message)[:200] for m in shown], "compiled_runs": len(runs),
                   "compiles": counters["frames"]["ok"]}}))
"""


def _run(bug: bool, where: str) -> dict:
    done = subprocess.run([sys.executable, "-c", LOOP.format(bug=bug, where=where)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Graph break" not in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 4 s each
@pytest.mark.parametrize("where", ["before_in_place", "before_wrapper", "inside_in_place", "inside_wrapper"])
def test_a_compiled_submodule_is_observed_uncompiled_and_runs_compiled_otherwise(where):
    got = _run(bug=False, where=where)
    assert got["breaks"] == [] and got["warnings"] == [], got
    assert got["alarms"] == [] and got["mode"] == "pass" and got["monitors"] == "pass", got
    assert got["observed"] == 3, got  # steps 19, 39, 59 of 64: the monitor's hooks saw each one's activations
    # 64 training steps, 6 of them observed by the watch (the first 3, then 1 in 20): the rest run the encoder
    # compiled, and so do the 4 validations; a compile for training and one for evaluation
    assert got["compiled_runs"] >= 64 - 6, got
    assert got["compiles"] <= 4, got


@pytest.mark.slow  # 4 s each
@pytest.mark.parametrize("where", ["before_wrapper", "inside_in_place"])
def test_eval_mode_left_on_through_a_compiled_submodule_is_named(where):
    got = _run(bug=True, where=where)
    assert got["breaks"] == [] and got["warnings"] == [], got
    assert got["mode"] == "fail", got
