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
``target.load_state_dict(policy.state_dict())``) hold other memory and pass.

A copy that restores the worst weights: early stopping whose comparison was written for an accuracy
(``best = -inf``, ``if val_loss > best:``) keeps the weights of the epoch with the *highest* validation loss. The
watched model's weights are summed per tensor at every validation (two numbers a tensor, once an epoch); a state
dict loaded into the model whose tensors sum to a validation's weights' is those weights, and where that
validation's loss is the highest of :data:`LEAST_VALIDATIONS` or more, over :data:`WORSE` times the lowest, the
restore is named. The last validation's weights are left alone: they are what the run ends with anyway, and early
stopping on the validation *accuracy* keeps them where an overconfident model's accuracy still rises while its
validation loss climbs (Guo et al. 2017, "On Calibration of Modern Neural Networks")."""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.verdict import Verdict

NAME = "loop: restored weights"
#: the validations a run needs before the one its restored weights were validated at can be called its worst
LEAST_VALIDATIONS = 3
#: the restored weights' validation loss over this many times the lowest one is named
WORSE = 1.1
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


def weight_sums(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Each tensor's sum and sum of absolute values, in float64 on the CPU: a copy of the tensors gives the same."""
    if not tensors:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack([torch.stack([t.detach().double().sum(), t.detach().double().abs().sum()])
                        for t in tensors]).cpu().flatten()


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
        self.validated_sums: list[tuple[float, torch.Tensor]] = []  # (validation loss, weight_sums) per validation
        self.restored_sums: torch.Tensor | None = None  # the last copied state dict loaded into the whole model

    def validated(self, value: float) -> None:
        """One validation loss of the watched model, with its weights' sums then."""
        if self.models and math.isfinite(value):
            self.validated_sums.append((value, weight_sums([p for p in self.models[0].parameters()])))

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
        names = [name for name, _ in module.named_parameters()]
        if module is self.models[0] and not shared and names and \
                all(isinstance(state.get(name), torch.Tensor) for name in names):
            self.restored_sums = weight_sums([state[name] for name in names])

    def worst_restored(self) -> Verdict | None:
        """A warning when the last state dict loaded into the model holds the weights of its validation with the
        highest loss (of :data:`LEAST_VALIDATIONS` or more, over :data:`WORSE` times the lowest), other than the
        last validation's; None otherwise."""
        if self.restored_sums is None or len(self.validated_sums) < LEAST_VALIDATIONS:
            return None
        losses = [v for v, _ in self.validated_sums]
        at = next((k for k, (_, sums) in enumerate(self.validated_sums)
                   if sums.shape == self.restored_sums.shape and
                   torch.allclose(sums, self.restored_sums, rtol=1e-9, atol=0.0)), None)
        low = min(losses)
        if at is None or at == len(losses) - 1 or losses[at] < max(losses) or losses[at] <= WORSE * low:
            return None
        best = losses.index(low)
        return Verdict(NAME, "warn", f"load_state_dict restored the weights of validation {at + 1} of "
                       f"{len(losses)}, whose loss {losses[at]:.4g} is the highest (the lowest: {low:.4g} at "
                       f"validation {best + 1})", "the weights of the lowest validation loss restored",
                       "the comparison keeping the best weights picks the worst: for a loss keep them when "
                       "val_loss < best_loss, with best_loss = float('inf') at the start (> and -inf are an "
                       "accuracy's)")

    def verdict(self) -> Verdict | None:
        """A warning when a loaded state dict held the module's own live weights, or the weights of the worst
        validation; None otherwise."""
        if self.shared is None:
            return self.worst_restored()
        shared, total = self.shared
        names = ", ".join(shared[:3]) + (", ..." if len(shared) > 3 else "")
        return Verdict(NAME, "warn", f"load_state_dict was given the model's own live tensors ({len(shared)} of "
                       f"{total} parameters: {names}): the restore is a no-op and the model keeps its last weights",
                       "a state dict copied when it was saved", FIX)
