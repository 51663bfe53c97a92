"""``trainwell watch --check`` on a sequence-first recurrent classifier: the (T, B, ...) batches a default
``nn.GRU`` reads are joined along their examples (dimension 1) for the pre-flight, also when a batch holds as many
sequences as steps (B == T), where the shapes alone cannot tell the axes apart (joined along T, 8 sequences of
8k steps read as 8k sequences, the pre-flight failed batch independence on a healthy model)."""

import gc
import re
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import sys
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

T, BATCH, LAYOUT = 8, int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
y = torch.randint(0, 3, (240,))
t = torch.arange(T).float()
x = (torch.sin((0.4 + 0.5 * y.float())[:, None] * t) + 0.2 * torch.randn(240, T)).unsqueeze(-1)


def collate(batch):
    xs, ys = zip(*batch)
    return torch.stack(xs, 1 if LAYOUT == "seq_first" else 0), torch.stack(ys)


class GRUClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])


model = GRUClassifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True, collate_fn=collate)
for epoch in range(2):
    for xb, yb in loader:
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _pre_flight(tmp_path, batch: int, layout: str) -> dict:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    gc.collect()
    runner = ScriptWatch(every=10, check=True)
    [report] = runner.run(str(path), [str(batch), layout])
    assert runner.error is None, runner.error
    return {v.check: v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"}


@pytest.mark.slow  # ~2 s each: a run with its pre-flight
@pytest.mark.parametrize("batch", [8, 12])
def test_sequence_first_batches_are_joined_along_their_examples_for_the_pre_flight(tmp_path, batch):
    pre = _pre_flight(tmp_path, batch, "seq_first")
    assert pre["pre-flight"].status == "info", pre["pre-flight"].value
    batches = int(re.search(r"first (\d+) training batches", pre["pre-flight"].value).group(1))
    assert f"({batches * batch} examples)" in pre["pre-flight"].value  # B per batch, not T
    alarms = {k: v.value for k, v in pre.items() if v.status in ("warn", "fail")}
    assert not alarms, alarms
