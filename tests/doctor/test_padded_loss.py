"""The doctor on a tagger trained on padded sentences (tag 0 = <pad>) whose loss masks the padding by multiplying a
mask onto ``nn.CrossEntropyLoss()``: the default ``reduction='mean'`` has already averaged every position into one
number, so ``(criterion(out, y) * mask).sum() / mask.sum()`` is the plain mean and the padding is trained as much as
the words. ``padding in the loss`` names it (and a loss with no mask at all); the twins, a per-position loss
(``reduction='none'``) times the mask and ``ignore_index=0``, leave the padding out and are not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.padded_loss import padded_loss

V, K, T, PAD = 30, 6, 12, 0


def _data(n=64):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(4, T + 1, (n,), generator=g)
    ids = torch.randint(1, V, (n, T), generator=g)
    tags = 1 + (ids % (K - 1))
    pad = torch.arange(T) >= lengths[:, None]
    ids[pad], tags[pad] = PAD, 0
    return ids, tags


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, 16, padding_idx=PAD)
        self.rnn = nn.GRU(16, 16, batch_first=True, bidirectional=True)
        self.out = nn.Linear(32, K)

    def forward(self, ids):
        return self.out(self.rnn(self.emb(ids))[0])


def masked(reduction):
    criterion = nn.CrossEntropyLoss(reduction=reduction)

    def loss_fn(out, t):
        mask = (t != 0).float().view(-1)
        return (criterion(out.reshape(-1, K), t.reshape(-1)) * mask).sum() / mask.sum()
    return loss_fn


LOSSES = {
    "mask on the mean": (masked("mean"), "warn"),
    "no mask": (lambda out, t: F.cross_entropy(out.reshape(-1, K), t.reshape(-1)), "warn"),
    "mask on reduction='none'": (masked("none"), None),
    "ignore_index=0": (lambda out, t: F.cross_entropy(out.reshape(-1, K), t.reshape(-1), ignore_index=0), None),
    "(N, C, T) scores, ignore_index=0": (lambda out, t: F.cross_entropy(out.transpose(1, 2), t, ignore_index=0),
                                         None),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_padding_read_from_the_losss_gradient(name):
    torch.manual_seed(0)
    model = Tagger()
    ids, tags = _data()
    loss_fn, expected = LOSSES[name]
    v = padded_loss(model, ids, tags, loss_fn, model(ids))
    if expected is None:
        assert v is None, v
    else:
        assert v is not None and v.status == expected and "padding" in v.value, v
        assert "reduction='none'" in v.advice


def test_float_targets_and_unpadded_ids_are_not_read():
    torch.manual_seed(0)
    model = Tagger()
    ids, tags = _data()
    assert padded_loss(model, ids, tags.float(), masked("mean"), model(ids)) is None
    full = torch.randint(1, V, (64, T), generator=torch.Generator().manual_seed(1))
    assert padded_loss(model, full, 1 + full % (K - 1), masked("mean"), model(full)) is None


@pytest.mark.slow
def test_doctor_check_names_the_mask_on_the_mean_and_not_its_twin():
    ids, tags = _data(128)
    named = {}
    for reduction in ("mean", "none"):
        torch.manual_seed(0)
        report = doctor.check(Tagger(), ids, tags, masked(reduction))
        named[reduction] = [v for v in report if v.check == "padding in the loss" and v.status == "warn"]
    assert named["mean"] and not named["none"], named
