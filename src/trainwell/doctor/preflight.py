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

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# the checks live in one module per family; their names (also the helpers tests reach for) stay importable here
from trainwell.doctor.activations import _activation_stats, symmetry, variance_propagation  # noqa: F401
from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.budget import TIME_BUDGET_S, _affordable_steps, _within_budget  # noqa: F401
from trainwell.doctor.fitting import _free_outputs, _normalization, _train_copy  # noqa: F401
from trainwell.doctor.forward import _accuracy, _training_forward, input_scale  # noqa: F401
from trainwell.doctor.gradient_check import GRAD_ATOL, GRAD_RTOL, _double_loss, gradient_check  # noqa: F401
from trainwell.doctor.initial_loss import initial_loss
from trainwell.doctor.loss_kinds import _scalar, expected_initial_loss, loss_kind  # noqa: F401
from trainwell.doctor.overfit import overfit_tiny_subset
from trainwell.doctor.penalty_checks import regularization_dominance, regularization_raises_loss
from trainwell.doctor.registration import parameters_registered
from trainwell.doctor.verdict import Verdict
from trainwell.regularize import l2_penalty


def run_all(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: Callable = F.cross_entropy,
            weight_decay: float = 0.0, num_classes: int | None = None,
            penalty: Callable[[nn.Module], torch.Tensor] | None = None) -> list[Verdict]:
    """Every pre-flight check, in the lecture's order. The gradient is checked on the data loss alone, then with
    the penalty (``penalty``, else an L2 penalty of the run's weight decay, or 1e-3 if it has none).

    Prefer :func:`trainwell.doctor.check`, which also guarantees that the user's objects are left untouched.
    """
    strength = weight_decay or 1e-3

    def l2(m):
        return l2_penalty(m, strength)

    def dominance(m):
        return penalty(m) if penalty is not None else l2_penalty(m, weight_decay)

    with_penalty = "gradient check (data + penalty)" if penalty else "gradient check (data + L2)"
    checks = [
        ("parameters registered", lambda: parameters_registered(model, x, y, loss_fn)),
        ("initial loss", lambda: initial_loss(model, x, y, loss_fn, num_classes)),
        ("regularization raises loss", lambda: regularization_raises_loss(model, x, y, loss_fn)),
        ("gradient check (data loss)", lambda: gradient_check(model, x, y, loss_fn, name="gradient check (data loss)")),
        (with_penalty, lambda: gradient_check(model, x, y, loss_fn, penalty=penalty or l2, name=with_penalty)),
        ("regularization vs data loss", lambda: regularization_dominance(model, x, y, dominance, loss_fn)),
        ("overfit a tiny subset", lambda: overfit_tiny_subset(model, x, y, loss_fn)),
        ("symmetry", lambda: symmetry(model)),
        ("variance propagation", lambda: variance_propagation(model, x, y, loss_fn)),
        ("input-independent baseline", lambda: input_independent_baseline(model, x, y, loss_fn)),
        ("batch independence", lambda: batch_independence(model, x)),
    ]
    return [guarded(name, run) for name, run in checks]


def guarded(name: str, run: Callable[[], Verdict]) -> Verdict:
    """Run one check; an exception from inside it becomes a 'skip' verdict that names it (the doctor never raises
    on a model a user trains). Interrupts still propagate."""
    try:
        return run()
    except Exception as e:  # noqa: BLE001 - every failure of a check is reported as that check's verdict
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Verdict(name, "skip", f"skipped: the check could not run on this model ({type(e).__name__}: "
                       f"{text[:200]})", "-", "a doctor limitation on this model, not a verdict on it")
