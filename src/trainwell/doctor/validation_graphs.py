"""Validation forwards run with gradients enabled: ``model.eval()`` but no ``torch.no_grad()`` (or
``torch.inference_mode()``). Each such forward builds an autograd graph and saves every layer's activations for a
backward pass that never comes: the memory of a training step at the validation's batch size (the usual "out of
memory during validation") and the time to build it, for nothing; a running sum of the validation losses
(``val_loss += loss``) keeps every batch's graph, and its activations, until the validation ends.

Read by :class:`~trainwell.doctor.loop_probe.LoopProbe`: every eval-mode forward of the watched model with
gradients enabled gets a tensor hook on its outputs (did any backward pass, ``loss.backward()`` or
``torch.autograd.grad``, reach them?) and a marker on its graph (:mod:`~trainwell.doctor.graph_markers`). Those
between the last optimizer step and ``w.validate()`` are the validation's. Eval-mode forwards that a backward
reaches are not waste and pass: training with frozen BatchNorm statistics (``model.eval()`` while fine-tuning),
adversarial examples from input gradients, saliency maps. An optimizer step clears the record: eval-mode forwards
before it were training forwards."""

from __future__ import annotations

import torch

from trainwell.doctor import outputs as O
from trainwell.doctor.graph_markers import mark
from trainwell.doctor.verdict import Verdict

#: the key of the marker in a validation output's ``grad_fn.metadata``
_KEY = "trainwell.doctor.validation_graphs"
#: the eval-mode forwards with gradients recorded, at most (each holds a flag and a weak reference)
_LIMIT = 512
#: the outputs of one forward given a hook, at most (a tuple or dict output's)
_HEADS = 4


class ValidationGraphs:
    """The eval-mode forwards with gradients enabled since the last optimizer step, and those of every
    ``w.validate()``: whether a backward pass reached each, whether its graph was still alive at ``w.validate()``."""

    def __init__(self) -> None:
        self._pending: list[tuple[list[bool], object]] = []  # (reached by a backward?, its graph's marker)
        self._validated: list[list[bool]] = []  # the validations' eval-mode forwards with gradients
        self._recorded = 0
        self.forwards = 0  # the validations' forwards of the watched model, in any mode, with gradients or not
        self.validations = 0  # w.validate() calls after eval-mode forwards with gradients
        self.kept = 0  # of them, those whose earlier forwards' graphs were all still alive at w.validate()

    def forwarded(self, out) -> None:
        """An eval-mode forward with gradients enabled returned ``out``."""
        if self._recorded >= _LIMIT:
            return
        graphs = [t for t in O.leaves(out) if isinstance(t, torch.Tensor) and t.grad_fn is not None][:_HEADS]
        if not graphs:  # nothing requires a gradient: no graph was built
            return
        reached = [False]

        def hook(grad, reached=reached) -> None:
            reached[0] = True

        for t in graphs:
            t.register_hook(hook)
        self._pending.append((reached, mark(graphs[0].grad_fn, _KEY)))
        self._recorded += 1

    def stepped(self) -> None:
        """An optimizer step: the eval-mode forwards before it were training forwards."""
        self._pending = []

    def validated(self, forwards: int) -> None:
        """``w.validate()`` after ``forwards`` forwards of the watched model since the last step (less a training
        forward a backward reached: ``trainwell watch`` hands the validation over at the next step)."""
        self.forwards += forwards
        if not self._pending:
            return
        self.validations += 1
        earlier = [marker for _, marker in self._pending[:-1] if marker is not None]
        if len(earlier) >= 2 and all(marker() is not None for marker in earlier):
            self.kept += 1
        self._validated += [reached for reached, _ in self._pending]
        self._pending = []

    def verdict(self) -> Verdict | None:
        """A warning when most validation forwards ran in eval mode with gradients and no backward reached them;
        None otherwise (a pass would claim more than the hooks saw: a validation of another model is not seen)."""
        unused = sum(not reached[0] for reached in self._validated)
        if not unused or unused < 0.5 * self.forwards:
            return None
        value = (f"{unused} of {self.forwards} validation forwards ran in eval mode with gradients enabled, and no "
                 "backward pass reached them")
        if self.kept:
            value += (f"; in {self.kept} of {self.validations} validations every batch's graph was still alive at "
                      "w.validate() (a running sum of loss tensors, val_loss += loss)")
        return Verdict("loop: validation without no_grad", "warn", value, "validation under torch.no_grad()",
                       "each forward builds an autograd graph and saves every layer's activations for a backward "
                       "that never comes (memory and time for nothing; the graphs of a running sum of losses stay "
                       "until it is dropped): wrap the validation loop in `with torch.no_grad():` (or "
                       "torch.inference_mode())")
