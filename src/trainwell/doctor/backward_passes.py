"""Which backward passes the optimizer step applies: the gradient the loss sent to the model's outputs is read (its
form and weight, :mod:`~trainwell.doctor.loss_form`) only from the passes whose gradients are in ``.grad`` when the
step runs.

Every ``backward()`` and every ``torch.autograd.grad`` call runs as one autograd graph task, each with its own id.
Two kinds of pass reach the model's outputs without being part of the step:

- ``torch.autograd.grad(loss, x)`` differentiates through the outputs and fills no ``.grad``: an input-gradient
  penalty (WGAN-GP's on the interpolates, Gulrajani et al. 2017; double backpropagation, Drucker & LeCun 1992);
- a pass whose ``.grad`` was used and cleared before the step (handed on): SAM's ascent pass (Foret et al. 2021),
  which ``first_step`` reads, moves the weights by and clears, so the step applies only the second pass on the
  same batch; a GAN's other player's loss, applied by that player's own step.
"""

from __future__ import annotations

import torch


def current_pass() -> int:
    """The id of the autograd graph task running now (a hook's ``backward()`` or ``autograd.grad``), -1 outside."""
    task = getattr(torch._C, "_current_graph_task_id", None)
    return task() if task is not None else -1


class OutputGradients:
    """The model's outputs on an observed step's training forwards, each with the gradient every backward pass sent
    to it, and which passes filled the parameters' ``.grad`` and were not handed on before the step."""

    def __init__(self, limit: int = 16):
        self.limit = limit
        self.outputs: list[tuple[torch.Tensor, dict[int, torch.Tensor]]] = []
        self.heads: list[str | None] = []  # each output's head name; None: the class scores
        self.filling: set[int] = set()  # passes that delivered to a parameter
        self.spent: set[int] = set()  # of them, those whose .grad was used and cleared before the step

    def __len__(self) -> int:
        return len(self.outputs)

    def watch(self, z: torch.Tensor, head: str | None = None) -> None:
        """Keep ``z`` (a copy) and the gradient each pass sends to it (one tensor hook); ``head``: the name of an
        output besides the class scores (a second head's field), None for the scores."""
        if len(self.outputs) >= self.limit:
            return
        entry = (z.detach().clone(), {})
        self.outputs.append(entry)
        self.heads.append(head)

        def keep(g, per_pass=entry[1]):
            task = current_pass()
            per_pass[task] = g.detach().clone() if task not in per_pass else per_pass[task] + g.detach()
        z.register_hook(keep)

    def filled(self) -> None:
        """Called when a pass delivers to a parameter (its tensor hook)."""
        self.filling.add(current_pass())

    def handed_on(self) -> None:
        """Called when a parameter's ``.grad`` was cleared after it was used (another optimizer's step, or the
        weights moved in place): the earlier passes are not the step's."""
        self.spent |= self.filling - {current_pass()}

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """(output, the gradient of the passes the step applies, summed) for each class-score output; an output no
        pass reached has None, one reached only by passes the step does not apply is left out."""
        return [(z, g) for head, z, g in self._applied() if head is None]

    def head_pairs(self) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """(head name, output, gradient) for the other heads' outputs that the step's passes reached."""
        return [(head, z, g) for head, z, g in self._applied() if head is not None and g is not None]

    def _applied(self) -> list[tuple[str | None, torch.Tensor, torch.Tensor | None]]:
        counted = self.filling - self.spent
        out = []
        for head, (z, per_pass) in zip(self.heads, self.outputs, strict=True):
            grads = [g for task, g in per_pass.items() if task in counted]
            if grads or not per_pass:
                out.append((head, z, sum(grads[1:], grads[0]) if grads else None))
        return out
