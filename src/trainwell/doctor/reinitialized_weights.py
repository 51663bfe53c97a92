"""Weights initialized again after training began: an ``init_weights`` applied inside the loop.

``model.apply(init_weights)`` (or a loop over ``m.reset_parameters()``) belongs before training. Written at the
top of the epoch loop, or in a helper the loop calls each epoch, it draws fresh weights every epoch: each epoch
starts over from an untrained model, the loss climbs back to its first value at every epoch start, and the run
ends with one epoch's training at most. Nothing errors.

Read from ``torch.nn.init``'s own functions (``kaiming_normal_``, ``xavier_uniform_``, ``normal_``, ``zeros_``,
...; ``nn.Linear.reset_parameters`` and the other layers' call them too) while a watch is open: the calls on the
watched model's trainable parameters (matched by their memory, so ``nn.init.normal_(m.weight.data)`` counts)
after the first ``w.step()``, grouped by the step they came after. A group covering half the trainable weights
or more is a re-initialization of the model; a reset of a few layers on purpose (the last layers reset to fight
the primacy bias in deep RL, Nikishin et al. 2022, "The Primacy Bias in Deep Reinforcement Learning") covers
less and is not read. The DCGAN tutorial's ``weights_init`` writes past ``torch.nn.init``, with the tensors' own
in-place fills (``m.weight.data.normal_(0.0, 0.02)``, ``m.bias.data.fill_(0)``): ``Tensor.normal_``, ``uniform_``,
``fill_`` and ``zero_`` are read too while the watch is open, the same way (a call counts when it fills a whole
trainable parameter's memory). No optimizer updates the weights with these (they add, multiply and divide), and
``zero_grad`` fills the gradients, not the weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor.caller_warnings import relay, see_through
from trainwell.doctor.verdict import Verdict

NAME = "loop: weights initialized once"
#: the share of the trainable elements one group of calls re-draws for a re-initialization of the model
SHARE = 0.5
#: the ``torch.nn.init`` functions read (each fills its first argument in place)
INITS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
         "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
#: the ``torch.Tensor`` methods read (each fills its tensor in place with fresh values)
FILLS = ("normal_", "uniform_", "fill_", "zero_")
FIX = ("initialize once, before the training loop (model.apply(init_weights) outside the epoch loop): every "
       "re-initialization throws the training so far away (cross-validation folds that reset the model: one watch "
       "per fold)")


class _InitFunctions:
    """``torch.nn.init``'s functions and ``torch.Tensor``'s in-place fills (:data:`FILLS`) replaced, while any
    :class:`InitCalls` reader is open, by wrappers handing the tensor each fills (its first argument, positional or
    ``tensor=``: torch's override dispatch passes it by name; ``self`` for a method) to the open readers; put back
    when the last one stops, so nested watches share one replacement."""

    active: list[InitCalls] = []
    originals: dict[str, Callable] = {}
    methods: dict[str, Callable | None] = {}  # Tensor method -> what torch.Tensor's own dict held (None: inherited)

    @classmethod
    def start(cls, reader: InitCalls) -> None:
        if not cls.active:
            for name in INITS:
                original = getattr(nn.init, name, None)
                if original is not None:
                    cls.originals[name] = original
                    setattr(nn.init, name, cls._wrap(original))
            for name in FILLS:
                cls.methods[name] = torch.Tensor.__dict__.get(name)
                setattr(torch.Tensor, name, cls._wrap(getattr(torch.Tensor, name)))
        cls.active.append(reader)

    @classmethod
    def stop(cls, reader: InitCalls) -> None:
        if reader in cls.active:
            cls.active.remove(reader)
            if not cls.active:
                for name, original in cls.originals.items():
                    setattr(nn.init, name, original)
                for name, own in cls.methods.items():
                    if own is None:
                        delattr(torch.Tensor, name)
                    else:
                        setattr(torch.Tensor, name, own)
                cls.originals, cls.methods = {}, {}

    @classmethod
    def _wrap(cls, original: Callable) -> Callable:
        @see_through
        @functools.wraps(original)
        def read(*args, **kwargs):
            if not torch.compiler.is_compiling():  # a compiled forward's fill is traced on tensors with no memory
                tensor = args[0] if args else kwargs.get("tensor")
                for reader in cls.active:
                    reader.read(tensor)
            return relay(original, *args, **kwargs)
        return read


class InitCalls:
    """The ``torch.nn.init`` calls and in-place fills on ``model``'s trainable parameters while :meth:`start`-ed,
    after the first step (``steps()``: the steps so far): per step count, the parameters they re-drew (by data
    pointer)."""

    def __init__(self, model: nn.Module, steps: Callable[[], int]) -> None:
        self.model, self.steps = model, steps
        self.sizes: dict[int, int] = {}  # data pointer -> elements, of the trainable parameters
        self.names: dict[int, str] = {}  # data pointer -> the parameter's name
        self.groups: dict[int, set[int]] = {}  # step count -> the parameters re-drawn after it

    def start(self) -> None:
        _InitFunctions.start(self)

    def stop(self) -> None:
        _InitFunctions.stop(self)

    def read(self, tensor) -> None:
        step = self.steps()
        if not isinstance(tensor, torch.Tensor) or not step or isinstance(tensor, nn.parameter.UninitializedParameter):
            return
        if not self.sizes:  # read once training began: a lazy module's parameters exist by then
            self.sizes = {p.data_ptr(): p.numel() for p in self.model.parameters() if p.requires_grad and
                          not isinstance(p, nn.parameter.UninitializedParameter) and p.numel() and p.data_ptr()}
            self.names = {p.data_ptr(): n for n, p in self.model.named_parameters() if p.data_ptr() in self.sizes}
        try:
            ptr = tensor.data_ptr() if tensor.numel() else 0
        except RuntimeError:  # a tensor without memory of its own (a fake or functional tensor while tracing)
            return
        if self.sizes.get(ptr) == tensor.numel():  # a whole parameter, not a slice that starts where it does
            self.groups.setdefault(step, set()).add(ptr)

    def partial_resets(self) -> list[tuple[int, list[str]]]:
        """(step count, the parameters' names) of each point after training began where under :data:`SHARE` of
        the trainable elements were re-drawn (a layer reset on purpose), in step order."""
        total = sum(self.sizes.values())
        return [(step, sorted(self.names.get(p, "?") for p in ptrs)) for step, ptrs in sorted(self.groups.items())
                if total and sum(self.sizes[p] for p in ptrs) < SHARE * total]

    def verdict(self) -> Verdict | None:
        """A fail when the model's weights (half the trainable elements or more) were re-drawn after training began
        at 2 or more points, a warning at one; else None."""
        total = sum(self.sizes.values())
        large = sorted((step, sum(self.sizes[p] for p in ptrs) / total) for step, ptrs in self.groups.items()
                       if total and sum(self.sizes[p] for p in ptrs) >= SHARE * total)
        if not large:
            return None
        at = ", ".join(str(step) for step, _ in large[:4]) + (", ..." if len(large) > 4 else "")
        share, times = max(s for _, s in large), "once" if len(large) == 1 else f"{len(large)} times"
        return Verdict(NAME, "fail" if len(large) >= 2 else "warn", "an init (torch.nn.init, or in-place "
                       f"normal_/uniform_/fill_/zero_ on the weights) re-drew {share:.0%} of the "
                       f"trainable weights after training began, {times} (after step{'s' if len(large) > 1 else ''} "
                       f"{at}): training "
                       "starts over from fresh weights each time", "weights initialized once, before training", FIX)
