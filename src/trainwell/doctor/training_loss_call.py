"""The training loss's class-index call, read on a watched loop's first steps: what the validation readings hold
the validation's loss calls against.

The first ``F.cross_entropy`` or ``F.nll_loss`` call made with gradients (``nn.CrossEntropyLoss`` and
``nn.NLLLoss`` make it too) on the first steps (:class:`~trainwell.doctor.first_steps.FirstStepsReader`) gives
the training loss's ``ignore_index`` (a padded batch's pad id; :mod:`~trainwell.doctor.validation_pads`) and its
reduction: ``"mean"`` is a mean per target, a language model's loss per token
(:mod:`~trainwell.doctor.average_forms`), when the loss given to ``w.step`` on that step lies within
:data:`SAME` of the call's value (not the call scaled by a sequence length: a loss per sequence). Both values
are kept as tensors and read at report time. So is, for a call on scores (N, C) and targets (N,) with an
``ignore_index`` in [0, C), the share of its targets equal to it (:mod:`~trainwell.doctor.ignored_class_call`),
and, for an ``F.cross_entropy`` call given class probabilities (floating-point targets shaped like its scores), the
least, mean and largest sum of their rows over the classes (:mod:`~trainwell.doctor.probability_targets`). For a
call on scores (N, C) and class-index targets (N,), the share of its targets equal to the scores' own argmax is
kept too (:mod:`~trainwell.doctor.own_argmax_targets`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed

#: the class-index losses read, by function
CLASS_INDEX = {F.cross_entropy: "cross_entropy", F.nll_loss: "nll_loss"}
DEFAULT = -100  # torch's ignore_index: a training loss with it ignores nothing the validation could count
SAME = 1.5  # the loss given to w.step within this factor of the call's value: the training loss is that mean


class _LossCalls(TorchFunctionMode):
    """Records the function, ``ignore_index`` and reduction of the first class-index loss call made with
    gradients."""

    def __init__(self):
        super().__init__()
        self.read: tuple[str, int, str] | None = None
        self.value: torch.Tensor | None = None
        self.ignored: tuple | None = None  # (input's shape, share of the targets equal to ignore_index: a tensor)
        self.row_sums: torch.Tensor | None = None  # class-probability targets: their rows' least, mean, largest sum
        self.own_argmax: tuple | None = None  # (scores' shape, share of the targets equal to their argmax: a tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = CLASS_INDEX.get(func)
        if name is not None and self.read is None and torch.is_grad_enabled():
            ignored = kwargs.get("ignore_index", args[4] if len(args) > 4 else DEFAULT)
            reduction = kwargs.get("reduction", args[6] if len(args) > 6 else "mean")
            legacy = kwargs.get("size_average") is not None or kwargs.get("reduce") is not None
            if isinstance(ignored, int) and isinstance(reduction, str) and not legacy:
                self.read = (name, ignored, reduction)
                self.value = out.detach() if isinstance(out, torch.Tensor) and out.dim() == 0 else None
                scores, target = args[0] if args else kwargs.get("input"), args[1] if len(args) > 1 else \
                    kwargs.get("target")
                if isinstance(scores, torch.Tensor) and isinstance(target, torch.Tensor) and scores.dim() == 2 and \
                        target.dim() == 1 and not target.is_floating_point() and 0 <= ignored < scores.shape[1]:
                    self.ignored = (tuple(scores.shape), (target.detach() == ignored).float().mean())
                if isinstance(scores, torch.Tensor) and isinstance(target, torch.Tensor) and scores.dim() == 2 and \
                        target.dim() == 1 and not target.is_floating_point() and len(target) == len(scores):
                    self.own_argmax = (tuple(scores.shape),
                                       (target.detach() == scores.detach().argmax(1)).float().mean())
                if name == "cross_entropy" and isinstance(scores, torch.Tensor) and isinstance(target, torch.Tensor) \
                        and scores.dim() >= 2 and target.is_floating_point() and target.shape == scores.shape:
                    sums = target.detach().double().sum(1).reshape(-1)
                    self.row_sums = torch.stack([sums.min(), sums.mean(), sums.max()])
        return out


class TrainingLossCall(FirstStepsReader):
    """The training loss's class-index call, read on the first steps until one is seen."""

    def __init__(self):
        super().__init__()
        self.read: tuple[str, int, str] | None = None
        self.ignored: tuple | None = None  # a class-index call ignoring one of its classes (_LossCalls.ignored)
        self.row_sums: torch.Tensor | None = None  # its class-probability targets' row sums (_LossCalls.row_sums)
        self.own_argmax: tuple | None = None  # its targets against its scores' argmax (_LossCalls.own_argmax)
        self._values: tuple | None = None  # (the call's value, the loss given to w.step on its step)
        self._values_pending: torch.Tensor | None = None  # the call's value, till that step's w.step

    def given(self, loss) -> None:
        """``w.step(loss)``, right after the modes were left: the step's loss, kept with the call's value when this
        step's call was read."""
        if self._values is None and self.read is not None and isinstance(self._values_pending, torch.Tensor):
            self._values = (self._values_pending, loss.detach() if isinstance(loss, torch.Tensor) else float(loss))
        self._values_pending = None

    @property
    def ignore_index(self) -> int | None:
        """Its ``ignore_index`` when not torch's default (the loop passed one: its pad id), else None."""
        return self.read[1] if self.read is not None and self.read[1] != DEFAULT else None

    @property
    def whole_loss(self) -> bool:
        """Whether the loss given to ``w.step`` on the call's step is the call's value (within :data:`SAME`): the
        call is the training loss, not one term of several. Reads two values (report time)."""
        if self._values is None:
            return False
        call, loss = (float(v) for v in self._values)
        return call > 0 and loss > 0 and call / SAME <= loss <= call * SAME

    @property
    def per_target(self) -> bool:
        """Whether the training loss is its mean over its targets (``reduction="mean"``, the loss given to
        ``w.step`` within :data:`SAME` of it): a sequence loss's mean per token. Reads two values (report time)."""
        if self.read is None or self.read[2] != "mean" or self._values is None:
            return False
        call, loss = (float(v) for v in self._values)
        return call > 0 and loss > 0 and call / SAME <= loss <= call * SAME

    def _new_mode(self) -> _LossCalls:
        return _LossCalls()

    def _done(self) -> bool:
        return self.read is not None

    def _keep(self, mode: _LossCalls) -> None:
        self.read, self._values_pending, self.ignored = mode.read, mode.value, mode.ignored
        self.row_sums, self.own_argmax = mode.row_sums, mode.own_argmax
