"""Pre-flight checks: run before training, on any ``nn.Module`` and a batch of its data.

From cs231n's "babysitting the learning process" and Karpathy's "A recipe for training neural networks":
initial loss vs its expected value, gradient check against centred differences, regularization dominance, the
ability to overfit a tiny subset, symmetric (identical) hidden units, variance propagation through depth, an
input-independent baseline, and batch independence. Each returns a :class:`~trainwell.doctor.verdict.Verdict`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> initial_loss(model, x, y).status
    'pass'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

# the checks live in one module per family; their names (also the helpers tests reach for) stay importable here
from trainwell.doctor.activations import _activation_stats, symmetry, variance_propagation  # noqa: F401
from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.budget import TIME_BUDGET_S, _within_budget  # noqa: F401
from trainwell.doctor.dead_units import dead_units
from trainwell.doctor.fitting import _free_outputs, _normalization, _train_copy  # noqa: F401
from trainwell.doctor.forward import _accuracy, _training_forward, input_scale  # noqa: F401
from trainwell.doctor.gradient_check import GRAD_ATOL, GRAD_RTOL, gradient_check  # noqa: F401
from trainwell.doctor.initial_loss import initial_loss
from trainwell.doctor.inputs import Inputs
from trainwell.doctor.loss_kinds import _scalar, expected_initial_loss, loss_kind  # noqa: F401
from trainwell.doctor.overfit import overfit_tiny_subset
from trainwell.doctor.penalty_checks import regularization_dominance, regularization_raises_loss
from trainwell.doctor.registration import parameters_registered
from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty
from trainwell.train.progress import report_check


@dataclass
class Subject:
    """What every pre-flight check looks at: the model, a batch (its inputs: one tensor, or several as
    :class:`~trainwell.doctor.inputs.Inputs`), the loss, the run's weight decay, the number of classes (if the
    data says more than the model's output width) and the training penalty (if any)."""

    model: nn.Module
    x: torch.Tensor | Inputs
    y: torch.Tensor
    loss_fn: Callable = F.cross_entropy
    weight_decay: float = 0.0
    num_classes: int | None = None
    penalty: Callable[[nn.Module], torch.Tensor] | None = None
    #: the data loss at the gradient checks' perturbed coordinates: computed by the first check, read by the one
    #: with the L2 penalty (a function of the weights alone; a training penalty may read the forward)
    perturbed: dict = field(default_factory=dict)

    def l2(self, m: nn.Module) -> torch.Tensor:
        """An L2 penalty of the run's weight decay, or of 1e-3 if it has none (something for the check to see)."""
        return l2_penalty(m, self.weight_decay or 1e-3)

    def dominance(self, m: nn.Module) -> torch.Tensor:
        """The penalty compared with the data loss: the training penalty, else the weight decay's L2."""
        return self.penalty(m) if self.penalty is not None else l2_penalty(m, self.weight_decay)

    def title(self, name: str) -> str:
        """The verdict's name for the check registered as ``name``."""
        if name == WITH_PENALTY and self.penalty is None:
            return "gradient check (data + L2)"
        return name


WITH_PENALTY = "gradient check (data + penalty)"

#: every pre-flight check by name, in the lecture's order: ``check(subject) -> Verdict``
#: (:func:`trainwell.doctor.check` replaces one by its name; a new check is one more entry)
CHECKS: dict[str, Callable[[Subject], Verdict]] = {
    "parameters registered": lambda s: parameters_registered(s.model, s.x, s.y, s.loss_fn),
    "initial loss": lambda s: initial_loss(s.model, s.x, s.y, s.loss_fn, s.num_classes),
    "regularization raises loss": lambda s: regularization_raises_loss(s.model, s.x, s.y, s.loss_fn),
    "gradient check (data loss)": lambda s: gradient_check(s.model, s.x, s.y, s.loss_fn,
                                                          name="gradient check (data loss)", memo=s.perturbed),
    WITH_PENALTY: lambda s: gradient_check(s.model, s.x, s.y, s.loss_fn, penalty=s.penalty or s.l2,
                                           name=s.title(WITH_PENALTY),
                                           memo=s.perturbed if s.penalty is None else None),
    "regularization vs data loss": lambda s: regularization_dominance(s.model, s.x, s.y, s.dominance, s.loss_fn),
    "overfit a tiny subset": lambda s: overfit_tiny_subset(s.model, s.x, s.y, s.loss_fn),
    "symmetry": lambda s: symmetry(s.model, s.x),
    "dead units": lambda s: dead_units(s.model, s.x),
    "variance propagation": lambda s: variance_propagation(s.model, s.x, s.y, s.loss_fn),
    "input-independent baseline": lambda s: input_independent_baseline(s.model, s.x, s.y, s.loss_fn),
    "batch independence": lambda s: batch_independence(s.model, s.x),
}


def run_all(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
            weight_decay: float = 0.0, num_classes: int | None = None,
            penalty: Callable[[nn.Module], torch.Tensor] | None = None,
            replace: dict[str, Callable[[Subject], Verdict]] | None = None) -> list[Verdict]:
    """Every pre-flight check of :data:`CHECKS`, in order. The gradient is checked on the data loss alone, then
    with the penalty (``penalty``, else an L2 penalty of the run's weight decay, or 1e-3 if it has none).
    ``replace`` runs other functions in place of the checks it names.

    Prefer :func:`trainwell.doctor.check`, which also guarantees that the user's objects are left untouched.

    Raises:
        ValueError: ``replace`` names a check that does not exist.
    """
    unknown = sorted(set(replace or {}) - set(CHECKS))
    if unknown:
        raise ValueError(f"replace={unknown[0]!r} is not a pre-flight check: use one of {', '.join(CHECKS)}")
    subject = Subject(model, x, y, loss_fn, weight_decay, num_classes, penalty)
    checks = {**CHECKS, **(replace or {})}
    verdicts = []
    for n, name in enumerate(CHECKS, 1):
        report_check(n, len(CHECKS), subject.title(name))  # "(n of m)" on stderr while a fit runs its pre-flight
        verdicts.append(guarded(subject.title(name), functools.partial(checks[name], subject)))
    return verdicts


def guarded(name: str, run: Callable[[], Verdict]) -> Verdict:
    """Run one check; an exception from inside it becomes a 'skip' verdict that names it (the doctor never raises
    on a model a user trains). Interrupts still propagate."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - every failure of a check is reported as that check's verdict
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Verdict(name, "skip", f"skipped: the check could not run on this model ({type(e).__name__}: "
                       f"{text[:200]})", "-", "a doctor limitation on this model, not a verdict on it")
