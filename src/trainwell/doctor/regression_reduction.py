"""Whether a regression loss is a mean or a sum over its n output elements, read from the loss's value and the
gradient it sends to the outputs (one backward per step, the value given to ``w.step(loss)``).

Per element the derivative d_i of a quadratic loss fixes its value: squared error r^2 has d = 2r, so
l = d^2 / 4; Huber's quadratic zone (|r| <= delta) r^2 / 2 has d = r, so l = d^2 / 2 (Huber 1964). A mean over n
elements (those the loss reached: a gradient of exactly 0 marks an output it never read) sends g_i = d_i / n, a
sum g_i = d_i, so with rho = L / ||g||^2:

- MSE: rho = n / 4 for the mean, 1 / 4 for the sum; squared error / 2, or Huber (SmoothL1 with beta = 1) inside
  its quadratic zone, which sends the same gradient: n / 2 and 1 / 2 (exact identities, read to 1e-3);
- Huber with delta = 1 (SmoothL1 with beta = 1) with elements in its linear zone: those send |d| = 1 exactly (the
  largest |g|, shared by several elements), so max |g| = 1 reads a sum and n max |g| = 1 a mean; the linear zone's
  l = |r| - 1/2 >= d^2 / 2, so L >= ||d||^2 / 2 must hold too.

A sum's gradient is n times the mean's: a rate tuned for the mean then takes steps n times too large.
"""

from __future__ import annotations

import torch

TOL = 1e-3


def reduction(z: torch.Tensor, g: torch.Tensor | None, loss: float) -> tuple[str, str, int] | None:
    """('sum' or 'mean', the loss's name, n) when the loss value ``loss`` and the gradient ``g`` on regression
    outputs ``z`` ((B,) or (B, k)) read as one of the losses above over the n >= 8 elements the loss reached (those
    with a gradient: a DQN's loss reaches Q(s, a) at the action taken only); None otherwise. The name is 'MSE',
    'half' (squared error / 2, or Huber in its quadratic zone: the two send the same gradient) or 'Huber' (read
    from elements in its linear zone)."""
    if g is None or z.shape != g.shape or z.dim() not in (1, 2) or not g.is_floating_point():
        return None
    g = g.detach().double().reshape(-1)
    g = g[g != 0]
    if g.numel() < 8:
        return None
    n, sq = g.numel(), float((g * g).sum())
    if not (sq > 0 and loss > 0) or not bool(torch.isfinite(g).all()):
        return None
    rho = loss / sq
    for value, found in ((n / 4, ("mean", "MSE")), (0.25, ("sum", "MSE")), (n / 2, ("mean", "half")),
                         (0.5, ("sum", "half"))):
        if abs(rho - value) <= TOL * value:
            return (*found, n)
    top = float(g.abs().max())
    linear = int((g.abs() >= top * (1 - 1e-6)).sum())
    if linear < 2 or linear == n:  # no linear zone, or every element in it (an L1 loss: |d| alike everywhere)
        return None
    if abs(top - 1) <= 1e-6 and rho >= 0.5 * (1 - TOL):
        return "sum", "Huber", n
    if abs(n * top - 1) <= 1e-6 and rho >= n / 2 * (1 - TOL):
        return "mean", "Huber", n
    return None
