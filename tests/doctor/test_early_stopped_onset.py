"""A loop that stops by hand once validation has not improved for 5 epochs (patience 5, the best weights kept):
validation rises over its last 5 evaluations, so the onset of overfitting is read at its last epoch. The run
stopped at the onset, as early stopping does: information naming the best epoch, not a warning to stop earlier.
The same loop trained on past the onset still warns."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import overfitting


def _run(stop_by_hand: bool):
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    # the validation losses the loop measures: best at epoch 5, then rising (scripted: the reading is the point)
    val = [0.60, 0.50, 0.45, 0.42, 0.41, 0.415, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.48]
    best, bad = float("inf"), 0
    with doctor.watch(model, opt, every=10, batch_size=32) as w:
        for epoch in range(len(val)):
            model.train()
            for i in range(0, 256, 32):
                opt.zero_grad()
                loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
                loss.backward()
                opt.step()
                w.step(loss, y=y[i:i + 32])
            w.validate(val[epoch])
            if val[epoch] < best:
                best, bad = val[epoch], 0
            else:
                bad += 1
                if stop_by_hand and bad >= 5:
                    break
    return w.report()["overfitting"]


@pytest.mark.slow  # ~1-3 s: a watched loop of 10-13 epochs
def test_a_run_stopped_by_hand_at_the_onset_is_information():
    verdict = _run(stop_by_hand=True)
    assert verdict.status == "info" and "stopped at the onset (epoch 10)" in verdict.value, verdict
    assert "epoch 5: val loss 0.41" in verdict.advice


@pytest.mark.slow  # ~1-3 s: a watched loop of 13 epochs
def test_a_run_trained_on_past_the_onset_still_warns():
    verdict = _run(stop_by_hand=False)
    assert verdict.status == "warn" and "onset at epoch 10" in verdict.value, verdict


def test_an_onset_at_the_last_epoch_without_every_validation_is_not_read_as_stopped():
    hist = [{"train_loss": 1.0 - 0.05 * i} for i in range(3)] + \
        [{"train_loss": 0.8 - 0.05 * i, "val_loss": 0.5 + 0.01 * i} for i in range(6)]
    assert overfitting(hist, len(hist) - 1).status == "warn"
