"""The ``loop: metric-learning pairs`` verdict: which pairs of embeddings a metric-learning loss pulls together and
which it pushes apart, read from the gradient it sends to the outputs, against the labels given to ``w.step``.

A loss of the pairwise distances between the rows of the (B, D) outputs z (a contrastive loss, Hadsell et al. 2006;
a triplet loss with any mining, Schroff et al. 2015, Hermans et al. 2017) sends row i the gradient
sum_j w_ij (z_i - z_j), with w_ij = w_ji the loss's derivative along the pair (i, j)'s distance, over its length:
g = L z, L the Laplacian of the symmetric weights (zero row sums). With D >= B - 1 embeddings in general position
the centred outputs have rank B - 1, and L = g pinv(z - mean) is the only such matrix: a loss of the distances is
recognised by L coming out symmetric (to :data:`FIT`), and each pair's weight is read from it, w_ij > 0 pulling the
pair together and w_ij < 0 pushing it apart.

A healthy loss pushes apart only pairs of different labels. Batch-hard mining whose negatives' mask removes only
the anchor itself (``dist.masked_fill(eye, inf).min(1)`` instead of ``dist.masked_fill(same_label, inf)``) takes
the nearest example of any label as the hardest negative, which once classes cluster is one of the anchor's own:
the loss pushes same-label pairs apart, its value never falls below the margin on those anchors, and classes
cannot tighten. Batch-hard mining with no mask at all (``dist.min(1)``) takes the anchor itself, at distance 0,
as the hardest negative: that term sends no gradient, so the loss pulls each anchor's hardest positive in and
pushes nothing apart, and the embeddings shrink toward one point. Read as a loss that pushes no pair while it
pulls some, on half the read steps or more, with two labels or more in each such batch, while the embeddings'
spread (their RMS distance from their mean) falls to :data:`SHRANK` of its first value or below: a loss of the
pairwise distances alone that only pulls has its minimum at the collapse. A pull-only term beside a cross-entropy
(a center loss) is not read, the cross-entropy's gradient making the outputs' gradient no Laplacian. A loss written
on normalized embeddings inside it (``F.normalize`` before ``cdist``), on cosine
similarities, or with fewer dimensions than the batch has rows minus one, is not read."""

from __future__ import annotations

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: metric-learning pairs"
#: the relative residual and asymmetry under which the gradient reads as a loss of the pairwise distances
FIT = 1e-3
#: a pair's weight below this share of the largest is not counted (float32 rounding)
LIVE = 1e-3
#: the share of the push weight on same-label pairs at which an observed step counts as pushing classes apart (a
#: healthy loss puts none there; batch-hard mining masked by the anchor only puts about (K - 1) / (B - 1) there on
#: unclustered embeddings, K examples per label, and more as the classes cluster)
SAME_SHARE = 0.02
#: the embeddings' spread, at the last pull-only step over the first, at or below which a loss that pushes
#: nothing reads as collapsing them
SHRANK = 0.8
#: observed steps read at most
READS = 16


