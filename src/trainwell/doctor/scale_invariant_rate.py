"""The loss curve's "too low" advice on a model whose last layers are scale-invariant (a cosine classifier: class
weights and features each normalized before their dot product, ``s * cos(theta)``).

A weight w that enters only after normalization (``F.normalize(w)``, or a layer whose output is normalized) leaves
the loss unchanged when it is scaled: its gradient is orthogonal to w and shrinks as 1/||w||, so each SGD step
grows the norm (||w||^2 + lr^2 ||g||^2) and the step's effect on the direction, the effective learning rate, is
lr / ||w||^2 (Hoffer et al. 2018, "Norm matters"; van Laarhoven 2017). Where such a norm grew several-fold during the
run, a slow, near-linear decrease comes from that shrinking effective rate, and a larger rate grows the norm faster
and slows it further (a cosine classifier under SGD(lr=0.1, momentum=0.9) ends higher at 0.3 and lower at 0.03):
the curve's "raise the learning rate" would point the wrong way, so the advice names the norm's growth instead.
Where the norm barely moved, the steps are as short as the rate says, and the advice stands."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from trainwell.doctor import outputs as O
from trainwell.doctor.diagnosis import LR_CURVE
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict

GROWTH = 3.0
"""The growth of a scale-invariant weight's norm over the run from which the curve's slowness is read as the
effective rate's fall (its effective step shrank by GROWTH^2, about 10x: the 3-10x that "raise" asks for)."""
_TAIL = 4  # how many of the last weighted modules are read


class StartNorms:
    """The norm of each weight of ``model`` when the watch was built, before the loop's first step (a lazy
    module's parameters, not yet shaped, have none)."""

    def __init__(self, model: nn.Module):
        with torch.no_grad():
            self.norms = {n: float(p.detach().double().norm()) for n, p in model.named_parameters()
                          if not is_lazy(p) and p.requires_grad and p.is_floating_point() and p.dim() >= 2}


def invariant_tail(model: nn.Module, x: torch.Tensor | Inputs) -> list[str]:
    """The names of the last modules that ran on ``x`` (owning a weight of 2 or more dims), read from the last,
    whose own parameters scaled by 2 leave the outputs unchanged (scale-invariant: used only after normalization);
    the reading stops at the first one that is not. The parameters are restored; the model runs in eval mode."""
    ran: list[str] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_hook(lambda m, i, o: ran.append(names[m])) for m in model.modules()
             if any(p.dim() >= 2 for p in m.parameters(recurse=False))]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = O.logits(call(model, x))
            for h in hooks:
                h.remove()
            hooks = []
            if not isinstance(ref, torch.Tensor) or not ref.is_floating_point() or not bool(ref.abs().amax() > 0):
                return []
            found = []
            for name in list(dict.fromkeys(reversed(ran)))[:_TAIL]:
                if not _unchanged(model, model.get_submodule(name), x, ref):
                    break
                found.append(name)
            return found
    finally:
        for h in hooks:
            h.remove()
        model.train(was)


def _unchanged(model: nn.Module, module: nn.Module, x, ref: torch.Tensor) -> bool:
    params = list(module.parameters(recurse=False))
    for p in params:
        p.mul_(2.0)
    try:
        out = O.logits(call(model, x))
    finally:
        for p in params:
            p.div_(2.0)
    return isinstance(out, torch.Tensor) and out.shape == ref.shape and \
        torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().amax()))


def grown_norms(curve: Verdict, start: StartNorms, probe, forward: tuple | None, lr: float | None,
                rows: int = 8) -> Verdict:
    """``curve`` (the loss curve's verdict), with its advice rewritten where it reads "too low" and a
    scale-invariant weight among the model's last layers (:func:`invariant_tail`, read on the first ``rows``
    examples of the first observed training forward ``forward``, the ``probe``'s hooks recording nothing of it)
    ends the run with a norm over :data:`GROWTH` times its norm at the start; unchanged otherwise."""
    if curve.check != LR_CURVE or curve.status not in ("warn", "fail") or not str(curve.value).startswith("too low") \
            or forward is None:
        return curve
    args, kwargs = forward
    if kwargs or not args or not all(isinstance(a, torch.Tensor) and a.dim() for a in args):
        return curve
    head, model = tuple(a[:rows] for a in args), probe.model
    probe.reading = True
    try:
        tail = invariant_tail(model, head[0] if len(head) == 1 else Inputs(head))
    except Exception:  # noqa: BLE001 - a forward this reading cannot follow: the advice stands
        return curve
    finally:
        probe.reading = False
    grown = []
    for module in tail:
        for name, p in model.get_submodule(module).named_parameters(recurse=False):
            full = f"{module}.{name}" if module else name
            before = start.norms.get(full)
            if before:
                now = float(p.detach().double().norm())
                grown.append((now / before, full, before, now))
    if not grown or max(grown)[0] < GROWTH:
        return curve
    ratio, name, before, now = max(grown)
    rate = f" = {lr:g}" if lr is not None else ""
    return Verdict(curve.check, curve.status, f"{curve.value}; '{name}' enters only after normalization "
                   f"(scale-invariant) and its norm grew {ratio:.3g}x, {before:.3g} -> {now:.3g}: the effective step "
                   f"lr / ||w||^2 fell {ratio ** 2:.3g}x", curve.expected,
                   f"a larger rate is not the cure here: on scale-invariant weights it grows their norm faster and "
                   f"shrinks the effective step further (Hoffer et al. 2018, 'Norm matters'); try a smaller "
                   f"learning rate (lr{rate} / 3), weight decay on '{name}', or start it at norm ~1 (not a 0.01-std "
                   f"init)")
