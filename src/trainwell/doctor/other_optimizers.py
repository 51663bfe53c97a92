"""The optimizers given to :func:`trainwell.doctor.watch` besides the first (a GAN's discriminator's, a head's
own): whether each one's ``.grad`` at its own ``step()`` is what the backward passes since it was last cleared
delivered, or also holds earlier steps' gradients because that optimizer's ``zero_grad()`` is never called.

Read on observed steps by a global step pre-hook (:class:`~trainwell.doctor.loop_step_hooks.StepHooks`): the
gradients the hooks saw delivered to the optimizer's tensors since the probe was armed (or since ``.grad`` was
cleared) against ``.grad`` as the step finds it. ``.grad`` larger than that, and not by a multiple of the weights
(weight decay written by hand), holds gradients from before: the update then follows the sum of every earlier
step's gradient, a momentum that never decays.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.step_record import held
from trainwell.doctor.verdict import Verdict


def read_other_step(probe, index: int, optimizer: torch.optim.Optimizer, incoming: dict,
                    step: int) -> dict | None:
    """Optimizer ``index``'s ``.grad`` against the gradients delivered to its watched tensors (``incoming``, by
    tensor id) at the loop's step ``step`` (the first optimizer's count): the
    least-squares scale of one on the other, the residual, both norms; None when no delivered gradient is found
    (its backward came before the probe was armed)."""
    ids = held(optimizer)
    dot = n_g = n_inc = r_w = w_w = r_r = 0.0
    for p in probe.named.values():
        if id(p) not in ids:
            continue
        inc, g = incoming.get(id(p)), p.grad
        if inc is None or inc.is_sparse or g is None or g.is_sparse or not bool(inc.any()):
            continue
        g64, i64, w64 = g.detach().double(), inc.double(), p.detach().double()
        dot += float((g64 * i64).sum())
        n_g += float((g64 * g64).sum())
        n_inc += float((i64 * i64).sum())
        r = g64 - i64
        r_w += float((r * w64).sum())
        w_w += float((w64 * w64).sum())
        r_r += float((r * r).sum())
    if n_inc == 0:
        return None
    scale = dot / n_inc
    resid = math.sqrt(max(n_g - 2 * scale * dot + scale * scale * n_inc, 0.0) / n_g) if n_g > 0 else math.nan
    decay = r_w / w_w if w_w > 0 else 0.0  # an addition proportional to the weights: weight decay by hand
    by_hand = r_r > 0 and decay > 0 and max(r_r - decay * r_w, 0.0) <= 1e-6 * r_r
    return {"optimizer": index, "step": step, "scale": scale, "resid": resid, "by_hand": by_hand,
            "grad_norm": math.sqrt(n_g), "incoming_norm": math.sqrt(n_inc)}


def other_optimizers_verdict(name: str, reads: list[dict], count: int) -> Verdict | None:
    """A fail naming the first of ``count`` optimizers (besides the first one) whose ``.grad`` held earlier
    steps' gradients on at least half of its observed steps after the first (and at least two); None otherwise."""
    for index in range(1, count):
        later = [r for r in reads if r["optimizer"] == index and r["step"] > 0 and
                 math.isfinite(r["grad_norm"]) and math.isfinite(r["incoming_norm"])]  # not once it diverged
        grew = [r for r in later if not r["by_hand"] and
                (r["scale"] > 1.001 or (r["resid"] > 1e-3 and r["grad_norm"] > r["incoming_norm"]))]
        if len(grew) >= 2 and len(grew) >= len(later) / 2:
            worst = max(r["grad_norm"] / max(r["incoming_norm"], 1e-30) for r in grew)
            return Verdict(name, "fail", f"optimizer {index + 1} of {count}: .grad holds earlier steps' gradients "
                           f"on {len(grew)} of {len(later)} observed steps (up to {worst:.3g}x this step's)",
                           "the gradients of this step's backward()",
                           f"optimizer {index + 1}'s zero_grad() is never called, so its gradients accumulate "
                           "across steps: call it once per step, before the backward() its step uses (or "
                           "model.zero_grad() for every part)")
    return None
