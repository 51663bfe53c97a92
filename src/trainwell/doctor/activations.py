"""Pre-flight checks on the signal through depth at initialization: symmetric (identical) hidden units, and
activation and gradient std through the layers (Glorot & Bengio 2010; He et al. 2015)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.advice_voice import init_fix
from trainwell.doctor.forward import _ACTIVATIONS, _WEIGHTED, _training_forward
from trainwell.doctor.functional_activations import FunctionalActivations, calls_functions
from trainwell.doctor.inner_outputs import inner_outputs, without_direct_gradient
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.registration import graph_nodes
from trainwell.doctor.residual_ends import stream_end_ids
from trainwell.doctor.sampled_weights import noise_scales
from trainwell.doctor.verdict import Verdict
from trainwell.doctor.zero_branches import branch_ends
from trainwell.nn.modes import module_modes, restore_modes


def unit_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and filter banks of ``model`` whose rows are its units (two or more rows), in
    registration order. An embedding's rows are entries looked up per token (or user, item), not units: each gets
    its own gradient, and they are left out."""
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)}
    return [(name, p) for name, p in model.named_parameters()
            if p.dim() >= 2 and p.shape[0] > 1 and id(p) not in lookups]


def identical_rows(w: torch.Tensor, atol: float) -> bool:
    """Whether every row of the 2-D ``w`` equals its first within ``atol``."""
    return bool(torch.all((w - w[:1]).abs() <= atol))


def symmetry(model: nn.Module, x: torch.Tensor | Inputs | None = None, tol: float = 1e-8) -> Verdict:
    """Hidden units with identical incoming weights compute the same function and never differ (zero or
    constant init). Every weight matrix or filter bank (Linear, Conv, recurrent, attention) but the output layers
    is read: its rows are the units. A weight whose product is added to another path (LoRA's zero ``B``, a
    zero-initialized last layer of a residual branch: :mod:`trainwell.doctor.zero_branches`) is not. An
    embedding's rows are looked-up entries, not units (a zero-initialized
    bias table ``nn.Embedding(users, 1)`` is usual), and are not read. The output layers are the last one and,
    given a batch ``x``, every layer whose output is returned by the model (the heads of a model with several: a
    zero-initialized head's units have different targets too). Given ``x``, a constant tensor that scales noise
    drawn per weight (Bayes by Backprop's ``rho``, :mod:`trainwell.doctor.sampled_weights`) is not read either."""
    weights = unit_weights(model)
    if len(weights) < 2:
        return Verdict("symmetry", "skip", f"skipped: {len(weights)} weight matrix(es); a single layer's output "
                       "units have different targets", "distinct hidden units", "")
    symmetric = []
    heads = _output_layers(model, x) if x is not None else set()
    hidden = [(name, p) for name, p in weights[:-1] if name.rsplit(".", 1)[0] not in heads]
    for name, p in hidden:  # the output layers' units have different targets, so they can stay distinct
        if identical_rows(p.detach().reshape(p.shape[0], -1), tol):
            symmetric.append(name)
    if symmetric and x is not None:  # a Bayes layer's noise scale: each weight's own draw breaks the symmetry
        symmetric = [name for name in symmetric if name not in noise_scales(model, x, symmetric)]
    if symmetric and x is not None:  # LoRA's B, a zero-init residual branch: summed with a different unit each
        symmetric = [name for name in symmetric if name not in branch_ends(model, x, symmetric)]
    if symmetric:
        return Verdict("symmetry", "fail", f"identical units in {', '.join(symmetric)}", "distinct hidden units",
                       f"initialize weights randomly ({init_fix('he_normal')}); zero or constant init never "
                       "breaks the symmetry")
    return Verdict("symmetry", "pass", "all hidden units distinct", "distinct hidden units")


