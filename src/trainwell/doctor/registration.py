"""Which tensors a loss really depends on, and which of them the model does not own; the pre-flight check
"parameters registered" (frozen parameters listed, unreached ones named).

A layer kept in a plain Python list (``self.layers = [nn.Linear(...)]`` instead of ``nn.ModuleList``) or a tensor
made trainable by hand (``self.w = torch.randn(..., requires_grad=True)``) is used in ``forward`` but is not
registered: ``model.parameters()`` does not list it, so the optimizer never updates it, ``.to(device)``,
``.double()`` and ``state_dict()`` skip it. The loss's autograd graph shows it: every trainable leaf the loss
depends on ends in an ``AccumulateGrad`` node that holds the tensor.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.layers = [nn.Linear(3, 3)]          # the bug
    ...         self.out = nn.Linear(3, 2)
    ...     def forward(self, x):
    ...         return self.out(self.layers[0](x))
    >>> net = Net()
    >>> unregistered(net, graph_leaves(net(torch.randn(4, 3)).sum()))
    ['layers[0].weight', 'layers[0].bias']
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import checkpointing, no_grad_layers
from trainwell.doctor.inputs import Inputs, call
from trainwell.doctor.verdict import Verdict


def graph_nodes(roots: list, stop: Callable[[object], bool] = lambda f: False, limit: int = 200_000):
    """The autograd nodes reachable from the ``roots`` (``grad_fn`` objects), each once, depth first; a node for
    which ``stop`` is true is yielded but not walked past. At most ``limit`` nodes."""
    seen, stack = set(), list(roots)
    while stack and len(seen) < limit:
        f = stack.pop()
        if f is None or f in seen:
            continue
        seen.add(f)
        yield f
        if not stop(f):
            stack.extend(g for g, _ in f.next_functions)


def graph_leaves(loss: torch.Tensor, limit: int = 200_000) -> list[torch.Tensor]:
    """The trainable leaf tensors ``loss`` depends on (works after ``backward()`` too: the graph's structure
    outlives its saved tensors). Walks at most ``limit`` nodes."""
    fn = getattr(loss, "grad_fn", None)
    if fn is None:
        return [loss] if isinstance(loss, torch.Tensor) and loss.requires_grad else []
    return [f.variable for f in graph_nodes([fn], limit=limit) if getattr(f, "variable", None) is not None]


def _container_names(model: nn.Module) -> dict[int, str]:
    """id(tensor) -> a readable name for tensors held in plain lists, tuples, dicts or attributes of the model's
    modules (where ``named_parameters`` does not look)."""
    names: dict[int, str] = {}

    def visit(value, name: str, depth: int = 0) -> None:
        if depth > 3:
            return
        if isinstance(value, nn.Module):
            for pname, p in value.named_parameters():
                names.setdefault(id(p), f"{name}.{pname}")
        elif isinstance(value, torch.Tensor):
            names.setdefault(id(value), name)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(v, f"{name}[{i}]", depth + 1)
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(v, f"{name}[{k!r}]", depth + 1)

    for mname, module in model.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or attr == "training":
                continue
            visit(value, f"{mname}.{attr}" if mname else attr)
    return names


#: how :func:`unregistered` names a tensor made from the batch during the step
REMADE = "made from the batch during the step"


def unregistered(model: nn.Module, tensors: list[torch.Tensor], batch_rows: int | None = None) -> list[str]:
    """Names of the trainable ``tensors`` that are not the model's registered parameters (empty if all are).
    Tensors the model does not hold anywhere (an input with ``requires_grad``, an outside tensor) are named by
    their shape, and one whose first dimension is the batch's ``batch_rows`` as made from the batch during the
    step (the output copied out of the graph into a new leaf); another module's parameters (``nn.Parameter``
    outside the model: a GAN's discriminator in the generator's loss, a jointly trained encoder) are registered
    there, not here, and are left out (see :func:`other_models_parameters`)."""
    own = {id(p) for p in model.parameters()}
    names = None
    out = []
    for t in tensors:
        if id(t) in own or not t.requires_grad:
            continue
        if names is None:
            names = _container_names(model)
        if id(t) not in names and isinstance(t, nn.Parameter):
            continue
        remade = batch_rows is not None and t.dim() >= 1 and t.shape[0] == batch_rows and \
            not isinstance(t, nn.Parameter)
        out.append(names.get(id(t), f"a tensor of shape {tuple(t.shape)} " + (REMADE if remade else
                                                                                "outside the model")))
    return out


def other_models_parameters(model: nn.Module, tensors: list[torch.Tensor], held: set[int]) -> int:
    """How many of ``tensors`` are trainable parameters of another module (``nn.Parameter`` neither the model's nor
    held in its attributes) that no optimizer in ``held`` (ids) steps: a second model that trains on its own
    (a GAN's other player)."""
    own = {id(p) for p in model.parameters()}
    outside = [t for t in tensors if isinstance(t, nn.Parameter) and t.requires_grad and id(t) not in own
               and id(t) not in held]
    if not outside:
        return 0
    names = _container_names(model)
    return sum(id(t) not in names for t in outside)


def unregistered_in_loss(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> list[str]:
    """Trainable tensors the loss depends on that ``model.parameters()`` does not list (see
    :mod:`trainwell.doctor.registration`), from one forward pass in eval mode."""
    was = model.training
    model.eval()
    try:
        with torch.enable_grad():
            loss = loss_fn(call(model, x), y)
        return unregistered(model, graph_leaves(loss))
    finally:
        model.train(was)


def parameters_registered(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> Verdict:
    """Every trainable tensor the loss depends on must be a registered parameter of the model (a layer in a plain
    Python list is invisible to the optimizer, ``.to()`` and ``state_dict()``); frozen parameters are listed, and
    trainable ones the loss never reaches are named. Parameters the graph does not show are confirmed by a real
    ``backward()`` (those inside a reentrant checkpointed segment get their gradient that way)."""
    name = "parameters registered"
    was = model.training
    model.eval()
    try:
        no_grad, hooks = no_grad_layers.NoGradLayers(), []
        try:
            hooks = no_grad.attach(model, lambda fn: fn)
            with torch.enable_grad(), checkpointing.reentrant_without_grad() as seen:
                loss = loss_fn(call(model, x), y)
        finally:
            for h in hooks:
                h.remove()
        leaves = graph_leaves(loss)
        outside = unregistered(model, leaves)
        if outside:
            return unregistered_verdict(outside)
        used = {id(t) for t in leaves}
        named = list(model.named_parameters())
        unused = [n for n, p in named if p.requires_grad and id(p) not in used]
        if unused:
            used |= _reached(model, loss)
            unused = [n for n, p in named if p.requires_grad and id(p) not in used]
    finally:
        model.train(was)
    if unused:  # a layer that uses a parameter only in training (a Bayes layer's sampled noise scale)
        unused = [n for n in unused if n not in _reached_in_training(model, x, y, loss_fn)]
    frozen = [(n, p) for n, p in named if not p.requires_grad]
    total = sum(p.numel() for _, p in named)
    parts = [f"{len(named) - len(frozen) - len(unused)} trainable tensors reach the loss"]
    if frozen:
        count = sum(p.numel() for _, p in frozen)
        parts.append(f"frozen: {_group_names([n for n, _ in frozen])} ({count:,} of {total:,} parameters, "
                     f"{count / max(total, 1):.0%})")
    repeated = repeated_layers(model)
    if repeated:
        return Verdict(name, "warn", "; ".join(parts) + f"; {repeated}", "each layer its own module",
                       "one layer object placed several times in a container shares one set of weights (a list "
                       "repeated with * n: [nn.Linear(64, 64), nn.ReLU()] * 3): build each layer anew, e.g. "
                       "[layer for _ in range(n) for layer in (nn.Linear(64, 64), nn.ReLU())]")
    if unused and seen.cut:
        return Verdict(name, "warn", "; ".join(parts) + f"; trainable but never reach the loss: "
                       f"{_group_names(unused)} ({checkpointing.CUT})", "every trainable parameter receives a "
                       "gradient", checkpointing.ADVICE)
    cut, checkpointed = no_grad.cut(unused)
    if cut:
        return Verdict(name, "warn", "; ".join(parts) + f"; trainable but never reach the loss: "
                       f"{_group_names(unused)}; {_group_names(cut)} {no_grad_layers.CUT}" +
                       (" (in torch.utils.checkpoint)" if checkpointed else ""),
                       "every trainable parameter receives a gradient", no_grad_layers.advice(checkpointed))
    if unused:
        return Verdict(name, "warn", "; ".join(parts) + f"; trainable but never reach the loss: "
                       f"{_group_names(unused)}", "every trainable parameter receives a gradient",
                       "a branch that is not used in forward, a detached tensor (.detach(), .item(), .data, "
                       "torch.no_grad) or an auxiliary loss left out of the total: these parameters never learn")
    status = "info" if frozen else "pass"
    return Verdict(name, status, "; ".join(parts), "every trainable tensor registered and reaching the loss",
                   "frozen parameters never change: unfreeze them (requires_grad_(True)) and add them to the "
                   "optimizer if that is not intended" if frozen else "")


def _reached(model: nn.Module, loss: torch.Tensor) -> set[int]:
    """ids of the parameters a real backward of ``loss`` reaches (empty when it cannot run: a loss that needs no
    gradient at all)."""
    if not loss.requires_grad:
        return set()
    try:
        return checkpointing.reached_by_backward(model, loss)
    except RuntimeError:  # a backward this model's graph does not allow: the graph's reading stands
        return set()


def _reached_in_training(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable) -> set[str]:
    """Names of the parameters the loss of one training-mode forward depends on. A layer may use a parameter only
    in training: a Bayes-by-Backprop layer (Blundell et al. 2015) samples ``mu + softplus(rho) * eps`` in training
    and uses ``mu`` alone in eval mode, where ``rho`` reaches no loss. Read on a copy, its RNG forked: the user's
    model, its buffers (BatchNorm statistics) and random stream stay untouched; empty when the forward fails."""
    m = copy.deepcopy(model).train()
    try:
        with torch.enable_grad(), torch.random.fork_rng(devices=[]):
            leaves = {id(t) for t in graph_leaves(loss_fn(call(m, x), y))}
    except Exception:  # noqa: BLE001 - a model that cannot run a training forward so: the eval reading stands
        return set()
    return {n for n, p in m.named_parameters() if id(p) in leaves}


def repeated_layers(model: nn.Module) -> str | None:
    """A sentence naming a module with parameters that one container holds at several positions (``[layer] * 3``
    in an ``nn.Sequential`` / ``nn.ModuleList``), or None. Weights shared on purpose between differently named
    attributes (tied embeddings) are not a repeat inside one container."""
    for cname, container in model.named_modules():
        if not isinstance(container, (nn.Sequential, nn.ModuleList)):
            continue
        positions: dict[int, list[str]] = {}
        for key, child in container._modules.items():
            if child is not None and any(True for _ in child.parameters()):
                positions.setdefault(id(child), []).append(key)
        for keys in positions.values():
            if len(keys) > 1:
                where = f"'{cname}'" if cname else "the model"
                return f"one layer with weights sits at positions {', '.join(keys)} of {where}"
    return None


def unregistered_verdict(outside: list[str]) -> Verdict:
    """The fail for trainable tensors the loss uses that ``model.parameters()`` does not list (pre-flight and
    watch)."""
    if all(REMADE in name for name in outside):
        return Verdict("parameters registered", "fail", f"the loss's graph starts at {', '.join(outside[:3])}, a "
                       "new leaf that requires a gradient", "a loss computed from the model's outputs",
                       "the outputs were copied out of the graph (torch.tensor(...), .numpy(), .detach()) and made a "
                       "new leaf with requires_grad=True: the loss's gradient stops there and no parameter learns; "
                       "compute it with torch operations on the outputs (torch.clamp, not numpy's clip)")
    return Verdict("parameters registered", "fail", f"used in forward but not registered: {', '.join(outside[:6])}"
                   f"{f' (+{len(outside) - 6} more)' if len(outside) > 6 else ''}",
                   "every trainable tensor in model.parameters()",
                   "keep layers in nn.ModuleList / nn.ModuleDict (not a Python list or dict) and trainable "
                   "tensors as nn.Parameter attributes: the optimizer, .to(device) and state_dict() never see "
                   "them otherwise")


def _group_names(names: list[str], shown: int = 4) -> str:
    """Parameter names grouped by their module (``0.weight, 0.bias`` -> ``0.*``); a module with one name listed
    keeps it (``2.bias``: its weight is not among them).

    >>> _group_names(["0.weight", "0.bias", "2.bias"])
    '0.*, 2.bias'
    """
    per_module: dict[str, int] = {}
    for n in names:
        per_module[n.rsplit(".", 1)[0]] = per_module.get(n.rsplit(".", 1)[0], 0) + 1
    modules = list(dict.fromkeys(n.rsplit(".", 1)[0] + ".*" if "." in n and per_module[n.rsplit(".", 1)[0]] > 1
                                 else n for n in names))
    return ", ".join(modules[:shown]) + (f" (+{len(modules) - shown} more)" if len(modules) > shown else "")
