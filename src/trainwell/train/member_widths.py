"""Members of different widths in one population: a narrower MLP's weights placed in the top-left block of the
widest one's (:func:`embed_state`), read back out (:func:`narrow_state`), and the condition for it to train as the
narrower network: its extra units stay exactly zero only behind activations with act(0) = 0
(:func:`refuse_padding_that_trains`). Used by :class:`~trainwell.train.population.PopulationLearner` and the width
sweeps (capacity, double descent) that train as one population.
"""

from __future__ import annotations

import torch


def embed_state(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Place each narrow tensor in the top-left block of a zero tensor shaped like the wide one: a narrower MLP
    inside the widest one's shape. Its extra units stay exactly zero in training only behind activations with
    act(0) = 0 (ReLU, tanh, leaky ReLU, identity) and without normalization layers; a population refuses zero
    units behind others (sigmoid)."""
    out = {}
    for key, w in wide.items():
        n = narrow[key]
        z = torch.zeros_like(w)
        z[tuple(slice(0, s) for s in n.shape)] = n
        out[key] = z
    return out


def narrow_state(wide: dict[str, torch.Tensor], template: dict[str, torch.Tensor],
                 clone: bool = True) -> dict[str, torch.Tensor]:
    """The top-left block of each wide tensor, shaped like ``template`` (the member's own architecture): copies,
    or with ``clone=False`` views into ``wide``'s tensors."""
    blocks = {k: wide[k][tuple(slice(0, n) for n in v.shape)] for k, v in template.items()}
    return {k: v.clone() for k, v in blocks.items()} if clone else blocks


def refuse_padding_that_trains(plan, params: dict[str, torch.Tensor]) -> None:
    """Refuse hidden units that are exactly zero (incoming weights, bias and outgoing weights: a narrower member
    placed by :func:`embed_state`) behind an activation with act(0) != 0: their outgoing weights would get the
    gradient act(0) x delta, and the member would no longer be the narrower network."""
    for (wkey, bkey, _, _, act), (nkey, *_) in zip((plan or [])[:-1], (plan or [])[1:], strict=False):
        if float(act(torch.zeros(1))) == 0.0:
            continue
        w, b, wn = params[wkey], params[bkey], params[nkey]  # (M, N, K), (M, N), (M, N2, N)
        zero = (w == 0).all(2) & (b == 0) & (wn == 0).all(1)
        if bool(zero.any()):
            member, unit = (int(i) for i in zero.nonzero()[0])
            layer = wkey.rsplit(".", 1)[0]
            raise ValueError(f"member {member}'s unit {unit} of layer {layer!r} is all zeros (a narrower MLP placed "
                             f"by embed_state?), but {type(act).__name__}(0) = {float(act(torch.zeros(1))):g} "
                             "would train it: width embedding needs act(0) = 0 (ReLU, tanh, leaky ReLU, identity)")
