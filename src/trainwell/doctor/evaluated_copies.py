"""For ``trainwell watch``: the copies of the watched model that a script evaluates in its place, read as the watched
model's validation forwards.

A loop that keeps an exponential moving average of its weights (``ema = copy.deepcopy(model)``, updated after each
step; Polyak and Juditsky 1992) validates the copy, never the model it trains: the watched model runs no forward
without gradients, so the watch read no validation at all, and an EMA whose update was forgotten (the copy's loss
the same at every evaluation, :mod:`~trainwell.doctor.unchanging_validation`) went unnamed. The copies are the live
modules of the watched model's class (or torch's ``AveragedModel`` around one: SWA, Izmailov et al. 2018, or an
EMA by ``get_ema_multi_avg_fn``) whose parameters have its parameters' shapes, in order, none of them the
watched model's own tensors (at most :data:`COPIES`; more, a population of models, are not read). Their forwards in
eval mode without gradients are read as the watched model's are, and the loss calls after them are the
validation's; their other forwards (a mean teacher's in a training step, in train mode or with gradients) are not.
A copy whose evaluated forwards have an optimizer step between them and no validation (a teacher run in eval mode
without gradients inside each training step: knowledge distillation, a mean teacher; Hinton et al. 2015, Tarvainen
and Valpola 2017) is a training step's, not a validation's: from then on it is not read (its forward just before a
training forward would otherwise join the validation the watch infers there). Only the modules the script holds
in its own variables are looked at (its globals, the locals of its frames running the loop), not the copies the
doctor makes of the model itself (``--check``'s pre-flight).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

#: copies of the watched model read, at most
COPIES = 4


def model_copies(model: nn.Module, namespaces: list[dict]) -> list[nn.Module]:
    """The modules of ``model``'s class held in ``namespaces`` (the script's globals, its frames' locals) whose
    parameters have ``model``'s shapes, none of them shared with it (empty when more than :data:`COPIES` are
    found)."""
    params = list(model.parameters())
    if not params:
        return []
    shapes, own = [tuple(p.shape) for p in params], {id(p) for p in params}
    found: dict[int, nn.Module] = {}
    for names in namespaces:
        for m in list(names.values()):
            if not _of_class(m, type(model)) or m is model or id(m) in found:
                continue
            theirs = list(m.parameters())
            if [tuple(p.shape) for p in theirs] == shapes and not any(id(p) in own for p in theirs):
                found[id(m)] = m
    return list(found.values()) if len(found) <= COPIES else []


def _of_class(module, cls) -> bool:
    """Whether ``module`` is a ``cls``, or torch's ``AveragedModel`` (``torch.optim.swa_utils``: SWA, EMA) around
    one: its parameters are then the wrapped module's."""
    return type(module) is cls or (isinstance(module, AveragedModel) and type(module.module) is cls)


def evaluating(probe):
    """A wrapper for :meth:`~trainwell.doctor.loop_probe.LoopProbe.read_as_model`: its ``hook`` run only for a
    forward in eval mode without gradients (a validation's), and never again for a module once one such forward of
    it comes after an optimizer step of ``probe`` (its ``opt_steps``) with no validation (its ``validations``)
    since the previous one."""
    last: dict[int, tuple[int, int]] = {}  # per module: (steps, validations) at its latest evaluated forward
    stepping: set[int] = set()  # the modules run inside training steps

    def wrap(hook):
        def run(module, *args):
            if module.training or torch.is_grad_enabled() or id(module) in stepping:
                return None
            now, before = (probe.opt_steps, probe.validations), last.get(id(module))
            if before is not None and before[1] == now[1] and before[0] != now[0]:
                stepping.add(id(module))
                return None
            last[id(module)] = now
            return hook(module, *args)

        return run

    return wrap
