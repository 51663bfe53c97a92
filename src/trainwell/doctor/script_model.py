"""For ``trainwell watch``: the model a script trains, found from the optimizers that step: the module that holds
all their parameters and that the script called outermost, else the modules holding them side by side (a GAN's
generator and discriminator) gathered in an ``nn.ModuleDict`` named after the script's variables."""

from __future__ import annotations

import gc
import warnings

from torch import nn


def alive(kind: type) -> list:
    """The live objects of a type (optimizers), in the order the garbage collector holds them."""
    with warnings.catch_warnings():  # isinstance on a deprecated module attribute's stand-in warns
        warnings.simplefilter("ignore")
        return [o for o in gc.get_objects() if _is(o, kind)]


def one_alive(kind: type) -> bool:
    """Whether exactly one object of ``kind`` (an optimizer) is alive, garbage collected first when more are found:
    an optimizer the script dropped in a reference cycle (a learning-rate finder's, a run's before it in the same
    process) is no second optimizer of its loop."""
    return len(alive(kind)) == 1 or (gc.collect() >= 0 and len(alive(kind)) == 1)


def _is(obj, kind: type) -> bool:
    """``isinstance``, False for a ``weakref.proxy`` whose object is gone (torch.compile leaves some behind)."""
    try:
        return isinstance(obj, kind)
    except ReferenceError:
        return False


def watched_model(optimizers: list, names: dict, called: list | None = None) -> tuple[nn.Module | None, list[str]]:
    """The module the optimizers train: of those holding all their trainable parameters, the largest the script
    ``called`` outermost (a model ending in a Sigmoid that holds no parameter, not the network before it), else
    the smallest (a container whose parts are called one by one); else the outermost modules holding any
    (gathered in an ``nn.ModuleDict`` keyed by the script's names for them, in the order their optimizers come),
    and their names."""
    wanted = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
    holders = [m for m in alive(nn.Module) if any(id(p) in wanted for p in m.parameters())]
    if not holders:
        return None, []
    inner = {id(c) for m in holders for c in m.modules() if c is not m}
    roots = [m for m in holders if id(m) not in inner]
    whole = [m for m in holders if wanted <= {id(p) for p in m.parameters()}]
    if whole:
        size = {id(m): sum(1 for _ in m.modules()) for m in whole}
        outer = [m for m in whole if any(c is m for c in called or ())]
        model = max(outer, key=lambda m: size[id(m)]) if outer else min(whole, key=lambda m: size[id(m)])
        return model, [_name(model, names, "model")]
    order = [{id(p) for g in o.param_groups for p in g["params"]} for o in optimizers]

    def first_optimizer(m: nn.Module) -> int:  # the roots in the order their optimizers step
        held = {id(p) for p in m.parameters()}
        return next((i for i, ids in enumerate(order) if ids & held), len(order))
    gathered = nn.ModuleDict()
    for i, m in enumerate(sorted(roots, key=first_optimizer)):
        gathered[_name(m, names, f"module{i}").replace(".", "_")] = m
    return gathered, list(gathered.keys())


def _name(module: nn.Module, names: dict, default: str) -> str:
    return next((k for k, v in names.items() if v is module and not k.startswith("_")), default)


__all__ = ["alive", "watched_model"]
