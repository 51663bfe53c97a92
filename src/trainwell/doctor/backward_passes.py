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


def accumulate_node(p: torch.Tensor):
    """The ``AccumulateGrad`` node of leaf ``p`` (what adds a pass's gradient to ``p.grad``); None when it has
    none."""
    if not p.requires_grad:
        return None
    with torch.enable_grad():
        fn = p.view_as(p).grad_fn
    return fn.next_functions[0][0] if fn is not None and fn.next_functions else None


def fills_grad(node) -> bool:
    """Whether the pass running now (inside a tensor hook of the leaf that owns ``node``) adds to its ``.grad``: a
    ``backward()`` does; ``torch.autograd.grad(loss, params)`` (MAML's inner step, Finn et al. 2017; a gradient
    penalty on the weights) returns the gradients and leaves ``.grad`` as it was. True when it cannot be told."""
    will = getattr(torch._C, "_will_engine_execute_node", None)
    if node is None or will is None:
        return True
    try:
        return bool(will(node))
    except RuntimeError:  # torch refuses the question for a leaf during autograd.grad(): no .grad is filled
        return False


class OutputGradients:
    """The model's outputs on an observed step's training forwards, each with the gradient every backward pass sent
    to it, and which passes filled the parameters' ``.grad`` and were not handed on before the step."""

    def __init__(self, limit: int = 16, small: int = 4096, budget: int = 2**16):
        # beyond ``limit`` outputs, small ones are still kept while their elements fit ``budget``: a policy called
        # once per environment step (a batch of 1) makes hundreds of forwards before one optimizer step
        self.limit, self.small, self.budget = limit, small, budget
        self.kept = 0  # elements kept
        self.outputs: list[tuple[torch.Tensor, dict[int, torch.Tensor]]] = []
        self.heads: list[str | None] = []  # each output's head name; None: the class scores
        self.single: list[bool] = []  # each output's forward was given one example (unbatched, or a batch of 1)
        self.filling: set[int] = set()  # passes that delivered to a parameter
        self.spent: set[int] = set()  # of them, those whose .grad was used and cleared before the step

    def __len__(self) -> int:
        return len(self.outputs)

    def watch(self, z: torch.Tensor, head: str | None = None, single: bool = False) -> tuple | None:
        """Keep ``z`` (a copy) and the gradient each pass sends to it (one tensor hook); ``head``: the name of an
        output besides the class scores (a second head's field), None for the scores; ``single``: the forward's
        input held one example. Returns what is kept (for :meth:`drop`), None when nothing is."""
        n = len(self.outputs)
        if n >= self.limit and (n >= self.small or self.kept + z.numel() > self.budget):
            return None
        self.kept += z.numel()
        entry = (z.detach().clone(), {})
        self.outputs.append(entry)
        self.heads.append(head)
        self.single.append(single)

        def keep(g, per_pass=entry[1]):
            task = current_pass()
            per_pass[task] = g.detach().clone() if task not in per_pass else per_pass[task] + g.detach()
        z.register_hook(keep)
        return entry

    def drop(self, entries: list[tuple]) -> None:
        """Forget the outputs kept as ``entries`` (those of forwards that are not the step's training forwards)."""
        gone = {id(e) for e in entries}
        rows = [(e, h, s) for e, h, s in zip(self.outputs, self.heads, self.single, strict=True) if id(e) not in gone]
        self.kept -= sum(e[0].numel() for e in self.outputs if id(e) in gone)
        self.outputs, self.heads, self.single = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]

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

    def batch_pairs(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """:meth:`pairs`, with the outputs of forwards of one example each (unbatched ``(A,)`` or ``(1, A)``, of
        one width) stacked into one ``(N, A)`` batch: a policy called once per environment step whose loss sums over
        the episode is read as a batched one is (an output no applied pass reached has a zero gradient)."""
        pairs = self.pairs()
        singles = [one for head, one in zip(self.heads, self.single, strict=True) if head is None]
        return one_batch(pairs) if len(pairs) == len(singles) and all(singles) else pairs

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


def one_batch(pairs: list[tuple[torch.Tensor, torch.Tensor | None]]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """``pairs`` (of forwards given one example each) as they are unless every output holds one example
    (``(A,)``, or ``(1, A, ...)``) of one shape and a pass reached one of them: then their rows stacked into one
    ``(N, A, ...)`` output and gradient."""
    if not pairs or all(g is None for _, g in pairs):
        return pairs
    shapes = {tuple(z.shape) for z, _ in pairs}
    if len(shapes) != 1:
        return pairs
    shape = next(iter(shapes))
    if not (len(shape) == 1 and shape[0] >= 2 or len(shape) >= 2 and shape[0] == 1):
        return pairs
    if len(pairs) == 1 and len(shape) >= 2:
        return pairs
    rows = shape if len(shape) == 1 else shape[1:]
    z = torch.stack([z.reshape(rows) for z, _ in pairs])
    g = torch.stack([(g if g is not None else torch.zeros_like(z0)).reshape(rows) for z0, g in pairs])
    return [(z, g)]
