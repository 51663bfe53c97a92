"""``loop: residual blocks`` on a run that diverged: blocks returning ``x + body(x) + x`` double the signal at each
block, the loss goes to NaN, and the trained weights the report reads are NaN; each block is then read on noise of
its input's shape (its zeroed copy's gain of 2 does not depend on the input), so ``trainwell watch`` names the
blocks, not only the NaN. The healthy twin, ``x + body(x)``, trains and is not named."""

import gc
import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

TWICE = sys.argv[1] == "twice"
torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 0.5).long()


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32))

    def forward(self, h):
        return h + self.body(h) + h if TWICE else h + self.body(h)


model = nn.Sequential(nn.Linear(8, 32), *[Block() for _ in range(6)], nn.Linear(32, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for epoch in range(3):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        idx = perm[i:i + 32]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("skips") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    out = {}
    for kind in ("twice", "once"):
        runner = ScriptWatch(every=8)
        reports = runner.run(str(path), [kind])
        out[kind] = ({v.check: v for r in reports for v in r if v.status in ("warn", "fail")},
                     [float(v) for v in runner.watches[0].losses])
        assert runner.error is None, runner.error
        del runner
        gc.collect()
    return out


@pytest.mark.slow  # ~2 s, shared: two runs of a 48-step script
def test_blocks_adding_their_input_twice_are_named_after_the_run_diverged(runs):
    alarms, losses = runs["twice"]
    assert any(v != v for v in losses)  # the run diverged: the report reads NaN weights
    assert "returns 2x its input" in alarms["loop: residual blocks"].value


@pytest.mark.slow  # shares the runs above
def test_blocks_adding_their_input_once_are_not_named(runs):
    assert "loop: residual blocks" not in runs["once"][0]
