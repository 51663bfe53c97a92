"""The pre-flight's readings of how the model is wired, run by the watch at its report so that ``trainwell watch``
names them without ``--check``: a bidirectional GRU read at ``out[:, -1]`` (its backward half has read one token
there), one BatchNorm1d applied after two different layers, and a (max_len, 1, d) positional encoding sliced by
the batch size on batch-first tokens, ``F.dropout(h, p)`` without ``training=self.training``, a layer list
repeated with ``* 2``. Healthy twins: the final states, a BatchNorm per layer, ``pe[:, :T]``,
``training=self.training``, new layers."""

import gc
import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

KIND = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(512, 8, 4)
y = (x[:, :, 0].sum(1) > 0).long() + (x[:, 0, 1] > 0.5).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 16)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.fc1, self.fc2 = nn.Linear(32, 32), nn.Linear(32, 32)
        self.bn1 = nn.BatchNorm1d(32)
        self.bn2 = self.bn1 if KIND == "bn_shared" else nn.BatchNorm1d(32)
        block = [nn.Linear(32, 32), nn.ReLU()]  # "repeated": the list repeated, one layer at two positions
        self.deep = nn.Sequential(*(block * 2 if KIND == "repeated" else block + [nn.Linear(32, 32), nn.ReLU()]))
        self.head = nn.Linear(32, 3)
        self.register_buffer("pe", 0.1 * torch.randn(64, 1, 16))  # written for (T, B, d) inputs

    def forward(self, tokens):
        h = self.inp(tokens)
        h = h + (self.pe[:h.size(0)] if KIND == "pe_batch" else self.pe[:h.size(1)].transpose(0, 1))
        out, last = self.rnn(h)
        h = out[:, -1] if KIND == "rnn_last" else torch.cat([last[0], last[1]], 1)
        h = F.dropout(h, 0.1) if KIND == "fdropout" else F.dropout(h, 0.1, training=self.training)
        h = F.relu(self.bn1(self.fc1(h)))
        return self.head(self.deep(F.relu(self.bn2(self.fc2(h)))))


model = Net()
opt = torch.optim.Adam(model.parameters(), lr=0.003)
for epoch in range(2):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        idx = perm[i:i + 32]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""

BUGS = {"rnn_last": "loop: bidirectional read", "bn_shared": "loop: batchnorm reuse",
        "pe_batch": "loop: batch independence", "fdropout": "loop: eval-mode forwards",
        "repeated": "loop: parameters registered"}


@pytest.fixture(scope="module")
def alarms(tmp_path_factory):
    path = tmp_path_factory.mktemp("wiring") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    out = {}
    for kind in (*BUGS, "healthy"):
        runner = ScriptWatch(every=8)
        out[kind] = {v.check: v for r in runner.run(str(path), [kind]) for v in r if v.status in ("warn", "fail")}
        assert runner.error is None, runner.error
        del runner
        gc.collect()
    return out


@pytest.mark.slow  # ~6 s, shared: six runs of a 32-step script
@pytest.mark.parametrize("kind", list(BUGS))
def test_a_wiring_bug_is_named_by_the_watch_without_the_pre_flight(alarms, kind):
    assert BUGS[kind] in alarms[kind], alarms[kind]
    assert not set(BUGS.values()) & (set(alarms[kind]) - {BUGS[kind]})


@pytest.mark.slow  # shares the runs above
def test_the_healthy_wiring_is_not_named(alarms):
    assert not set(BUGS.values()) & set(alarms["healthy"]), alarms["healthy"]
