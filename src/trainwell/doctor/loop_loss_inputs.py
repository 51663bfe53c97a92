"""The ``loop: loss input`` verdict: what a hand-written loop hands to a loss that reads its input in one form.

``F.ctc_loss`` (``nn.CTCLoss``) reads log-probabilities over the classes (Graves et al. 2006); torch's CTC backward
assumes them. The loss's graph says what it was given: a CTC node whose input is a softmax's output (past reshapes
and transposes) was given probabilities.

``nn.PoissonNLLLoss(log_input=True)`` (the default, as ``F.poisson_nll_loss``) reads the outputs as log-rates: its
loss is exp(out) - y out, whose gradient exp(out) - y each observed step's output gradient is matched against.
Outputs that never go below 0 (a Softplus, ReLU or exp at the end, meant as the rate itself) give a rate exp(out)
that never goes below 1: counts of 0 can never be fitted, and the loss settles far above its floor."""

from __future__ import annotations

import torch

from trainwell.doctor.fitting import _RESHAPES
from trainwell.doctor.loss_inputs import LOW_COUNTS
from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.verdict import Verdict

NAME = "loop: loss input"



def ctc_on_softmax(loss: torch.Tensor) -> bool:
    """Whether ``loss``'s graph has an ``F.ctc_loss`` whose input is a softmax's output (past reshapes)."""
    fn = getattr(loss, "grad_fn", None)
    if fn is None:
        return False
    for node in graph_nodes([fn], limit=20_000):
        if type(node).__name__.startswith("CtcLossBackward"):
            given = node.next_functions[0][0]
            while given is not None and type(given).__name__.startswith(_RESHAPES):
                given = given.next_functions[0][0]
            return given is not None and type(given).__name__.startswith("SoftmaxBackward")
    return False


def read_log_rates(z: torch.Tensor, g: torch.Tensor, y: torch.Tensor) -> dict | None:
    """On an observed step: when the gradient the loss sent to the outputs ``z`` is c (exp(z) - y) for a c > 0 (to
    1e-3; a Poisson NLL on log-rates, mean or sum), the outputs' minimum and the targets' share below 1; else
    None."""
    if not (z.is_floating_point() and y.is_floating_point()) or z.numel() != y.numel() or z.numel() < 8:
        return None
    zd, gd, yd = z.detach().double().flatten(), g.detach().double().flatten(), y.detach().double().flatten().cpu()
    zd, gd = zd.cpu(), gd.cpu()
    if not bool(torch.isfinite(zd).all()) or float(zd.max()) > 50:
        return None
    r = zd.exp() - yd
    rr = float((r * r).sum())
    if rr <= 0:
        return None
    c = float((gd * r).sum()) / rr
    if c <= 0 or float((gd - c * r).norm()) > 1e-3 * float(gd.norm()):
        return None
    return {"lowest": float(zd.min()), "low_targets": float((yd < 1).double().mean()), "mean_target": float(yd.mean())}


def loss_input_verdict(ctc_softmax: bool, rate_reads: list[dict]) -> Verdict | None:
    """A fail for probabilities given to ``F.ctc_loss``, or for log-rates that never went below 0 on two or more
    observed steps read as a Poisson NLL on log-rates while a tenth or more of the targets are below 1; else None."""
    if ctc_softmax:
        return Verdict(NAME, "fail", "F.ctc_loss is given a softmax's probabilities", "log-probabilities over the "
                       "classes (log_softmax)", "ctc_loss reads log-probabilities: end the model with "
                       "F.log_softmax(scores, dim=-1), not softmax; its backward assumes them, so the gradients "
                       "are wrong too")
    if len(rate_reads) < 2 or any(r["lowest"] < 0 for r in rate_reads):
        return None
    low = min(r["low_targets"] for r in rate_reads)
    if low < LOW_COUNTS:
        return None
    lowest = min(r["lowest"] for r in rate_reads)
    mean = sum(r["mean_target"] for r in rate_reads) / len(rate_reads)
    return Verdict(NAME, "fail", f"a Poisson NLL on log-rates (log_input=True) is given outputs that never went below "
                   f"0 on {len(rate_reads)} observed steps (lowest {lowest:.3g}): the rate exp(out) is never below 1, "
                   f"while {low:.0%} or more of the targets are below 1 (mean {mean:.3g})",
                   "log-rates of either sign", "with log_input=True the model outputs log-rates: remove the "
                   "Softplus/ReLU/exp that ends it, or keep the positive output as the rate and pass log_input=False")
