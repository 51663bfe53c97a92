"""A decoder handed its targets as an input and shifting them right itself (``torch.cat([bos, labels[:, :-1]],
1)``, as Hugging Face's ``shift_tokens_right`` does inside BART and T5) reads, at each position, only the tokens
before it: targets equal to that input are no copy. ``next-token targets`` names the decoder fed the labels
unshifted, whose output at a position reads the very token it must predict."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.inputs import as_inputs
from trainwell.doctor.sequence_targets import sequence_targets

V, BOS = 12, 0


class Seq2Seq(nn.Module):
    def __init__(self, shift: bool):
        super().__init__()
        self.shift = shift
        self.emb = nn.Embedding(V, 16)
        self.enc = nn.GRU(16, 32, batch_first=True)
        self.dec = nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, V)

    def forward(self, src, labels):
        _, h = self.enc(self.emb(src))
        inp = labels
        if self.shift:  # teacher forcing: position t reads the labels before t
            inp = torch.cat([torch.full_like(labels[:, :1], BOS), labels[:, :-1]], 1)
        y, _ = self.dec(self.emb(inp), h)
        return self.out(y)


def _loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))


def _verdict(shift: bool):
    torch.manual_seed(0)
    src = torch.randint(1, V, (64, 6))
    labels = src.flip(1)  # the reversed sequence
    model = Seq2Seq(shift)
    return sequence_targets(model, as_inputs((src, labels), model), labels, _loss)


@pytest.mark.slow  # 0.4-0.6 s on a loaded box
def test_a_decoder_that_shifts_its_labels_itself_is_no_copy():
    v = _verdict(shift=True)
    assert v is None or v.status not in ("warn", "fail")


@pytest.mark.slow
def test_a_decoder_fed_its_labels_unshifted_still_fails():
    v = _verdict(shift=False)
    assert v is not None and v.status == "fail" and "copy" in v.advice