def pair_weights(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor | None:
    """The symmetric (B, B) weights w with g_i = sum_j w_ij (z_i - z_j) for every row (float64, 0 on the
    diagonal) when the gradient ``g`` on the (B, D) outputs ``z`` is that of a loss of their pairwise distances
    (D >= B - 1; to :data:`FIT`); else None. For Euclidean distances d, w_ij = (dL/dd_ij + dL/dd_ji) / d_ij."""
    zd, gd = z.detach().double().cpu(), g.detach().double().cpu()
    if not bool(torch.isfinite(zd).all() and torch.isfinite(gd).all()) or not bool(gd.any()):
        return None
    centred = zd - zd.mean(0)
    lap = gd @ torch.linalg.pinv(centred)  # the one Laplacian with lap @ z = g, when the rows span B - 1 dimensions
    if float((lap @ centred - gd).norm()) > FIT * float(gd.norm()) or \
            float((lap - lap.T).norm()) > FIT * float(lap.norm()):
        return None
    w = -(lap + lap.T) / 2
    w.fill_diagonal_(0)
    return w


def read_pushed_pairs(z: torch.Tensor, g: torch.Tensor | None, y) -> dict | None:
    """On an observed step: when the gradient ``g`` on the (B, D) outputs ``z`` is that of a loss of their
    pairwise distances (:func:`pair_weights`; labels ``y`` of shape (B,) with a label shared by two rows or more),
    the share of the push weight that lands on pairs sharing a label, the pairs pushed, the same-label pairs
    pushed, the pairs pulled, the rows, the distinct labels and the outputs' spread (RMS distance from their
    mean); else None."""
    if g is None or z.dim() != 2 or g.shape != z.shape or not isinstance(y, torch.Tensor) or y.dim() != 1 or \
            len(y) != len(z) or y.is_floating_point() or not 4 <= len(z) <= z.shape[1] + 1 or len(z) > 512 or \
            z.numel() > 2**20:
        return None
    labels = y.detach().cpu()
    same = labels[:, None] == labels[None, :]
    same.fill_diagonal_(False)
    w = pair_weights(z, g) if bool(same.any()) else None
    if w is None:
        return None
    live = LIVE * float(w.abs().max())
    push = w < -live
    pushed = float(w[push].abs().sum())
    zd = z.detach().double().cpu()
    shape = {"pulled": int((w > live).sum()) // 2, "rows": len(z), "classes": len(torch.unique(labels)),
             "spread": float((zd - zd.mean(0)).pow(2).sum(1).mean().sqrt())}
    if pushed == 0:
        return {"same_share": 0.0, "pushed": 0, "same_pushed": 0, **shape}
    return {"same_share": float(w[push & same].abs().sum()) / pushed, "pushed": int(push.sum()) // 2,
            "same_pushed": int((push & same).sum()) // 2, **shape}


def pushed_pairs_verdict(reads: list[dict]) -> Verdict | None:
    """A fail when two or more observed steps, half of the read ones or more, push same-label pairs apart with
    :data:`SAME_SHARE` or more of the push weight, the loss pushing one pair per row or fewer (a mined negative per
    anchor, as batch-hard mining takes); a warning when it pushes more (a term that spreads every pair, such as a
    uniformity loss, does so on purpose); a fail for a loss that pushes nothing and collapses the embeddings
    (:func:`pulled_only_verdict`); a pass when two or more steps were read; else None."""
    collapsing = pulled_only_verdict(reads)
    if collapsing is not None:
        return collapsing
    reads = [r for r in reads if r["pushed"]]
    if len(reads) < 2:
        return None
    bad = [r for r in reads if r["same_share"] >= SAME_SHARE]
    if len(bad) < 2 or 2 * len(bad) < len(reads):
        return Verdict(NAME, "pass", f"the loss pulls pairs together and pushes apart only pairs of different labels "
                       f"on {len(reads) - len(bad)} of {len(reads)} observed steps (read from its gradient as a loss "
                       "of the pairwise distances)", "same-label pairs pulled, different-label pairs pushed")
    r = bad[len(bad) // 2]
    mined = all(b["pushed"] <= b["rows"] for b in bad)
    return Verdict(NAME, "fail" if mined else "warn",
                   f"the loss pushes apart pairs that share a label on {len(bad)} of {len(reads)} observed steps: "
                   f"{r['same_pushed']} of the {r['pushed']} pairs it pushes ({r['same_share']:.0%} of the push, "
                   "read from its gradient as a loss of the pairwise distances)",
                   "only pairs of different labels pushed apart",
                   "the negatives' mask lets an example of the anchor's own label be the hardest negative (masking "
                   "only the anchor, torch.eye): mask every same-label pair, "
                   "dist.masked_fill(labels[:, None] == labels[None, :], float('inf')).min(1) for batch-hard "
                   "mining; the loss then pushes same-class points apart and stays near its margin"
                   + ("" if mined else "; a term that spreads every pair on purpose (a uniformity loss) is not "
                      "this: pass instance ids as y= there"))


def pulled_only_verdict(reads: list[dict]) -> Verdict | None:
    """A fail when two or more observed steps, half of the read ones or more, pull pairs together and push none
    apart with two labels or more in the batch, while the outputs' spread fell to :data:`SHRANK` of its first
    value or below between the first and the last of them; else None."""
    only = [r for r in reads if not r["pushed"] and r.get("pulled") and r.get("classes", 0) >= 2]
    if len(only) < 2 or 2 * len(only) < len(reads):
        return None
    first, last = only[0]["spread"], only[-1]["spread"]
    if not last <= SHRANK * first:
        return None
    r = only[len(only) // 2]
    return Verdict(NAME, "fail",
                   f"the loss pulls pairs together and pushes none apart on {len(only)} of {len(reads)} observed "
                   f"steps ({r['pulled']} pairs pulled, none pushed, with {r['classes']} labels in the batch; read "
                   "from its gradient as a loss of the pairwise distances) and the embeddings' spread fell from "
                   f"{first:.3g} to {last:.3g}: they collapse toward one point",
                   "pairs of different labels pushed apart",
                   "the hardest negative is the anchor itself, at distance 0, so its term pushes nothing "
                   "(dist.min(1) with no mask): mask the anchor and its own label before the min, "
                   "dist.masked_fill(labels[:, None] == labels[None, :], float('inf')).min(1); a pull-only term "
                   "(a center loss) needs a cross-entropy on the labels beside it")
