"""Where the examples of a batch start to mix, for a failed batch independence check: the first module whose
input, or output, for example 0 changes when only the other examples change. Karpathy's recipe names the check
("use backprop to chart dependencies"); the causes are many and look alike from outside: a reshape of a permuted
tensor (``h.permute(2, 0, 1).reshape(B, -1)``), a softmax, mean or norm over dimension 0 written in ``forward``
(attention weights over the batch, ``F.layer_norm(h.t(), ...)``, ``(x - x.mean(0)) / x.std(0)``), or a module that
reads the batch as a sequence. Naming the first module whose input already mixes, and the last one whose output
did not, points at the lines of ``forward`` between them.

Read in eval mode on up to 8 examples of one input tensor: two forwards, the second with every example but the
first replaced by further examples of the batch, each module's first tensor argument and its output compared on
example 0 (only tensors that hold the batch along dimension 0)."""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import module_modes, restore_modes

NAME = "batch independence"
_GENERIC = "samples mix inside the batch in eval mode"


def mixing_site(model: nn.Module, x: torch.Tensor) -> tuple[str, str, str] | None:
    """(where, module, previous): ``where`` is "input" when example 0's values first change at the input of
    ``module`` (the code before it, after ``previous``'s output, mixes) or "output" when they first change at
    ``module``'s output, its input unchanged (it mixes itself); None when no module tells (one input tensor only)."""
    if not isinstance(x, torch.Tensor) or len(x) < 3:
        return None
    xs = x[: min(len(x), 8)]
    moved = _others_replaced(x, len(xs))
    if moved is None:
        return None
    a, b = _events(model, xs), _events(model, moved)
    if len(a) != len(b):
        return None
    previous = None
    for (where, name, ta), (_, _, tb) in zip(a, b, strict=True):
        if ta.dim() == 0 or ta.shape != tb.shape or ta.shape[0] != len(xs) or not ta.is_floating_point():
            continue
        if _differ(ta[0].double(), tb[0].double()):
            return where, name, previous
        if where == "output":
            previous = name
    return None


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two rows differ beyond float32 round-off (a NaN on one side only counts)."""
    if bool((torch.isnan(a) != torch.isnan(b)).any()):
        return True
    return float((a - b).nan_to_num().abs().max()) > 1e-5 * max(float(a.nan_to_num().abs().max()), 1e-30)


def _first(v) -> torch.Tensor | None:
    """A module's first tensor argument or output."""
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, (tuple, list)) and v and isinstance(v[0], torch.Tensor):
        return v[0]
    return None


def _events(model: nn.Module, xs: torch.Tensor) -> list[tuple[str, str, torch.Tensor]]:
    """("input" or "output", module name, a copy of that tensor) in the order one eval-mode forward of ``xs`` meets
    them (every submodule's input and output, the model's own output last); modes are put back."""
    events: list[tuple[str, str, torch.Tensor]] = []

    def pre(name):
        def hook(module, args):
            t = _first(args)
            if t is not None:
                events.append(("input", name, t.detach().clone()))
        return hook

    def post(name):
        def hook(module, args, out):
            t = _first(out)
            if t is not None:
                events.append(("output", name, t.detach().clone()))
        return hook

    named = [(n, m) for n, m in model.named_modules() if n]
    hooks = [m.register_forward_pre_hook(pre(n)) for n, m in named] + \
        [m.register_forward_hook(post(n)) for n, m in [*named, ("", model)]]  # the model's own output last
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model(xs)
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    return events


def _others_replaced(x: torch.Tensor, n: int) -> torch.Tensor | None:
    """The first ``n`` examples of ``x`` with every one but the first replaced by other examples of ``x`` (a
    different batch, also in its statistics: a rotation of the same examples keeps a mean over the batch), or by
    the same ones doubled (floating point) or copies of the first (ids); None when nothing changes."""
    xs = x[:n]
    moved = xs.clone()
    if len(x) >= 2 * n - 1:
        moved[1:] = x[n : 2 * n - 1]
    elif xs.is_floating_point():
        moved[1:] = 2 * xs[1:] + 1
    else:
        moved[1:] = xs[:1]
    return None if torch.equal(moved, xs) else moved


def name_mixing_site(verdicts: list[Verdict], model: nn.Module, x) -> list[Verdict]:
    """A failed batch independence whose advice lists the usual causes gets the place where the examples first mix
    added to it, and a failed or warned input-independent baseline names it first (unchanged when no module
    tells)."""
    bad = next((v for v in verdicts if v.check == NAME and v.status == "fail" and
                str(v.advice or "").startswith(_GENERIC)), None)
    if bad is None:
        return verdicts
    try:
        site = mixing_site(model, x)
    except Exception:  # noqa: BLE001 - a model this reading cannot follow keeps the general advice
        site = None
    if site is None:
        return verdicts
    where, name, previous = site
    if where == "output" and name == "":  # the model's own forward, after its last module
        where, name = "input", "the model's output"
    if where == "output":
        at = f"example 0's output first depends on the others at the output of '{name}', whose input does not: " \
             f"'{name}' mixes them (a BatchNorm in train mode, a sequence layer reading the batch as its time axis, " \
             "or a reduction over dimension 0 in its forward)"
    else:
        place = name if name == "the model's output" else f"the input of '{name}'"
        between = f"after the output of '{previous}', which does not: the forward code between them" if previous \
            else "before any module runs: the forward code before it"
        at = f"example 0's values first depend on the others at {place} ({between} mixes the batch: a softmax, " \
             "mean, std or norm over dimension 0, or a view/reshape of a tensor whose batch axis was moved; " \
             "permute it back first, or flatten with x.flatten(1))"
    # each held-out example's output then depends on the others beside it: the baseline's comparison says nothing
    return [type(v)(v.check, v.status, v.value, v.expected, f"{v.advice}; here {at}") if v is bad else
            type(v)(v.check, v.status, v.value, v.expected, f"fix '{NAME}' first: the examples mix, so a held-out "
                    f"example's output depends on the others in its batch ({at.split(' (')[0]})")
            if v.check == "input-independent baseline" and v.status in ("warn", "fail") and
            "first:" not in (v.advice or "") else v for v in verdicts]
