"""``trainwell watch`` on a script that validates an exponential moving average of its weights
(``ema = copy.deepcopy(model)``) instead of the model it trains: the copy's validation forwards are read as the
model's. With the EMA's update forgotten, the validation loss is the initial model's at every evaluation, named as
the explicit ``w.validate()`` names it; an updated EMA passes, its validation losses read as the script computes
them; an EMA evaluated beside the model leaves the validation loss the model's."""

import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import copy
import sys
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x = torch.randn(352, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
ema = copy.deepcopy(model)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
MODE = sys.argv[1]  # "updated" | "forgotten" | "beside" (the model evaluated too, first)
VALS, EMA_VALS = [], []
for epoch in range(4):
    model.train()
    for i in range(0, 256, 16):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
        opt.step()
        if MODE != "forgotten":
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.mul_(0.8).add_(p, alpha=0.2)
    model.eval()
    ema.eval()
    with torch.no_grad():
        if MODE == "beside":
            VALS.append(F.cross_entropy(model(x[256:]), y[256:]).item())
        EMA_VALS.append(F.cross_entropy(ema(x[256:]), y[256:]).item())
"""


def _run(tmp_path, mode: str):
    path = tmp_path / f"{mode}.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=5)
    [report] = runner.run(str(path), [mode])
    assert runner.error is None, runner.error
    [w] = runner.watches
    return report, [v for _, v, _ in w._val], runner._globals


@pytest.mark.slow  # ~5 s: three runs of a 64-step script
def test_an_ema_validated_in_the_models_place_is_read(tmp_path):
    report, vals, g = _run(tmp_path, "forgotten")
    assert len(set(g["EMA_VALS"])) == 1  # the oracle: the copy never changes
    over = report["overfitting"]
    assert over.status == "warn" and over.value.startswith("the validation loss does not change"), over
    report, vals, g = _run(tmp_path, "updated")
    assert vals == pytest.approx(g["EMA_VALS"][-len(vals):], rel=1e-5) and len(vals) >= 3
    assert report["overfitting"].status == "pass", report["overfitting"]
    report, vals, g = _run(tmp_path, "beside")
    assert vals == pytest.approx(g["VALS"][-len(vals):], rel=1e-5) and len(vals) >= 3  # the model's, not the EMA's


AVERAGED = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

torch.manual_seed(0)
x = torch.randn(352, 8)
y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 3))
ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.8))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
MODE = sys.argv[1]  # "updated" | "forgotten"
EMA_VALS = []
for epoch in range(4):
    model.train()
    for i in range(0, 256, 16):
        opt.zero_grad()
        F.cross_entropy(model(x[i:i + 16]), y[i:i + 16]).backward()
        opt.step()
        if MODE == "updated":
            ema.update_parameters(model)
    ema.eval()
    with torch.no_grad():
        EMA_VALS.append(F.cross_entropy(ema(x[256:]), y[256:]).item())
"""


@pytest.mark.slow  # ~3 s: two runs of a 64-step script
def test_torchs_averaged_model_is_read_as_the_validated_copy(tmp_path):
    """``torch.optim.swa_utils.AveragedModel`` wraps the model (its class is not the model's): read the same way."""
    for mode in ("forgotten", "updated"):
        path = tmp_path / f"averaged_{mode}.py"
        path.write_text(textwrap.dedent(AVERAGED))
        runner = ScriptWatch(every=5)
        [report] = runner.run(str(path), [mode])
        assert runner.error is None, runner.error
        vals = [v for _, v, _ in runner.watches[0]._val]
        assert vals == pytest.approx(runner._globals["EMA_VALS"][-len(vals):], rel=1e-5) and len(vals) >= 3
        over = report["overfitting"]
        if mode == "forgotten":
            assert over.status == "warn" and over.value.startswith("the validation loss does not change"), over
        else:
            assert over.status == "pass", over
