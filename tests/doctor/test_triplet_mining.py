"""Batch-hard triplet mining (Hermans et al. 2017) in a user's own loop: P classes x K examples per batch, each
anchor's farthest same-label example against its nearest other-label one. A negatives' mask that removes only the
anchor (``torch.eye``) lets the nearest example of the anchor's own label be its hardest negative, and the loss
pushes same-label pairs apart; `loop: metric-learning pairs` reads that from the gradient the loss sends to the
embeddings. With no mask at all the anchor itself, at distance 0, is the hardest negative: the loss pushes nothing
and the embeddings collapse. The correct mask passes, and so do a contrastive loss on labelled pairs and a center
loss beside a cross-entropy."""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

CLASSES, D_IN, D_EMB = 16, 20, 32


def _data(n, separation=1.5):
    g = torch.Generator().manual_seed(0)
    centers = separation * torch.randn(CLASSES, D_IN, generator=torch.Generator().manual_seed(3))
    y = torch.randint(0, CLASSES, (n,), generator=g)
    return centers[y] + torch.randn(n, D_IN, generator=g), y


def batch_hard_triplet(emb, labels, margin=0.3, anchor_only_mask=False):
    """A user's batch-hard triplet loss."""
    return batch_hard_on_distances(torch.cdist(emb, emb), labels, margin, anchor_only_mask)


def batch_hard_on_distances(dist, labels, margin, anchor_only_mask):
    same = labels[:, None] == labels[None, :]
    hardest_positive = (dist * same.float()).max(1).values
    if anchor_only_mask:  # the anchor removed from its negatives, its own class left in
        hardest_negative = dist.masked_fill(torch.eye(len(labels), dtype=torch.bool), float("inf")).min(1).values
    else:
        hardest_negative = dist.masked_fill(same, float("inf")).min(1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


def unmasked_batch_hard(emb, labels, margin=0.3):
    """A user's batch-hard triplet loss whose hardest negative is taken over every row, the anchor's own included."""
    d = torch.cdist(emb, emb)
    hardest_positive = (d * (labels[:, None] == labels[None, :]).float()).max(1).values
    hardest_negative = d.min(1).values
    return F.relu(hardest_positive - hardest_negative + margin).mean()


def contrastive(emb, labels, margin=2.0):
    """Hadsell et al. 2006 on every pair of the batch."""
    dist = torch.cdist(emb, emb)
    same = (labels[:, None] == labels[None, :]).float()
    return (same * dist.pow(2) + (1 - same) * F.relu(margin - dist).pow(2)).mean()


def _train(loss_fn, separation=1.5, steps=30):
    torch.manual_seed(0)
    x, y = _data(2048, separation)
    model = nn.Sequential(nn.Linear(D_IN, 64), nn.ReLU(), nn.Linear(64, D_EMB))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(steps):
            classes = torch.randperm(CLASSES, generator=g)[:8]  # P = 8 classes, K = 4 examples each
            idx = torch.cat([torch.nonzero(y == c).flatten()[torch.randperm(int((y == c).sum()), generator=g)[:4]]
                             for c in classes])
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[idx])
    return w.report()


@pytest.mark.parametrize("separation", [0.3, 1.5])  # classes barely apart, and apart from the start
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_negatives_masked_by_the_anchor_only_fail(separation):
    verdict = _train(lambda e, t: batch_hard_triplet(e, t, anchor_only_mask=True), separation)[
        "loop: metric-learning pairs"]
    assert verdict.status == "fail" and "pushes apart pairs that share a label" in verdict.value, verdict
    assert "masked_fill(labels[:, None] == labels[None, :]" in verdict.advice, verdict


