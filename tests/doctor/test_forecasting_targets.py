"""The doctor on users' forecasting models whose floating-point targets are one of the model's own inputs: an LSTM
trained on y = x (the next value not shifted in), a sequence-to-sequence decoder fed the current target instead of
the previous one (teacher forcing); against their healthy forms, an autoencoder (y = x by design) and a decoder that
shifts its targets itself. ``doctor.check`` reads them on the batch, ``doctor.watch`` on the targets given to
``w.step`` against the inputs its forward saw."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

S, STEPS = 16, 600


def _series():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(STEPS, dtype=torch.float32)
    phase = torch.rand(S, 1, generator=g) * 6.28
    noise = 0.1 * torch.randn(S, STEPS, generator=g)
    return (torch.sin(0.07 * t + phase) + 0.5 * torch.sin(0.19 * t + 2 * phase) + noise).unsqueeze(-1)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm, self.out = nn.LSTM(1, 16, batch_first=True), nn.Linear(16, 1)

    def forward(self, x, state=None):
        h, state = self.lstm(x, state)
        return self.out(h), state


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.enc, self.dec, self.out = nn.GRU(1, 16, batch_first=True), nn.GRU(1, 16, batch_first=True), \
            nn.Linear(16, 1)

    def forward(self, past, dec_in):
        _, h = self.enc(past)
        return self.out(self.dec(dec_in, h)[0])


class ShiftingSeq2Seq(Seq2Seq):
    """Takes the targets themselves and feeds its decoder the previous step (the last past value first)."""

    def forward(self, past, future):
        return super().forward(past, torch.cat([past[:, -1:], future[:, :-1]], 1))


def _forecast_loss(out, y):
    return F.mse_loss(out[0], y)


def _windows(leak):
    s = _series()
    past, future = s[:, :30], s[:, 30:40]
    dec_in = future if leak else torch.cat([past[:, -1:], future[:, :-1]], 1)
    return past, dec_in, future


@pytest.mark.slow  # seconds each
def test_check_names_forecasting_targets_equal_to_the_input():
    s = _series()
    model = Forecaster()
    report = doctor.check(model, s[:, :25], s[:, :25], _forecast_loss)
    v = report["targets vs inputs"]
    assert v.status == "warn" and "shifted by one step" in v.advice
    healthy = doctor.check(model, s[:, :25], s[:, 1:26], _forecast_loss)
    assert "targets vs inputs" not in healthy.checks


@pytest.mark.slow
def test_check_names_a_decoder_fed_its_own_targets():
    past, dec_in, future = _windows(leak=True)
    v = doctor.check(Seq2Seq(), (past, dec_in), future, nn.MSELoss())["targets vs inputs"]
    assert v.status == "warn" and "input 2 of 2" in v.value and "decoder's input" in v.advice
    past, dec_in, future = _windows(leak=False)
    assert "targets vs inputs" not in doctor.check(Seq2Seq(), (past, dec_in), future, nn.MSELoss()).checks


@pytest.mark.slow
def test_check_leaves_a_decoder_that_shifts_its_targets_itself_and_calls_an_autoencoder_one():
    past, _, future = _windows(leak=False)
    # the targets are the model's second input, but its output at step t never reads their step t
    assert "targets vs inputs" not in doctor.check(ShiftingSeq2Seq(), (past, future), future, nn.MSELoss()).checks
    torch.manual_seed(0)
    autoencoder = nn.Sequential(nn.Linear(20, 8), nn.Tanh(), nn.Linear(8, 20))
    x = torch.randn(64, 20)
    v = doctor.check(autoencoder, x, x, nn.MSELoss())["targets vs inputs"]
    assert v.status == "info" and "autoencoder" in v.value and "shifted by one step" in v.advice
    # an autoencoder of each step on its own (its output at step t reads step t alone)
    frames = torch.randn(32, 12, 6)
    per_step = nn.Sequential(nn.Linear(6, 3), nn.Tanh(), nn.Linear(3, 6))
    assert doctor.check(per_step, frames, frames, nn.MSELoss())["targets vs inputs"].status == "info"


def _stateful_loop(shift):
    """Truncated backpropagation through time over chunks of 25 steps, the hidden state carried (detached)."""
    s = _series()
    model = Forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        state = None
        for i in range(0, 300, 25):
            x = s[:, i : i + 25]
            y = s[:, i + 1 : i + 26] if shift else x
            out, state = model(x, state)
            state = tuple(h.detach() for h in state)
            loss = F.mse_loss(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    return w.report()


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_watch_names_a_forecasting_loop_whose_targets_are_its_inputs():
    report = _stateful_loop(shift=False)
    v = report["loop: targets vs inputs"]
    assert v.status == "warn" and "shifted by one step" in v.advice
    assert report["learning rate (loss curve)"].status == "info"  # a falling loss that copies is no good curve
    assert "loop: targets vs inputs" not in _stateful_loop(shift=True).checks


def _teacher_forced_loop(leak, model=None):
    """Teacher forcing over the windows; ``model``: one that takes the targets themselves (it shifts them)."""
    past, dec_in, future = _windows(leak)
    if model is not None:
        dec_in = future
    model = model or Seq2Seq()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(6):
            for i in range(0, S, 4):
                loss = F.mse_loss(model(past[i : i + 4], dec_in[i : i + 4]), future[i : i + 4])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=future[i : i + 4])
    return w.report()


@pytest.mark.slow  # seconds each
def test_watch_names_a_decoder_fed_the_current_target():
    v = _teacher_forced_loop(leak=True)["loop: targets vs inputs"]
    assert v.status == "warn" and "decoder's input" in v.advice and "y[t-1]" in v.advice
    assert "loop: targets vs inputs" not in _teacher_forced_loop(leak=False).checks
    # the targets given to the model, which feeds its decoder the previous step itself
    assert "loop: targets vs inputs" not in _teacher_forced_loop(leak=False, model=ShiftingSeq2Seq()).checks
