"""Adam's own settings written the wrong way: its two decays swapped, or an ``eps`` above the gradients' scale.

Adam (Kingma & Ba 2015, Algorithm 1) keeps running means of the gradient, ``m`` (decay ``β1``, default 0.9), and of
its square, ``v`` (decay ``β2``, default 0.999), and steps by ``lr · m̂ / (√v̂ + eps)`` (the hats: bias-corrected).

- ``betas=(0.999, 0.9)``, the two decays swapped: the step's normalizer ``v`` then averages the last ~10 steps
  while ``m`` carries ~1000 steps of stale gradients, so the steps follow old directions at a size set by the last
  few gradients. Kingma & Ba's convergence bound (section 4) asks ``β1² / √β2 < 1``, and Reddi et al. (2018, "On
  the Convergence of Adam and Beyond") build their counterexamples where ``β1`` is not below ``√β2``; the swap
  gives 1.05. No published setting puts the first decay above the second (0.9/0.999 by default, 0.9/0.98 and
  0.9/0.95 for transformers, 0.5/0.999 and 0/0.99 for GANs): ``β1 > β2`` is named.
- ``eps`` far above ``√v̂``: the step is then ``(lr / eps) · m̂``, SGD with momentum at the rate ``lr / eps``, and
  Adam's per-weight normalization is gone; at ``eps=1`` and Adam's usual ``lr=1e-3`` the steps are 1e-3 times the
  gradient, far too small for most models. A large ``eps`` can be deliberate where the gradients are large
  (TensorFlow's documentation suggests 1.0 or 0.1 for an Inception network), so the reading is the moments Adam
  kept over the watched run: named where ``eps`` is over :data:`EPS_OVER` times ``√v̂`` on at least
  :data:`EPS_SHARE` of the elements that received a gradient.

Read from every optimizer of the Adam family the loop steps (Adam, AdamW, NAdam, RAdam: the ones keeping
``exp_avg_sq``), at the report.
"""

from __future__ import annotations

import math

import torch

from trainwell.doctor.verdict import Verdict

NAME = "loop: Adam settings"
#: eps counts as dominating an element's normalizer from this many times its √v̂
EPS_OVER = 10.0
#: the share of the elements (that received a gradient) whose normalizer eps must dominate to be named
EPS_SHARE = 0.5


def _adam_groups(optimizer: torch.optim.Optimizer):
    """``(group, states)`` of each param group of ``optimizer`` that keeps Adam's two ``betas`` and ``eps``; an
    optimizer with another number of decays (Adan's three) is not Adam's kind and is skipped."""
    for group in optimizer.param_groups:
        if "eps" not in group or not isinstance(group.get("betas"), tuple | list) or len(group["betas"]) != 2:
            continue
        states = [optimizer.state.get(p, {}) for p in group["params"]]
        yield group, [s for s in states if "exp_avg_sq" in s and "step" in s]


def eps_share(group: dict, states: list[dict]) -> tuple[float, float] | None:
    """The share of the elements with a nonzero bias-corrected ``v̂`` whose ``√v̂ · EPS_OVER`` is below the group's
    ``eps``, and the root of the mean ``v̂`` over them; None when no element received a gradient."""
    beta2, eps = float(group["betas"][1]), float(group["eps"])
    under = seen = 0
    total = 0.0
    for s in states:
        step = float(s["step"])
        if step < 1:
            continue
        v = s["exp_avg_sq"].detach().float() / (1.0 - beta2 ** step)
        v = v[v > 0]
        under += int((v.sqrt() * EPS_OVER < eps).sum())
        seen += v.numel()
        total += float(v.sum())
    return (under / seen, math.sqrt(total / seen)) if seen else None


def adam_settings(optimizers) -> Verdict | None:
    """The verdict on the Adam-family optimizers among ``optimizers``: a warn for swapped decays or a dominating
    ``eps``, None when none of them is Adam-like or their settings are in range."""
    found: dict[tuple[int, str], tuple[str, str]] = {}  # (optimizer, setting) -> (seen, what to do): one each
    for optimizer in {id(o): o for o in optimizers}.values():
        kind = type(optimizer).__name__
        for group, states in _adam_groups(optimizer):
            beta1, beta2 = (float(b) for b in group["betas"])
            if beta1 > beta2:
                ratio = beta1 ** 2 / math.sqrt(beta2)
                bound = "; Kingma & Ba's convergence condition asks it below 1" if ratio >= 1 else ""
                found.setdefault((id(optimizer), "betas"), (
                    f"{kind}(betas=({beta1:g}, {beta2:g})): the first moment's decay is above the second's "
                    f"(β1²/√β2 = {ratio:.3g}{bound})",
                    f"write betas=({beta2:g}, {beta1:g}): β1 (the gradient's mean, 0.9) comes first, β2 (its "
                    "square's, 0.999) second"))
            share = eps_share(group, states)
            if share is not None and share[0] >= EPS_SHARE:
                eps = float(group["eps"])
                found.setdefault((id(optimizer), "eps"), (
                    f"{kind}(eps={eps:g}) is over {EPS_OVER:g}x √v̂ (the root of Adam's running mean of the "
                    f"squared gradients) on {share[0]:.0%} of the weights' elements (√v̂ {share[1]:.2g} over "
                    "them): each step is (lr / eps) times the gradients' running mean, SGD with momentum at rate "
                    f"{float(group['lr']) / eps:.2g}",
                    "eps only guards the division: use the default 1e-8 (1e-6..1e-4 under low precision), or SGD "
                    "if plain gradient steps were meant"))
    if not found:
        return None
    rows = list(found.values())
    return Verdict(NAME, "warn", "; ".join(f[0] for f in rows),
                   f"β1 < β2 (0.9, 0.999) and eps below {1 / EPS_OVER:g}x the gradients' √v̂",
                   "; ".join(f[1] for f in rows))
