"""The ``loop: loss`` verdict for binary cross-entropy (multi-label or binary classification, an autoencoder's
pixels), read on each observed step from the loss's value and the gradient it sends to the outputs
(:func:`~trainwell.doctor.binary_floor.read_binary`): with logits, dL/dz = a (sigmoid(z) - y); on probabilities,
a (p - y) / (p (1 - p)); a the reduction's weight. A mean passes, a sum per example averaged over the batch (a VAE's
reconstruction term) passes naming it, a sum over every element is named as an info (its gradient grows with the
batch, as a summed cross-entropy's), and BCE with logits given sigmoid(outputs) fails
(:mod:`~trainwell.doctor.double_sigmoid`), as does BCE with logits on a Sigmoid layer's outputs: the outputs of an
``nn.Sigmoid`` module ending the model (or all inside (0, 1) on every observed step, at least 8 per step) whose
loss reads as BCE with logits on them, dL/dp = a (sigmoid(p) - y): with p = sigmoid(z) the gradient on the layer's
input is sigmoid'(z) (sigmoid(sigmoid(z)) - y), the double sigmoid's."""

from __future__ import annotations

from trainwell.doctor.double_sigmoid import FIX, FOUND
from trainwell.doctor.swapped_arguments import swapped_verdict
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
    if all(q.get("extra", 0.0) > 0 for q in reads):  # a VAE's KL beside its reconstruction
        seen += "; plus a term the outputs do not reach (a KL on a VAE's code?)"
        collapsed = _collapsed(_NAMES.get(r["on"], "binary cross-entropy"), reads, seen)
        if collapsed is not None:
            return collapsed
    if r.get("scale", 1.0) != 1.0:  # a GradScaler's (or a static loss scale divided out of .grad)
        seen += f"; the loss scale {r['scale']:.6g} divided out"
    if r["on"] == "swapped_logits":
        return swapped_verdict(seen)
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


#: the outputs per step read inside (0, 1) for BCE with logits on them to count as a sigmoid's without a layer named
_UNNAMED_ELEMENTS = 8


def sigmoid_layer_verdict(reads: list[dict | None], bounded: list[str | None], layer: str | None,
                          observed: int) -> Verdict | None:
    """A fail when every one of the ``observed`` steps (two at least) read as BCE with logits on outputs inside
    (0, 1): its binary read (``reads``, :func:`~trainwell.doctor.binary_floor.read_binary`) on logits, or its
    gradient as a mean over 0/1 targets on outputs in [0, 1] (``bounded``, :func:`~trainwell.doctor.loss_form.
    bce_on_bounded`), and the scores are the output of the Sigmoid module ``layer`` (or, with no module, at least
    8 per step all strictly inside (0, 1): a sigmoid applied in forward). None otherwise."""
    if observed < 2 or len(bounded) != observed:
        return None
    reads = reads if len(reads) == observed else [None] * observed
    for r, b in zip(reads, bounded, strict=True):
        read = r is not None and r["on"] == "logits" and 0.0 < r["range"][0] and r["range"][1] < 1.0 and \
            (layer is not None or r["elements"] >= _UNNAMED_ELEMENTS)
        if not read and not (layer is not None and b is not None and b.startswith("all in [0, 1] (a Sigmoid")):
            return None
    where = f"the model ends with nn.Sigmoid (module '{layer}')" if layer is not None else \
        "the model's outputs all lie inside (0, 1) (a sigmoid applied in forward?)"
    remove = f"remove the Sigmoid module '{layer}'" if layer is not None else "remove the sigmoid from forward"
    return Verdict("loop: loss", "fail", f"{FOUND}: {where} and the loss reads as BCE with logits on those "
                   f"outputs (from its value and gradient on all {observed} observed steps)",
                   "raw logits (any real value) into BCEWithLogitsLoss",
                   f"{remove}: BCEWithLogitsLoss {FIX.removeprefix('it ').split('; ')[0]}; apply torch.sigmoid "
                   "only to read probabilities (or keep the layer and use BCELoss)")


#: the outputs' spread over the examples, against the targets', below which they are one output for all ...
COLLAPSED_SPREAD = 0.1
#: ... having fallen below this share of the first observed step's
COLLAPSED_FALL = 0.75


def _collapsed(name: str, reads: list[dict], seen: str) -> Verdict | None:
    """A warning when a BCE plus a term the outputs do not reach ended with outputs alike for every example (their
    spread over the rows under :data:`COLLAPSED_SPREAD` of the targets', and fallen from the first observed
    step's): the other term outweighs the reconstruction and pulls every example's code to one point (a VAE's
    posterior collapse, a KL summed over the batch against a reconstruction averaged over its elements)."""
    first, last = reads[0].get("spread"), reads[-1].get("spread")
    if first is None or last is None or not (last < COLLAPSED_SPREAD and last < COLLAPSED_FALL * first):
        return None
    return Verdict("loop: loss", "warn", f"{name} plus another term: the outputs ended alike for every example "
                   f"(their spread over the batch {last:.0%} of the targets', from {first:.0%}; {seen})",
                   "outputs that follow the examples", "the term the outputs do not reach outweighs the "
                   "reconstruction and pulls every example to one output (posterior collapse): is a KL term summed "
                   "over the batch or the latents where the reconstruction is averaged, or weighted too heavily? "
                   "Reduce both alike (sum over each example's elements, mean over the batch)")
