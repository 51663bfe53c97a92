"""The doctor's pre-flight on losses users write themselves: a vocabulary-sized reshape inside a lambda, a mined
metric loss, a straight-through estimator, a softmax before cross-entropy, a frozen pretrained backbone, a Q-learning
TD loss. Each reading is asserted beside its twin (the healthy or the buggy version) keeping its own verdict."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

PAD, BOS, VOCAB, LENGTH = 0, 11, 12, 8  # ids 1..10 are digits; BOS and the vocabulary's width are above them


def _verdict(report, name):
    return next((v for v in report.verdicts if v.check == name), None)


class Reverser(nn.Module):
    """A user's seq2seq GRU (source, teacher-forced decoder input) -> (N, T, VOCAB) scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb_s, self.emb_t = nn.Embedding(VOCAB, 16, padding_idx=PAD), nn.Embedding(VOCAB, 16, padding_idx=PAD)
        self.enc, self.dec = nn.GRU(16, 32, batch_first=True), nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, src, tin):
        _, h = self.enc(self.emb_s(src))
        return self.out(self.dec(self.emb_t(tin), h)[0])


def _reversal_batch(n=64):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, LENGTH + 1, (n,), generator=g)
    src = torch.randint(1, 11, (n, LENGTH), generator=g)
    src[torch.arange(LENGTH)[None] >= lengths[:, None]] = PAD
    tgt = torch.full((n, LENGTH), PAD)
    for i in range(n):
        tgt[i, : lengths[i]] = src[i, : lengths[i]].flip(0)
    tin = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], 1)
    return (src, tin), tgt


@pytest.mark.parametrize("ignored, named", [(PAD, False), (-100, True)])
def test_padding_ignored_by_a_loss_that_reshapes_to_the_vocabulary_is_not_named(ignored, named):
    (src, tin), tgt = _reversal_batch()
    assert int(tgt.max()) + 1 < VOCAB  # the targets do not reach the output's width
    crit = nn.CrossEntropyLoss(ignore_index=ignored)
    report = doctor.check(Reverser(), (src, tin), tgt, lambda out, y: crit(out.reshape(-1, VOCAB), y.reshape(-1)))
    verdict = _verdict(report, "next-token targets")
    assert (verdict is not None and verdict.status == "warn" and f"ignore_index={PAD}" in verdict.advice) == named


def test_a_loss_the_padding_probe_cannot_run_is_unknown_not_a_loss_that_counts_padding():
    from trainwell.doctor.sequence_targets import _ignores

    def picky(out, y):
        raise RuntimeError("needs the model's own extras")

    _, tgt = _reversal_batch()
    assert _ignores(picky, tgt, PAD) is None
    assert _ignores(lambda out, y: F.cross_entropy(out.reshape(-1, VOCAB), y.reshape(-1)), tgt, PAD,
                    torch.randn(len(tgt), LENGTH, VOCAB)) is False


def _batch_hard_triplet(emb, y, margin=0.2):
    """A user's batch-hard triplet loss (Hermans et al. 2017): the farthest positive against the nearest negative."""
    emb = F.normalize(emb, dim=1)
    dist = torch.cdist(emb, emb)
    same = y[:, None] == y[None]
    hardest_pos = (dist * same).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class Embedder(nn.Module):
    def __init__(self, dead=False):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Linear(20, 64), nn.Linear(64, 8)
        if dead:  # every hidden unit off on every input: the embedding is the head's bias alone
            nn.init.constant_(self.body.bias, -100.0)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _clusters(n=128, classes=8):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes  # the first examples are all of different classes: no positive pair among them
    return torch.randn(classes, 20, generator=g)[y] + 1.5 * torch.randn(n, 20, generator=g), y


def test_a_mined_triplet_loss_zero_on_the_first_examples_is_checked_on_examples_that_share_a_label():
    x, y = _clusters()
    with torch.no_grad():
        first, whole = _batch_hard_triplet(Embedder()(x[:4]), y[:4]), _batch_hard_triplet(Embedder()(x), y)
    assert float(first) == 0.0 < float(whole)
    verdict = _verdict(doctor.check(Embedder(), x, y, _batch_hard_triplet), "gradient check (data loss)")
    assert verdict.status == "pass" and "share a label" in verdict.value


def test_dead_units_under_a_triplet_loss_are_still_vanishing_gradients():
    x, y = _clusters()
    verdict = _verdict(doctor.check(Embedder(dead=True), x, y, _batch_hard_triplet), "gradient check (data loss)")
    assert verdict.status == "warn" and "vanishing gradients" in verdict.value


def test_a_loss_that_is_zero_on_every_example_has_no_gradient_to_check():
    x, y = _clusters()
    verdict = _verdict(doctor.check(Embedder(), x, y, lambda e, t: _batch_hard_triplet(e, t, margin=-10.0)),
                       "gradient check (data loss)")
    assert verdict.status == "skip" and "exactly 0" in verdict.value
