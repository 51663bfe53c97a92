"""A softmax written inside the user's loss expression before a cross-entropy (``F.cross_entropy(out.softmax(-1),
y)``): check's overfit names it, for a tagger's (B, T, C) scores and for a dict output's logits, and leaves plain
and label-smoothed cross-entropy alone."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.probability_floor import probability_floor, softmax_inside_loss


class Tagger(nn.Module):
    def __init__(self, vocab=30, tags=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.out = nn.Linear(32, tags)

    def forward(self, ids):
        return self.out(self.rnn(self.embed(ids))[0])


class TwoHeads(nn.Module):
    def __init__(self, d=8, classes=4):
        super().__init__()
        self.body = nn.Linear(d, 32)
        self.classes = nn.Linear(32, classes)
        self.aux = nn.Linear(32, 1)

    def forward(self, x):
        h = torch.relu(self.body(x))
        return {"logits": self.classes(h), "aux": self.aux(h)}


def _tagged(n=64, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 30, (n, length), generator=g)
    return ids, ids % 5


def _tag_loss(out, tags):
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), tags.reshape(-1))


@pytest.mark.slow  # seconds each
def test_a_taggers_softmax_inside_the_loss_is_named():
    ids, tags = _tagged()
    torch.manual_seed(0)
    healthy = doctor.check(Tagger(), ids, tags, _tag_loss)
    assert not healthy.failed, healthy.failed
    broken = doctor.check(Tagger(), ids, tags, lambda out, t: _tag_loss(out.softmax(-1), t))
    assert broken["overfit a tiny subset"].status == "fail"
    assert "softmax" in broken["overfit a tiny subset"].advice


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_softmax_on_a_dict_outputs_logits_inside_the_loss_is_named():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = x[:, :4].argmax(1)

    def summed(out, t, squash=False):
        scores = out["logits"].softmax(-1) if squash else out["logits"]
        return F.cross_entropy(scores, t) + 0.1 * out["aux"].pow(2).mean()

    torch.manual_seed(0)
    assert not doctor.check(TwoHeads(), x, y, summed).failed
    broken = doctor.check(TwoHeads(), x, y, lambda out, t: summed(out, t, squash=True))
    assert broken["overfit a tiny subset"].status == "fail"
    assert f"{probability_floor(4):.3g}" in broken["overfit a tiny subset"].advice


def test_plain_and_label_smoothed_cross_entropy_are_not_read_as_a_softmax_inside():
    torch.manual_seed(0)
    model = nn.Linear(8, 4)
    x, y = torch.randn(32, 8), torch.randint(0, 4, (32,))
    assert softmax_inside_loss(model, x, y, lambda o, t: F.cross_entropy(o, t)) is None
    assert softmax_inside_loss(model, x, y, lambda o, t: F.cross_entropy(o, t, label_smoothing=0.1)) is None
    assert softmax_inside_loss(model, x, y, lambda o, t: F.cross_entropy(o.softmax(-1), t)) is not None
    assert math.isclose(probability_floor(4), math.log(math.e + 3) - 1)
