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


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_language_model_with_a_carried_state_trained_on_its_own_inputs_is_named():
    verdict = _stream_loop(CarriedStateLM(), shifted=False)
    assert verdict is not None and verdict.status == "fail"
    assert "shift the targets by one (y = x[:, 1:], inputs x[:, :-1])" in verdict.advice


def test_a_language_model_with_a_carried_state_on_next_token_targets_is_not_named():
    assert _stream_loop(CarriedStateLM(), shifted=True) is None


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_bidirectional_model_reconstructing_its_tokens_is_not_named():
    assert _stream_loop(CarriedStateLM(bidirectional=True), shifted=False) is None


@pytest.mark.parametrize("mask, named", [("causal", True), ("none", False)])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_a_transformer_trained_on_its_inputs_is_named_only_when_it_is_left_to_right(mask, named):
    seq = _sentences()[:, :-1]
    verdict = _batches_loop(TinyGPT(mask), seq, seq)  # without a mask: a token autoencoder, copying by design
    assert (verdict is not None and verdict.status == "fail") is named


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_causal_transformer_on_shifted_targets_is_not_named():
    seq = _sentences()
    assert _batches_loop(TinyGPT("causal"), seq[:, :-1], seq[:, 1:]) is None


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
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


def _tuple_targets_loop(shifted, pack):
    """A causal transformer over a DataLoader whose targets come with a mask of the positions to count, handed to
    ``w.step`` as the batch carries them: a (tokens, mask) tuple or a dict."""
    seq = _sentences()
    x, y = (seq[:, :-1], seq[:, 1:]) if shifted else (seq[:, :-1], seq[:, :-1])
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[::3, -3:] = False  # the last positions of every third sequence are padding
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, mask), batch_size=16)
    model = TinyGPT("causal")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(4):
            for xb, yb, mb in loader:
                out = model(xb)
                per_token = F.cross_entropy(out.reshape(-1, V), yb.reshape(-1), reduction="none")
                loss = (per_token * mb.reshape(-1)).sum() / mb.sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=(yb, mb) if pack == "tuple" else {"mask": mb, "labels": yb})
    return next((v for v in w.report().verdicts if v.check == NAME), None)


@pytest.mark.parametrize("pack", ["tuple", "dict"])
@pytest.mark.slow  # 0.33 s each on a 2-core CPU (RESULTS §51)
def test_token_targets_handed_over_with_their_mask_are_read(pack):
    verdict = _tuple_targets_loop(shifted=False, pack=pack)
    assert verdict is not None and verdict.status == "fail", verdict
    assert "y = x[:, 1:]" in verdict.advice
    assert _tuple_targets_loop(shifted=True, pack=pack) is None


class _TokenBatches(torch.utils.data.Dataset):
    """Batches as dicts whose labels are the input ids themselves (the loss is to shift them)."""

    def __init__(self, seq):
        self.seq = seq

    def __len__(self):
        return len(self.seq)

    def __getitem__(self, i):
        return {"input_ids": self.seq[i], "attention_mask": torch.ones_like(self.seq[i]), "labels": self.seq[i]}


@pytest.mark.parametrize("handed", ["batch", "labels"])
@pytest.mark.parametrize("shift_in_loss", [True, False])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_labels_equal_to_the_input_ids_are_named_only_when_the_loss_does_not_shift_them(shift_in_loss, handed):
    loader = torch.utils.data.DataLoader(_TokenBatches(_sentences()), batch_size=16)
    model = TinyGPT("causal")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(4):
            for batch in loader:
                logits, labels = model(batch["input_ids"]), batch["labels"]
                if shift_in_loss:  # position t is scored against token t + 1
                    logits, labels = logits[:, :-1], labels[:, 1:]
                loss = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=batch if handed == "batch" else batch["labels"])
    verdict = next((v for v in w.report().verdicts if v.check == NAME), None)
    assert (verdict is not None and verdict.status == "fail") is not shift_in_loss, verdict
