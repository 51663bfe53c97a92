"""An optimizer created again inside the training loop, on the same parameters: ``for xb, yb in loader: opt =
torch.optim.Adam(model.parameters(), 1e-3)`` (or at the top of every epoch). Each new optimizer starts its state
over: Adam's moment estimates and step count (Kingma & Ba 2015), SGD's momentum buffer (Polyak 1964). Rebuilt every
step, every update is Adam's first, whose bias-corrected ratio m / sqrt(v) is g / |g|: the learning rate times the
gradient's sign, whatever its size; momentum never builds up. Rebuilt every epoch, each epoch starts with Adam's
first steps again.

Read from the optimizers' construction (``Optimizer.__init__``, which every torch optimizer calls) while watched.
The construction's arguments are not read (``model.parameters()`` is a generator, which the optimizer consumes):
each new optimizer is kept by a weak reference and read when the next one is created or the report is written,
by then built, and still held by the loop's variable. The fingerprint: three or more optimizers over the same
parameters as the one before them, each created after that one had stepped and kept state, every step or at
equal intervals (an epoch). Stages of fine-tuning that build a new optimizer over more parameters (layers
unfrozen) pass, as does a plain SGD rebuilt (without momentum it keeps no state: nothing starts over).

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> steps = [0]
    >>> builds = OptimizerBuilds([w], lambda: (steps[0], 0, 0))
    >>> builds.start()
    >>> for step in range(4):
    ...     opt = torch.optim.Adam([w], lr=0.1)
    ...     w.grad = torch.ones(1)
    ...     opt.step()
    ...     steps[0] += 1
    >>> builds.stop()
    >>> [at[0] for at in builds.rebuilds()]
    [1, 2, 3]
"""

from __future__ import annotations

import weakref

from torch.optim import Optimizer

from trainwell.doctor.method_readers import ReadsCalls
from trainwell.doctor.rebuilt_schedulers import _one_pass_each
from trainwell.doctor.verdict import Verdict

NAME = "loop: optimizer built once"
#: optimizers over the same parameters, each created after the one before it had state, before the loop is named
LEAST_BUILDS = 3
#: the constructions kept (each a step count and a reference): enough to read any loop, bounded for long ones
_KEPT = 4096


def built_again(new, old) -> bool:
    """Whether optimizer ``new`` is ``old`` created again: of its kind, with its settings (``defaults``: the rate,
    momentum, ... it was built with), over the very tensors it holds (``model.parameters()`` once more). A new
    stage of training (another kind, another rate, more layers unfrozen) is not."""
    held = [[[id(p) for p in g["params"]] for g in o.param_groups] for o in (new, old)]
    try:
        same = bool(new.defaults == old.defaults)
    except (RuntimeError, TypeError, ValueError):  # a tensor among them
        same = False
    return same and type(new) is type(old) and any(held[0]) and held[0] == held[1]


class OptimizerBuilds(ReadsCalls):
    """The optimizers created between :meth:`start` and :meth:`stop` over any of ``parameters`` (the watched
    model's), each with the clock's reading when it was created (``clock()``: the loop's steps, validations and
    DataLoader iterations so far), after those ``given`` to the watch (created before it)."""

    patched = (Optimizer, "__init__")

    def __init__(self, parameters, clock, given=()) -> None:
        self._ids = {id(p) for p in parameters}
        self._clock = clock
        self._made: list[tuple[tuple, weakref.ref]] = [(clock(), weakref.ref(o)) for o in given]
        self._read: list[tuple] = []  # (clock, parameters, had state, kind, momentum) of each one made

    def saw(self, optimizer: Optimizer, *args, **kwargs) -> None:
        if len(self._made) >= _KEPT:
            return
        self._settle()  # the previous one is built by now (and still held by the loop's variable)
        self._made.append((self._clock(), weakref.ref(optimizer)))

    def _settle(self) -> None:
        """Read the optimizers created so far that are built: the parameters they hold (of the watched model),
        whether they have state (they stepped, and keep moments or momentum) and their kind."""
        for step, ref in self._made[len(self._read):]:
            opt = ref()
            groups = getattr(opt, "param_groups", None) if opt is not None else None
            if groups is None:  # gone (created and dropped), or a wrapper still being built
                self._read.append((step, frozenset(), False, "", False))
                continue
            held = frozenset(id(p) for g in groups for p in g["params"] if id(p) in self._ids)
            state = any(bool(s) for s in opt.state.values())
            momentum = any(g.get("momentum", 0) for g in groups)
            self._read.append((step, held, state, type(opt).__name__, momentum))

    def rebuilds(self) -> list:
        """The clock's readings at which an optimizer over the same watched parameters as the one created before
        it was created after that one had kept state (each rebuild starts it over)."""
        self._settle()
        out = []
        for (_, held, state, _, _), (at, again, _, _, _) in zip(self._read, self._read[1:], strict=False):
            if held and held == again and state:
                out.append(at)
        return out

    def verdict(self, steps: int, datasets: list[int]) -> Verdict | None:
        """A warn when :data:`LEAST_BUILDS` or more optimizers followed each other over the same parameters, each
        rebuilt after its predecessor kept state, at every step or once per epoch: one ``w.validate`` or one pass
        over a dataset between two rebuilds (a k-fold run that builds one per fold, many epochs long, passes).
        The clock reads (steps, validations, DataLoader iterations begun); ``datasets``: the dataset of each
        iteration, in order; ``steps``: the loop's steps recorded in all."""
        at = self.rebuilds()
        if len(at) < LEAST_BUILDS - 1:
            return None
        spans = list(zip(at, at[1:], strict=False))
        gaps = sorted({b[0] - a[0] for a, b in spans})
        every_step = gaps[-1] <= 1
        # one pass each, the clock's third reading indexing ``datasets`` (the iterations begun, in order)
        per_epoch = all(b[1] - a[1] == 1 for a, b in spans) or \
            _one_pass_each([(a[2], b[2]) for a, b in spans], [(d, i) for i, d in enumerate(datasets)])
        if not every_step and not per_epoch:
            if any(b[1] > a[1] for a, b in spans) or any(b[2] > a[2] for a, b in spans) or \
                    gaps[-1] - gaps[0] > max(1, gaps[0] // 4):
                return None  # several epochs between two (stages, folds), or no regular interval
        kinds = sorted({kind for _, held, _, kind, _ in self._read if held})
        momentum = any(m for _, held, _, _, m in self._read if held)
        adaptive = any(k != "SGD" for k in kinds)
        made = f"{len(at) + 1} {' and '.join(kinds)} optimizers over the same parameters"
        when = "a new one at every step" if every_step else "a new one at the start of each epoch" if per_epoch \
            else f"a new one every {gaps[0]} steps"
        if adaptive and every_step:
            effect = ("every update is its first: Adam's bias-corrected m / sqrt(v) is g / |g|, a step of the "
                      "learning rate times the gradient's sign whatever its size (Kingma & Ba 2015)")
        elif adaptive:
            effect = "its moment estimates and step count start over each time, with its first steps' sizes"
        elif momentum:
            effect = "its momentum buffer starts over each time and never builds up"
        else:
            effect = "its state starts over each time"
        return Verdict(NAME, "warn", f"{made}, {when} ({steps} steps recorded): {effect}",
                       "one optimizer for the whole run",
                       "create the optimizer once, before the loop, and pass that one to doctor.watch: a new one "
                       "starts its state over (Adam's moments and step count, SGD's momentum buffer); to change "
                       "the rate, set param_groups' 'lr' or use a scheduler; for a new stage with more parameters "
                       "unfrozen, a new optimizer (or add_param_group) is fine")