def _output_layers(model: nn.Module, x: torch.Tensor | Inputs) -> set[str]:
    """Names of the weighted modules that are the last weighted layer on some path to the model's output (its
    heads, also when their outputs are concatenated or pass through an activation): the autograd graph of one
    eval-mode forward, walked back from the outputs, stops at the first weighted layer's node on each path."""
    nodes: dict[object, str] = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: nodes.__setitem__(out.grad_fn, name)
                                     if isinstance(out, torch.Tensor) and out.grad_fn is not None else None)
             for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    modes = module_modes(model)
    try:
        model.eval()
        with torch.enable_grad():
            outs = O.leaves(call(model, x))
    except Exception:  # noqa: BLE001 - without the heads read, only the last weight is left out, as before
        return set()
    finally:
        for h in hooks:
            h.remove()
        restore_modes(modes)
    roots = [t.grad_fn for t in outs if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    return {nodes[f] for f in graph_nodes(roots, stop=lambda f: f in nodes, limit=100_000) if f in nodes}


def _activation_stats(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable,
                      inner: list[str] | None = None):
    """Forward std and back-propagated gradient norm per example (:func:`_gradient_norm`) at every activation
    layer's output, in order, with the number of normalization layers (BatchNorm, LayerNorm, GroupNorm, ...) the
    forward ran before it; for a layer whose output starts or ends a residual branch, or ends a gate
    (:mod:`~trainwell.doctor.residual_ends`) that count is a key of its own, ``("branch end", count)``, so no run
    of layers reads across it. The loss's gradient on outputs returned from mid-network
    (:mod:`~trainwell.doctor.inner_outputs`, a VAE's mean and log-variance) is left out: it enters at their depth,
    not through the layers above. Their names (``out[1]``) are appended to ``inner`` when given."""
    acts: list[tuple[str, torch.Tensor]] = []
    normalized = [0]  # normalization layers run so far in the forward
    marks: dict[int, int] = {}  # id(activation) -> normalization layers run before it
    pooled = [1.0]  # the product of the average pools' windows run so far in the forward
    windows: dict[int, float] = {}  # id(activation) -> that product when it ran

    def keep(mod, args, out, name):
        if not isinstance(out, torch.Tensor) or not out.is_floating_point():
            return
        if out.requires_grad:  # not below a frozen part of the model
            out.retain_grad()
        acts.append((name, out))
        marks[id(out)] = normalized[0]
        windows[id(out)] = pooled[0]

    def count(mod, args, out):
        normalized[0] += 1

    def pool(mod, args, out):
        if args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor) and out.numel():
            pooled[0] *= max(args[0].numel() / out.numel(), 1.0)

    watched = [(name, m) for name, m in model.named_modules()
               if isinstance(m, _ACTIVATIONS) and not isinstance(m, nn.Identity)]
    if len(watched) < 2:  # activations applied as functions (F.relu): read the weighted layers' outputs instead
        watched = [(name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHTED)]
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: keep(mod, args, out, name))
             for name, m in watched]
    hooks += [m.register_forward_hook(count) for m in model.modules() if isinstance(m, _NORMS)]
    hooks += [m.register_forward_hook(pool) for m in model.modules() if isinstance(m, _AVERAGE_POOLS)]
    was = model.training
    _training_forward(model)
    try:
        out = call(model, x)
        mid = inner_outputs(out)
        if mid:
            read: set[int] = set()
            loss = loss_fn(without_direct_gradient(out, mid, read), y)
            (loss.mean() if loss.dim() else loss).backward(retain_graph=True)
            mid = sorted(read)  # those the loss reads
            if mid and not any(a.grad is not None and bool(a.grad.any()) for _, a in acts):
                mid = []  # the loss reads only the mid-network outputs (an embedding's): their gradient is the one
            if not mid:
                for _, a in acts:
                    a.grad = None
        if inner is not None:
            names = [name for name, _ in O.named_leaves(out)]
            inner.extend(names[i] for i in mid)
        if not mid:
            loss = loss_fn(out, y)
            (loss.mean() if loss.dim() else loss).backward()
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
        model.zero_grad()
    # the model's outputs are not hidden layers: the gradient at the logits is the loss's, not back-propagated;
    # a head whose output is reshaped before it is returned (Flatten(0), squeeze(-1)) is an output layer too
    final = {id(t) for t in O.leaves(out)}
    heads = _output_layers(model, x) if any(isinstance(m, _WEIGHTED) for _, m in watched) else set()
    ends = stream_end_ids(out, [a for _, a in acts])
    return [(name, float(a.detach().float().std()), _gradient_norm(a, pooled[0] / windows[id(a)]),
             ("branch end", marks[id(a)]) if id(a) in ends else marks[id(a)])
            for name, a in acts if a.numel() > 1 and id(a) not in final and name not in heads]


def _gradient_norm(a: torch.Tensor, pooled: float = 1.0) -> float | None:
    """The root mean square over the examples of the gradient's norm at the activation ``a`` (examples along its
    first axis): its per-element std times the square root of the elements per example. With He initialization
    (fan_in) the backward pass keeps this norm from layer to layer whatever the layers' widths (He et al. 2015,
    section 2.2: the per-element variance changes by the ratio of the channel counts), and a max-pool routes it
    whole to one input of each window; the per-element std alone shrinks wherever a layer has more elements than
    the one above it (a convolution's feature map below a narrow dense layer), which is no vanishing signal. An
    average pool over windows of k elements hands each input 1/k of its output's gradient, dividing the norm by
    sqrt(k) by construction (a global average pool over an 8x8 map: by 8), whatever the init: ``pooled``, the
    product of the windows of the average pools the forward ran after ``a``, puts that factor back (the norm times
    sqrt(pooled)), so that it is read as no vanishing signal either."""
    if a.grad is None:
        return None
    per_example = a.numel() // max(len(a), 1) if a.dim() >= 2 else 1
    return float(a.grad.std()) * (per_example * pooled) ** 0.5