@pytest.mark.parametrize("loss_fn", [batch_hard_triplet, contrastive])
@pytest.mark.slow  # 0.20 s each on a 2-core CPU (RESULTS §51)
def test_same_label_pairs_masked_out_of_the_negatives_pass(loss_fn):
    report = _train(loss_fn)
    assert report["loop: metric-learning pairs"].status == "pass", report["loop: metric-learning pairs"]
    assert not [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


def test_batch_hard_mining_with_no_mask_fails_as_collapsing():
    verdict = _train(unmasked_batch_hard)["loop: metric-learning pairs"]
    assert verdict.status == "fail", verdict
    read = re.search(r"pushes none apart on (\d+) of (\d+) observed steps .* spread fell from ([\d.]+) to ([\d.]+)",
                     verdict.value)
    assert read and read[1] == read[2] and float(read[4]) <= 0.8 * float(read[3]), verdict
    assert "the hardest negative is the anchor itself" in verdict.advice, verdict


def test_with_no_mask_the_pairs_pulled_are_each_anchors_hardest_positive_and_none_is_pushed():
    from trainwell.doctor.pushed_pairs import read_pushed_pairs

    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    emb = (0.3 * torch.randn(8, 40)[labels] + torch.randn(32, 40)).requires_grad_(True)
    unmasked_batch_hard(emb, labels).backward()
    d = torch.cdist(emb, emb).detach()
    hardest = (d * (labels[:, None] == labels[None, :]).float()).argmax(1)
    pairs = {frozenset((i, int(j))) for i, j in enumerate(hardest)}  # every anchor's term is active (d_neg = 0)
    read = read_pushed_pairs(emb.detach(), emb.grad, labels)
    assert read["pushed"] == 0 and read["pulled"] == len(pairs) and read["classes"] == 8, read


def test_a_center_loss_beside_a_cross_entropy_passes():
    """Embeddings pulled toward learned class centers (Wen et al. 2016) while a linear head's cross-entropy keeps
    the classes apart: a pull-only term, healthy."""
    torch.manual_seed(0)
    x, y = _data(2048)
    model = nn.Sequential(nn.Linear(D_IN, 64), nn.ReLU(), nn.Linear(64, D_EMB))
    head = nn.Linear(D_EMB, CLASSES)
    centers = nn.Parameter(torch.zeros(CLASSES, D_EMB))
    opt = torch.optim.Adam([*model.parameters(), *head.parameters(), centers], lr=1e-3)
    with doctor.watch(model, opt, every=5) as w:
        for step in range(30):
            idx = torch.arange(step * 32, step * 32 + 32)
            emb = model(x[idx])
            loss = F.cross_entropy(head(emb), y[idx]) + 0.05 * (emb - centers[y[idx]]).pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[idx])
    assert not [v for v in w.report() if v.check == "loop: metric-learning pairs" and v.status != "pass"]


def test_the_pair_weights_are_torchs_gradient_on_the_distances():
    from trainwell.doctor.pushed_pairs import pair_weights

    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(4)
    emb = (0.3 * torch.randn(8, 40)[labels] + torch.randn(32, 40)).requires_grad_(True)
    dist = torch.cdist(emb, emb)
    dist.retain_grad()
    batch_hard_on_distances(dist, labels, 1.0, anchor_only_mask=True).backward()
    off = ~torch.eye(32, dtype=torch.bool)
    oracle = torch.zeros(32, 32, dtype=torch.float64)  # w_ij = (dL/dd_ij + dL/dd_ji) / d_ij
    oracle[off] = ((dist.grad + dist.grad.T) / dist.clamp_min(1e-12)).double().detach()[off]
    w = pair_weights(emb.detach(), emb.grad)
    assert w is not None and float((w - oracle).abs().max()) < 1e-4 * float(oracle.abs().max())


def test_a_loss_on_embeddings_normalized_inside_it_is_not_read():
    from trainwell.doctor.pushed_pairs import pair_weights

    torch.manual_seed(0)
    emb = torch.randn(16, 32, requires_grad=True)
    contrastive(F.normalize(emb, dim=1), torch.arange(4).repeat_interleave(4), margin=1.0).backward()
    assert pair_weights(emb.detach(), emb.grad) is None  # not a function of the outputs' own distances


def test_a_term_that_spreads_every_pair_warns_instead_of_failing():
    from trainwell.doctor.pushed_pairs import pushed_pairs_verdict, read_pushed_pairs

    reads = []
    for seed in range(2):  # alignment and uniformity (Wang & Isola 2020) given class labels as y
        torch.manual_seed(seed)
        labels = torch.arange(8).repeat_interleave(4)
        emb = (0.3 * torch.randn(8, 48)[labels] + torch.randn(32, 48)).requires_grad_(True)
        same = (labels[:, None] == labels[None, :]).float()
        uniformity = torch.pdist(emb).pow(2).mul(-0.1).exp().mean().log()
        (uniformity + (torch.cdist(emb, emb) * same).mean()).backward()
        reads.append(read_pushed_pairs(emb.detach(), emb.grad, labels))
    assert all(r is not None and r["pushed"] > r["rows"] for r in reads), reads  # every pair pushed: not mined
    assert pushed_pairs_verdict(reads).status == "warn"
