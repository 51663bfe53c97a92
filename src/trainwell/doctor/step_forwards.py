"""Which forwards with gradients enabled on an observed step are the step's training forwards: those whose graph a
backward pass reached before the optimizer stepped.

A loop may run the model with gradients enabled without training on it: a validation in eval mode without
``torch.no_grad()`` at an epoch's end (or before training starts), a second ``model(x)`` after the step to log the
training accuracy, an EMA or teacher pass left outside ``no_grad``. When such a forward falls between the previous
optimizer step and an observed one, its outputs and inputs would be read as the step's own: the loss's form read
against a gradient that never came, the validation batch read for the training inputs' scale and for the targets.

Each forward with gradients on an observed step is kept as a :class:`Forward` with tensor hooks on its outputs and
on its first weighted layer's output (a loss on an inner feature reaches that one). When the optimizer steps, the
forwards no backward pass reached are dropped from the step's records, provided some forward of the step was
reached: every forward of a step is kept when none was (``optimizer.step()`` called before ``backward()``, a
loss the hooks do not see). Micro-batches accumulated before one step, several forwards in one loss (siamese
pairs, consistency between two views), a closure's passes (L-BFGS) and a GAN's players are all reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: the forwards of one observed step followed, at most (a policy makes hundreds before one step); those beyond
#: are kept as the step's
LIMIT = 4096
#: the forwards of one step that keep their arguments (for the step's inputs) till the step, at most; beyond them
#: only the latest does (a validation of many batches before an observed step holds no more than these)
HELD = 16
#: the outputs of one forward given a hook, at most (a tuple or dict output's)
_HOOKED = 8


@dataclass
class Forward:
    """One forward with gradients enabled on an observed step and what was recorded of it."""

    call: tuple | None  # its (args, kwargs); None once let go (:data:`HELD`)
    x: torch.Tensor | None  # its first tensor argument, likewise
    tick: int  # its place among the probe's forwards and backward passes
    reached: list[bool] = field(default_factory=lambda: [False])  # did a backward pass reach its graph?
    entry: dict | None = None  # its input readings (``LoopProbe.inputs``), if recorded
    outputs: list = field(default_factory=list)  # its outputs kept by ``OutputGradients.watch``
    layer_hooked: bool = False  # its first weighted layer's output has a hook


class StepForwards:
    """The forwards with gradients enabled since an observed step was armed, in order."""

    def __init__(self) -> None:
        self.forwards: list[Forward] = []

    def opened(self, call: tuple, x: torch.Tensor | None, tick: int) -> Forward | None:
        """A forward with gradients began; None beyond :data:`LIMIT`."""
        if len(self.forwards) >= LIMIT:
            return None
        self.forwards.append(Forward(call, x, tick))
        if len(self.forwards) > HELD + 1:  # the one before it lets its arguments go
            self.forwards[-2].call = self.forwards[-2].x = None
        return self.forwards[-1]

    def latest(self) -> Forward | None:
        return self.forwards[-1] if self.forwards else None

    def reach(self, forward: Forward | None, tensors) -> None:
        """Hook ``tensors`` (a forward's outputs, or its first weighted layer's output): a backward pass that
        reaches one marks ``forward`` reached."""
        if forward is None:
            return
        hooked = [t for t in tensors if isinstance(t, torch.Tensor) and t.requires_grad][:_HOOKED]

        def hook(grad, reached=forward.reached) -> None:
            reached[0] = True

        for t in hooked:
            t.register_hook(hook)

    def first_layer(self, out) -> None:
        """The first weighted layer's output of the latest forward (called for every weighted layer's output)."""
        forward = self.latest()
        if forward is None or forward.layer_hooked or not isinstance(out, torch.Tensor) or not out.requires_grad:
            return
        forward.layer_hooked = True
        self.reach(forward, [out])

    def unreached(self) -> list[Forward]:
        """Those no backward pass reached so far (at ``w.validate()``: the validation's), removed from the step's."""
        gone = [f for f in self.forwards if not f.reached[0]]
        self.forwards = [f for f in self.forwards if f.reached[0]]
        return gone

    def settle(self) -> tuple[list[Forward], list[Forward]]:
        """At the optimizer step: (the step's training forwards, the forwards no backward reached, to drop); every
        forward is the step's when none was reached. Forgets them."""
        forwards, self.forwards = self.forwards, []
        kept = [f for f in forwards if f.reached[0]]
        if not kept:
            return forwards, []
        return kept, [f for f in forwards if not f.reached[0]]


def drop_records(probe, dropped: list[Forward], kept: list[Forward]) -> None:
    """Forget what ``probe`` (a :class:`~trainwell.doctor.loop_probe.LoopProbe`) recorded of ``dropped``, forwards
    that are not training forwards: their outputs and input readings; the step's latest forward, the forward
    sampled for the mode and the latest forward's place are then ``kept``'s."""
    if not dropped:
        return
    probe._outs.drop([e for f in dropped for e in f.outputs])
    gone = {id(f.entry) for f in dropped if f.entry is not None}
    probe.inputs = [e for e in probe.inputs if id(e) not in gone]
    calls = {id(f.call) for f in dropped if f.call is not None}
    if probe.step_forward is not None and id(probe.step_forward) in calls:
        probe.step_forward = kept[-1].call if kept else None
    if probe.mode_sample is not None and id(probe.mode_sample) in calls:
        probe.mode_sample = kept[0].call if kept else None
    if kept and probe._last_forward in {f.tick for f in dropped}:
        probe._last_forward = max(f.tick for f in kept)
