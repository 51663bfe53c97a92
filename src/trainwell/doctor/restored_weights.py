"""A restore of the best weights that restores nothing: early stopping that keeps ``best = model.state_dict()``
and later calls ``model.load_state_dict(best)``. ``state_dict()`` returns the live tensors (detached, sharing
their storage), so ``best`` follows every later update and the load copies each weight onto itself: the model
ends with its last weights, not its best ones. The fix is ``copy.deepcopy(model.state_dict())`` or
``{k: v.clone() for k, v in model.state_dict().items()}``.

Read from every ``load_state_dict`` call on the watched model (or one of its submodules) while watched, also after
the loop inside the ``with`` block: a state dict whose parameter tensors share their memory with the module's own
parameters of the same name, for every parameter it gives (a state dict that replaces some parameters and keeps
the rest, ``state.update(pretrained)`` then ``load_state_dict(state)``, restores on purpose). A checkpoint from
``torch.load``, a deep copy or another model's weights (a target network's
``target.load_state_dict(policy.state_dict())``) hold other memory and pass."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: restored weights"
FIX = ("state_dict() returns references to the live weights: save copy.deepcopy(model.state_dict()) or "
       "{k: v.clone() for k, v in model.state_dict().items()}")


def shared_parameters(module: nn.Module, state: Mapping) -> list[str]:
    """The names of ``module``'s parameters whose entry in ``state`` is a tensor sharing their memory (the same
    data pointer): loading it copies the weight onto itself."""
    shared = []
    for name, p in module.named_parameters(remove_duplicate=False):
        value = state.get(name)
        if isinstance(value, torch.Tensor) and value.device == p.device and p.device.type != "meta" and \
                p.numel() and value.numel() and value.data_ptr() == p.data_ptr() != 0:
            shared.append(name)
    return shared


def loaded_parameters(module: nn.Module, state: Mapping) -> list[str]:
    """The names of ``module``'s parameters that ``state`` gives a tensor for."""
    return [name for name, _ in module.named_parameters(remove_duplicate=False)
            if isinstance(state.get(name), torch.Tensor)]


class StateRestores(ReadsCalls):
    """Reads each ``nn.Module.load_state_dict`` call between :meth:`start` and :meth:`stop` on one of ``models``
    or their submodules; :attr:`shared` keeps (shared parameters, parameters) of the first load whose every
    parameter is restored onto itself (a load that replaces some parameters and keeps the others passes)."""

    patched = (nn.Module, "load_state_dict")

    def __init__(self, *models: nn.Module) -> None:
        self.models = models  # the watched model and the wrapper the loop calls (torch.compile's), if any
        self.loads = 0
        self.shared: tuple[list[str], int] | None = None

    def saw(self, module: nn.Module, state_dict=None, *args, **kwargs) -> None:
        state = kwargs.get("state_dict", state_dict)
        if not isinstance(state, Mapping) or \
                not any(module is m for model in self.models for m in model.modules()):
            return
        self.loads += 1
        shared = shared_parameters(module, state)
        # a load that gives some parameters new values (state = model.state_dict(); state.update(pretrained);
        # model.load_state_dict(state)) keeps the others on purpose: only a load that restores nothing is named
        if shared and len(shared) == len(loaded_parameters(module, state)) and self.shared is None:
            self.shared = (shared, sum(1 for _ in module.parameters()))

    def verdict(self) -> Verdict | None:
        """A warning when a loaded state dict held the module's own live weights; None otherwise."""
        if self.shared is None:
            return None
        shared, total = self.shared
        names = ", ".join(shared[:3]) + (", ..." if len(shared) > 3 else "")
        return Verdict(NAME, "warn", f"load_state_dict was given the model's own live tensors ({len(shared)} of "
                       f"{total} parameters: {names}): the restore is a no-op and the model keeps its last weights",
                       "a state dict copied when it was saved", FIX)
