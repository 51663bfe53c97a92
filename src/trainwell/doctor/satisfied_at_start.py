"""A loss that the untrained model already meets: exactly 0 on the first step, before any update, and on most
steps after. A hinge such as the triplet loss max(d(a, p) - d(a, n) + margin, 0) with a margin of 0 is 0 wherever
the positive is no farther than the negative, which a random embedding already gives on many triplets, and on any
constant embedding (d(a, p) = d(a, n) = 0): it has nothing to teach. With a margin > 0 every triplet closer than the
margin costs (Schroff, Kalenichenko & Philbin 2015, FaceNet, use 0.2 on unit-norm embeddings). Read in
``doctor.watch`` from the loss's values; the loss curve's reading then defers to it."""

from __future__ import annotations

from trainwell.doctor.verdict import Verdict

NAME = "loop: loss already met"


def satisfied_at_start(losses: list[float]) -> Verdict | None:
    """A fail when the first loss is exactly 0 and so is at least half of them (10 steps or more); None otherwise."""
    if len(losses) < 10 or losses[0] != 0.0:
        return None
    zeros = sum(v == 0.0 for v in losses)
    if 2 * zeros < len(losses):
        return None
    return Verdict(NAME, "fail", f"the loss was exactly 0 at the first step, before any update, and on {zeros} of "
                   f"{len(losses)} steps", "a loss the untrained model does not already meet",
                   "a loss that is 0 on a random model has nothing to teach (no gradient where it is 0): a hinge "
                   "with a margin of 0, as a triplet loss max(d(a, p) - d(a, n), 0), is met wherever the negative "
                   "is not closer than the positive, and by one output for every input; use a margin > 0 "
                   "(nn.TripletMarginLoss's default 1.0, or 0.2 on unit-norm embeddings)")
