"""The ``loop: loss`` verdict for binary cross-entropy (multi-label or binary classification, an autoencoder's
pixels), read on each observed step from the loss's value and the gradient it sends to the outputs
(:func:`~trainwell.doctor.binary_floor.read_binary`): with logits, dL/dz = a (sigmoid(z) - y); on probabilities,
a (p - y) / (p (1 - p)); a the reduction's weight. A mean passes, a sum per example averaged over the batch (a VAE's
reconstruction term) passes naming it, a sum over every element is named as an info (its gradient grows with the
batch, as a summed cross-entropy's), and BCE with logits given sigmoid(outputs) fails
(:mod:`~trainwell.doctor.double_sigmoid`)."""

from __future__ import annotations

from trainwell.doctor.double_sigmoid import FIX, FOUND
from trainwell.doctor.verdict import Verdict

_NAMES = {"logits": "binary cross-entropy with logits", "probabilities": "binary cross-entropy on probabilities"}


def binary_loss_verdict(reads: list[dict | None], observed: int) -> Verdict | None:
    """The verdict when each of the ``observed`` steps (two at least) read as one binary cross-entropy of one
    reduction (``reads``, one per step read); None otherwise."""
    if observed < 2 or len(reads) != observed or any(r is None for r in reads) or \
            len({(r["on"], r["reduction"]) for r in reads}) != 1:
        return None
    r = reads[0]
    n = r["elements"]
    seen = f"read from the loss's value and gradient on all {observed} observed steps"
    if r["on"] == "sigmoid_logits":
        return Verdict("loop: loss", "fail", f"{FOUND} ({seen})", "raw logits (any real value) into BCEWithLogitsLoss",
                       FIX)
    name = _NAMES[r["on"]]
    if r["reduction"] == "sum":
        return Verdict("loop: loss", "info", f"summed {name} over {n} output elements (reduction='sum')",
                       f"a mean ({seen})", f"the gradient is {n}x the mean's and grows with the batch size: use "
                       f"reduction='mean', or divide a learning rate tuned for the mean by {n}")
    if r["reduction"] == "per_example":
        return Verdict("loop: loss", "pass", f"{name} summed over each example's outputs, averaged over the "
                       f"examples ({n} output elements; {seen})", "-")
    return Verdict("loop: loss", "pass", f"mean {name} over {n} output elements ({seen})", "-")