def variance_propagation(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor,
                         loss_fn: Callable = F.cross_entropy, warn_ratio: float = 0.1,
                         fail_ratio: float = 1e-2) -> Verdict:
    """Activation std and gradient std through depth at init: collapse or explosion is a warn/fail naming the
    init to use instead (Glorot & Bengio 2010; He et al. 2015)."""
    inner: list[str] = []
    stats = _activation_stats(model, x, y, loss_fn, inner)
    stats, silent = _set_aside_silent(stats, _zero_scaled_norms(model))
    stats, ungraded = _behind_zero_weights(stats, model)
    silent += ungraded
    if len(stats) < 2:
        return Verdict("variance propagation", "skip", f"skipped: {len(stats)} activation or weighted layer(s) to "
                       f"compare{silent}", "-", "")
    a0, a1 = stats[0][1], stats[-1][1]
    graded = [s for s in stats if s[2] is not None]  # layers below frozen parameters get no gradient: not read
    g0, g1 = (graded[0][2], graded[-1][2]) if len(graded) >= 2 else (1.0, 1.0)
    act_ratio, act_steps = _through_unnormalized([(s[1], s[3]) for s in stats])
    # gradient at the first layer vs at the last (backward direction)
    grad_ratio, grad_steps = _through_unnormalized([(s[2], s[3]) for s in graded]) if len(graded) >= 2 else (1.0, 1)
    grad_ratio = 1 / max(grad_ratio, 1e-30)
    ends = list(dict.fromkeys(s[0] for s in stats if isinstance(s[3], tuple)))  # a shared layer named once
    branches = (f"; the steps into and out of {', '.join(ends[:3])}{' (+more)' if len(ends) > 3 else ''}, which "
                "start or end a residual branch or end a gate, are not read: the stream carries the scale") \
        if ends else ""
    if not act_steps and not grad_steps:
        return Verdict("variance propagation", "pass", f"activation std {a0:.3g} -> {a1:.3g} over {len(stats)} "
                       f"layers, a normalization layer or a residual sum between every two of them (it sets their "
                       f"scale){silent}{branches}", f"ratios within [{warn_ratio}, {1 / warn_ratio:g}]", "")
    normed = len(stats) - 1 - act_steps
    silent += (f"; {normed} step(s) between them cross a normalization layer or a residual sum, which resets the "
               f"scale: the ratios are over the other {act_steps}{branches}") if normed else ""
    worst = min(act_ratio, 1 / max(act_ratio, 1e-30), grad_ratio, 1 / max(grad_ratio, 1e-30))
    status = "fail" if worst < fail_ratio else "warn" if worst < warn_ratio else "pass"
    relu = status != "pass" and (any(isinstance(m, (nn.ReLU, nn.LeakyReLU)) for m in model.modules()) or
                                 _calls_relu(model, x))
    scheme = init_fix("he_normal", "std sqrt(2/fan_in)") if relu else \
        init_fix("xavier_uniform", "Var 2/(fan_in+fan_out)")
    shrink = act_ratio < 1 or grad_ratio < 1
    advice = "" if status == "pass" else (
        f"signals {'vanish' if shrink else 'explode'} through depth: use {scheme}, or add normalization")
    return Verdict("variance propagation", status,
                   f"activation std {a0:.3g} -> {a1:.3g} {_times(a0, a1, act_ratio)}, gradient norm {g1:.3g} -> "
                   f"{g0:.3g} {_times(g1, g0, grad_ratio)} over {len(stats)} layers{silent}"
                   f"{_inner_note(inner, len(graded))}",
                   f"ratios within [{warn_ratio}, {1 / warn_ratio:g}]", advice)


def _times(start: float, end: float, ratio: float) -> str:
    """The factor from ``start`` to ``end`` as printed: "(x0.5)"; "(both 0)" where nothing passed at either end
    (all-zero weights), whose ratio is a guard's number, not a measurement."""
    return "(both 0)" if start == 0 and end == 0 else f"(x{ratio:.2g})"


def _calls_relu(model: nn.Module, x: torch.Tensor | Inputs) -> bool:
    """Whether a module of the user's own calls ``F.relu`` / ``torch.relu`` (or ``F.leaky_relu``) in its forward
    (the CIFAR-10 tutorial's LeNet): its init is He's, as for an ``nn.ReLU`` module. One eval-mode forward of two
    examples; False when it cannot run."""
    if not calls_functions(model):
        return False
    kinds: set[str] = set()
    modes = module_modes(model)
    try:
        model.eval()
        with torch.no_grad(), FunctionalActivations(model, lambda name, kind, out: kinds.add(kind), graph_only=False):
            call(model, x[:2])
    except Exception:  # noqa: BLE001 - the advice then names the scheme for the modules it sees
        return False
    finally:
        restore_modes(modes)
    return bool(kinds & {"ReLU", "LeakyReLU"})


