"""``trainwell watch --check`` on an autoencoder trained under CPU bfloat16 autocast with an optimizer per half:
the loss reads the decoder's output, so the pre-flight checks the decoder on its inputs, the encoder's bfloat16
outputs. ``doctor.check`` runs with autocast off, in the weights' precision: those inputs are read in float32,
not handed to a float32 Linear as bfloat16 (a dtype error the script never raised)."""

import gc
import textwrap

import pytest
import torch._dynamo  # noqa: F401  (imported before any watch, as in test_script_preflight.py)

from trainwell.doctor.script_watch import ScriptWatch

SCRIPT = """
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.sigmoid(torch.randn(256, 4) @ torch.randn(4, 16))
enc = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
dec = nn.Sequential(nn.Linear(4, 32), nn.GELU(), nn.Linear(32, 16))
opt_enc = torch.optim.Adam(enc.parameters(), lr=2e-3)
opt_dec = torch.optim.Adam(dec.parameters(), lr=2e-3)
for epoch in range(2):
    for (xb,) in DataLoader(TensorDataset(x), batch_size=32, shuffle=True):
        opt_enc.zero_grad()
        opt_dec.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            recon = dec(enc(xb))
        loss = F.mse_loss(recon.float(), xb)
        loss.backward()
        opt_enc.step()
        opt_dec.step()
"""


@pytest.mark.slow  # ~2 s: a run with its pre-flight
def test_the_pre_flight_reads_a_module_s_autocast_inputs_in_its_weights_precision(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    gc.collect()
    runner = ScriptWatch(every=5, check=True)
    [report] = runner.run(str(path), [])
    assert runner.error is None, runner.error
    pre = {v.check: v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"}
    assert pre["pre-flight"].status == "info" and "nn.MSELoss()" in pre["pre-flight"].value, pre["pre-flight"].value
    assert not {k: v.value for k, v in pre.items() if v.status in ("warn", "fail")}
