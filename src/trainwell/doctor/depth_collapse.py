"""Activations that shrink layer after layer through depth, as the monitors' snapshots saw them: the weights
initialized too small for the network's depth (the "small random numbers" init, ``N(0, 0.01)``, in a deep net;
cs231n, Glorot & Bengio 2010).

Each layer multiplies the signal's std by about ``sqrt(fan_in) * std(w)`` (times the activation's slope near
0): 0.08 for ``N(0, 0.01)`` weights on 64 inputs, so six tanh layers pass on 3e-6 of it, and the gradients
shrink the same way on their way back. The updates of the deep weights are then tiny at any learning rate that
the output layer tolerates: raising it does not restore the signal, a variance-preserving init does (Xavier for
tanh/sigmoid, He for ReLU). The reading needs three activation layers or more and, on at least half of the
snapshots including the last, a std that falls by over :data:`TOTAL` from the first activation layer to the smallest
after it, at over :data:`PER_LAYER` per layer on average: torch's default init (0.41x per ReLU layer, 0.58x per tanh
layer) stays within it, so a default-initialized deep MLP is not named; a run that recovers (its weights grow)
is not named either. The collapse must be there from the first snapshot and show as tiny steps (a median
update/weight ratio below :data:`SMALL_UPDATES`), the reading that would otherwise advise raising the rate: steps
far too large kill ReLUs and collapse the activations too, but with large updates, and that is the learning
rate's verdict.
"""

from __future__ import annotations

import math

from trainwell.doctor.verdict import Verdict

NAME = "monitor: activations collapse through depth"
#: the std ratio last/first activation layer below which the signal has collapsed through depth
TOTAL = 1e-2
#: and the average ratio per layer below which each layer shrinks it (a variance-preserving init gives ~1)
PER_LAYER = 0.25
#: the median update/weight ratio below which the steps are too small to move the loss (cs231n: ~1e-3 is healthy)
SMALL_UPDATES = 1e-4


def _shrink(activations: dict) -> tuple[float, int, str] | None:
    """(smallest/first std, the activation layers up to the smallest, the kinds seen) of one snapshot, the layers
    in the order the forward ran them; None when it cannot say. The smallest, not the last: the std is taken over
    all of a layer's outputs, so once the signal has collapsed the biases' spread over the units (which they learn
    at any depth) makes up the std of the layers after it, and says nothing about the inputs."""
    stds = [(a["kind"], a.get("std")) for a in activations.values() if a.get("nonfinite", 0.0) == 0]
    stds = [(k, s) for k, s in stds if s is not None and math.isfinite(s)]
    if len(stds) < 3 or stds[0][1] <= 0:
        return None
    low = min(range(1, len(stds)), key=lambda i: stds[i][1])
    return stds[low][1] / stds[0][1], low + 1, "/".join(sorted({k for k, _ in stds}))


def collapse(records: list[dict]) -> Verdict | None:
    """The warning for activations that collapse through depth on most snapshots (see the module docstring);
    None when they do not."""
    read = [(r["step"], _shrink(r["activations"])) for r in records]
    read = [(step, s) for step, s in read if s is not None]
    if not read:
        return None

    def collapsed(s):
        ratio, n, _ = s
        return ratio < TOTAL and ratio < PER_LAYER ** (n - 1)

    hits = [(step, s) for step, s in read if collapsed(s)]
    if 2 * len(hits) < len(read) or not collapsed(read[-1][1]) or not collapsed(read[0][1]):
        return None
    ratios = sorted(v for r in records for v in r["update_ratio"].values() if math.isfinite(v) and v > 0)
    if not ratios or ratios[len(ratios) // 2] >= SMALL_UPDATES:
        return None
    step, (ratio, n, kinds) = hits[0]
    init = ("nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')" if kinds in ("ReLU", "LeakyReLU") else
            "nn.init.xavier_uniform_(layer.weight)" if "ReLU" not in kinds else
            "Xavier (tanh/sigmoid) or He (ReLU) init")
    falls = f"{1 / ratio:.2g}x" if ratio > 0 else "to 0"  # a layer whose outputs are one value (a saturated one)
    return Verdict(NAME, "warn", f"activation std falls {falls} from {kinds} layer 1 to {kinds} layer {n} "
                   f"at step {step} ({len(hits)} of {len(read)} snapshots)",
                   "activation std about the same in every layer",
                   f"the weights are initialized too small for this depth: each layer shrinks the signal (and the "
                   f"gradients on their way back), which a larger learning rate does not undo; use {init} on each "
                   "layer (or trainwell.init.apply), or add normalization layers")
