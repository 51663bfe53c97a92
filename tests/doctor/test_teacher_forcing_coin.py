"""A seq2seq decoder trained with teacher forcing on a coin per step (probability 0.5, Python's ``random``) takes
its targets as an input, shifted by one inside the forward. The probe of which positions read which tokens runs the
forward twice; both runs must draw the same coins, or the coin, not the tokens, moves the outputs."""
import random

import torch
from torch import nn

from trainwell.doctor.sequence_targets import _MOVED, position_reads

V, SOS, T = 12, 10, 6


class Seq2Seq(nn.Module):
    """The user's model: the decoder is fed y[:, t - 1] (teacher forcing) or its own last guess, by a coin."""

    def __init__(self, shift=True):
        super().__init__()
        self.emb = nn.Embedding(V, 16)
        self.enc, self.dec = nn.GRU(16, 32, batch_first=True), nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, V)
        self.shift = shift

    def forward(self, x, y, tf=0.5):
        _, h = self.enc(self.emb(x))
        tok = torch.full((len(x), 1), SOS, dtype=torch.long)
        logits = []
        for t in range(T):
            if not self.shift:  # the bug: the decoder reads the token it is asked for
                tok = y[:, t:t + 1]
            o, h = self.dec(self.emb(tok), h)
            logits.append(self.out(o))
            tok = y[:, t:t + 1] if random.random() < tf else logits[-1].argmax(-1)
        return torch.cat(logits, 1)


def test_a_coin_per_step_does_not_move_the_outputs_between_the_probes_runs():
    torch.manual_seed(0)
    random.seed(0)
    model = Seq2Seq().eval()
    x = torch.randint(0, 10, (8, T))
    y = x.flip(1)
    state = random.getstate()
    for _ in range(5):  # before: the coins differed between the two runs and moved the outputs on most tries
        reads = position_reads(lambda rows: model(x, rows), y, T // 2)
        assert reads is not None and reads[0] <= _MOVED and reads[1] <= _MOVED, reads
    assert random.getstate() == state  # the user's draws are left alone


def test_a_decoder_that_reads_the_token_it_is_asked_for_is_still_seen():
    torch.manual_seed(0)
    random.seed(0)
    model = Seq2Seq(shift=False).eval()
    x = torch.randint(0, 10, (8, T))
    reads = position_reads(lambda rows: model(x, rows, tf=1.0), x.flip(1), T // 2)
    assert reads is not None and reads[0] <= _MOVED and reads[1] > _MOVED
