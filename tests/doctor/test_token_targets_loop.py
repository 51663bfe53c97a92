"""``doctor.watch`` on users' token loops: a left-to-right language model trained on its own inputs as targets (not
shifted by one) is named; the shifted targets, a model that reads the whole sequence (a token autoencoder or
denoiser, copying by design) and a tagger are not."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

from .test_sequence_models import TinyGPT, V, _sentences

NAME = "loop: next-token targets"


class CarriedStateLM(nn.Module):
    """An LSTM language model whose state is carried across batches (truncated back-propagation through time)."""

    def __init__(self, bidirectional=False):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, 32)
        self.lstm = nn.LSTM(32, 32, batch_first=True, bidirectional=bidirectional)
        self.head = nn.Linear(64 if bidirectional else 32, V)

    def forward(self, x, state=None):
        out, state = self.lstm(self.emb(x), state)
        return self.head(out), state


def _stream_loop(model, shifted, steps=20, batch=16, window=8):
    """A truncated-BPTT loop over one token stream cut into ``batch`` rows, the state detached between windows;
    targets the next tokens (``shifted``) or the window itself."""
    seq = _sentences(n=batch * 4).reshape(batch, -1)  # (batch, 4 * T) tokens
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        state, start = None, 0
        for _ in range(steps):
            if start + window + 1 > seq.shape[1]:
                state, start = None, 0
            x = seq[:, start : start + window]
            y = seq[:, start + 1 : start + window + 1] if shifted else x
            if state is not None:
                state = tuple(s.detach() for s in state)
            out, state = model(x, state)
            loss = F.cross_entropy(out.reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
            start += window
    return next((v for v in w.report().verdicts if v.check == NAME), None)


def _batches_loop(model, x, y, steps=16, batch=16, loss_fn=None):
    """A plain loop over (x, y) batches in order, the targets given to ``w.step``."""
    loss_fn = loss_fn or (lambda out, t: F.cross_entropy(out.reshape(-1, out.shape[-1]), t.reshape(-1)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=4) as w:
        for s in range(steps):
            i = (s * batch) % len(x)
            xb, yb = x[i : i + batch], y[i : i + batch]
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return next((v for v in w.report().verdicts if v.check == NAME), None)


def test_a_language_model_with_a_carried_state_trained_on_its_own_inputs_is_named():
    verdict = _stream_loop(CarriedStateLM(), shifted=False)
    assert verdict is not None and verdict.status == "fail"
    assert "shift the targets by one (y = x[:, 1:], inputs x[:, :-1])" in verdict.advice


def test_a_language_model_with_a_carried_state_on_next_token_targets_is_not_named():
    assert _stream_loop(CarriedStateLM(), shifted=True) is None


def test_a_bidirectional_model_reconstructing_its_tokens_is_not_named():
    assert _stream_loop(CarriedStateLM(bidirectional=True), shifted=False) is None


@pytest.mark.parametrize("mask, named", [("causal", True), ("none", False)])
def test_a_transformer_trained_on_its_inputs_is_named_only_when_it_is_left_to_right(mask, named):
    seq = _sentences()[:, :-1]
    verdict = _batches_loop(TinyGPT(mask), seq, seq)  # without a mask: a token autoencoder, copying by design
    assert (verdict is not None and verdict.status == "fail") is named


def test_a_causal_transformer_on_shifted_targets_is_not_named():
    seq = _sentences()
    assert _batches_loop(TinyGPT("causal"), seq[:, :-1], seq[:, 1:]) is None


def test_a_left_to_right_tagger_is_not_named():
    seq = _sentences()[:, :-1]
    tags = (seq >= 6).long() + 2 * (seq % 2)  # 4 tags, another range than the tokens

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb, self.rnn, self.out = nn.Embedding(V, 16), nn.LSTM(16, 16, batch_first=True), nn.Linear(16, 4)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    assert _batches_loop(Tagger(), seq, tags) is None
