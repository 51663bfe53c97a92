"""The doctor on a bidirectional LSTM classifier that reads ``out[:, -1, :]``, as many tutorials and answers write it:
at the last step the backward half has read one token, the last, and the backward direction's summary of the
sequence (at step 0) is thrown away. ``bidirectional read`` names it; the twins that take the final states
``torch.cat([h_n[-2], h_n[-1]], 1)``, read each half at its own end, or pool over every step (a tagger reads every
step too) are not named, nor is a one-directional LSTM read at its last step."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.bidirectional_read import one_token_direction

V, T, H = 20, 10, 16


class BiLSTM(nn.Module):
    def __init__(self, read: str, bidirectional: bool = True, batch_first: bool = True):
        super().__init__()
        self.read, self.batch_first = read, batch_first
        self.emb = nn.Embedding(V, 8)
        self.rnn = nn.LSTM(8, H, batch_first=batch_first, bidirectional=bidirectional)
        self.fc = nn.Linear(2 * H if bidirectional else H, 4)

    def forward(self, ids):
        e = self.emb(ids) if self.batch_first else self.emb(ids).transpose(0, 1)
        out, (h, _) = self.rnn(e)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if self.read == "last":
            return self.fc(out[:, -1, :])
        if self.read == "final_states":
            return self.fc(torch.cat([h[-2], h[-1]], 1))
        if self.read == "each_end":
            return self.fc(torch.cat([out[:, -1, :H], out[:, 0, H:]], 1))
        if self.read == "mean":
            return self.fc(out.mean(1))
        return self.fc(out)  # "every": a tagger, scores per step


def _ids():
    return torch.randint(0, V, (16, T), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("batch_first", [True, False])
def test_out_last_step_of_a_bidirectional_lstm_is_named(batch_first):
    torch.manual_seed(0)
    v = one_token_direction(BiLSTM("last", batch_first=batch_first), _ids())
    assert v is not None and v.status == "warn", v
    assert "backward half" in v.value and "'rnn'" in v.value and "h_n[-2]" in v.advice, v


@pytest.mark.parametrize("read", ["final_states", "each_end", "mean", "every"])
def test_reads_that_keep_both_directions_are_not_named(read):
    torch.manual_seed(0)
    assert one_token_direction(BiLSTM(read), _ids()) is None


def test_a_one_directional_lstm_read_at_its_last_step_is_not_named():
    torch.manual_seed(0)
    assert one_token_direction(BiLSTM("last", bidirectional=False), _ids()) is None


@pytest.mark.slow
def test_doctor_check_names_it_and_not_the_final_states_twin():
    ids = _ids()
    y = (ids[:, :3] < 5).sum(1)
    named = {}
    for read in ("last", "final_states"):
        torch.manual_seed(0)
        named[read] = [v for v in doctor.check(BiLSTM(read), ids, y, F.cross_entropy)
                       if v.check == "bidirectional read"]
    assert named["last"] and named["last"][0].status == "warn" and not named["final_states"], named