def _through_unnormalized(stats: list[tuple[float, int]]) -> tuple[float, int]:
    """(ratio, steps): over each run of consecutive layers (std, normalization layers run before it) with no
    normalization layer between them, its last std over its first, multiplied together; and how many steps
    between layers those runs hold. A normalization layer resets the scale it receives: a ratio across it says
    nothing of the init. With none in the model this is the last layer's std over the first's."""
    ratio, steps, start = 1.0, 0, 0
    for i in range(1, len(stats) + 1):
        if i == len(stats) or stats[i][1] != stats[i - 1][1]:  # the run ends before layer i
            ratio *= stats[i - 1][0] / max(stats[start][0], 1e-30) if i - 1 > start else 1.0
            steps += i - 1 - start
            start = i
    return ratio, steps


def _inner_note(inner: list[str], graded: int) -> str:
    """The verdict's note on outputs returned from mid-network, whose loss term's gradient was left out."""
    if not inner or graded < 2:
        return ""
    which = ", ".join(inner[:3]) + (", ..." if len(inner) > 3 else "")
    return f"; the loss's gradient on {which} left out (returned from mid-network, it enters there)"


_AVERAGE_POOLS = (nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm,
          *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))


def _zero_scaled_norms(model: nn.Module) -> list[str]:
    """Names of the normalization layers whose scale (affine weight) is exactly zero: the last normalization of a
    residual branch started at zero so that the block is the identity at init (``zero_init_residual``; Goyal et al.
    2017). The branch's layers then carry an exactly zero gradient (or output) by design."""
    return [name for name, m in model.named_modules() if isinstance(m, _NORMS) and
            isinstance(getattr(m, "weight", None), torch.Tensor) and not bool(m.weight.detach().any())]


def _set_aside_silent(stats: list[tuple[str, float, float | None]], zeroed: list[str]):
    """The layers to compare, and a note for the verdict's value: with a zero-scaled normalization in the model
    (``zeroed``), a layer whose activation or gradient std is exactly zero is silent by design, not a vanishing
    signal, and is left out of the ratios (a ratio to an exact zero is meaningless)."""
    if not zeroed:
        return stats, ""
    kept = [s for s in stats if s[1] != 0.0 and s[2] != 0.0]
    left = [s[0] for s in stats if s[1] == 0.0 or s[2] == 0.0]
    if not left:
        return stats, ""
    shown = ", ".join(left[:4]) + (f" (+{len(left) - 4} more)" if len(left) > 4 else "")
    norms = ", ".join(zeroed[:3]) + (f" (+{len(zeroed) - 3} more)" if len(zeroed) > 3 else "")
    return kept, (f"; left out: {shown}, whose gradient or activation is exactly 0 behind the zero-initialized "
                  f"scale of {norms} (a residual branch that starts as the identity by design, not a vanishing "
                  f"signal)")


def _zero_weights(model: nn.Module) -> list[str]:
    """The parameters that are exactly zero and scale what passes through them: a Linear/Conv weight (a new head
    started at zero, LoRA's ``B``) or a parameter of the model's own (ReZero's residual scale ``alpha``, Bachlechner
    et al. 2020; a zero gate). A bias adds and blocks no gradient: not one of them."""
    found = []
    for name, p in model.named_parameters():
        owner = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
        if nn.parameter.is_lazy(p) or name.rpartition(".")[2] == "bias" or p.numel() == 0 or \
                bool(p.detach().any()) or isinstance(owner, (nn.Embedding, nn.EmbeddingBag) + _NORMS):
            continue
        found.append(name.removesuffix(".weight") if isinstance(owner, (nn.Linear, nn.modules.conv._ConvNd))
                     else name)
    return found


def _behind_zero_weights(stats: list[tuple], model: nn.Module) -> tuple[list[tuple], str]:
    """With a parameter that is exactly zero and scales a path (:func:`_zero_weights`: an output layer started at
    zero, as fine-tuning recipes do for a new head, or a ReZero residual scale), the layers before it get a
    gradient of exactly 0 at init by design: their gradients are not read (it learns on the first step and
    passes them on from then), while their activations still are. Returns the stats and a note for the verdict's
    value."""
    zero = _zero_weights(model)
    if not zero or not any(s[2] == 0.0 and s[1] != 0.0 for s in stats):
        return stats, ""
    kept = [(s[0], s[1], None if s[2] == 0.0 and s[1] != 0.0 else s[2], *s[3:]) for s in stats]
    return kept, (f"; gradients not read: exactly 0 at init behind the zero weights of {', '.join(zero[:3])} "
                  "(it learns on the first step, then passes them on)")
