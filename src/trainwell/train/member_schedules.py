"""Each member's learning-rate schedule in a population: the torch scheduler a separate fit would build, run on a
one-parameter stand-in optimizer with the member's own base rate (so cosine with ``min_lr``, one-cycle's momentum
cycling, step and plateau schedules match a separate fit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from trainwell.optim import Schedule
from trainwell.optim_eager import eager
from trainwell.train.learners import as_schedule


class MemberSchedules:
    """Each member's learning rate (and one-cycle momentum) at every step, as a separate fit's torch scheduler
    would set it. Step and epoch schedules are tabulated once per distinct base rate; plateau schedules run one
    stand-in scheduler per member on that member's monitored value."""

    def __init__(self, build: Callable[[torch.optim.Optimizer], Schedule] | None, base_lrs: list[float], optimizer: str,
                 momentum: float, betas, *, epochs: int, steps_per_epoch: int, device,
                 dtype: torch.dtype = torch.float32):
        self.dtype = dtype  # the members' parameters': a float64 population steps at float64 rates
        self.base = torch.tensor(base_lrs, dtype=dtype, device=device)
        self.spe, self.device = steps_per_epoch, device
        self.cycled = False
        m = len(base_lrs)
        self.frozen_lr = torch.full((m,), math.nan, dtype=dtype, device=device)
        self.frozen_mom = torch.full((m,), math.nan, dtype=torch.float64, device=device)
        self.interval = "none"
        self.any_frozen = False  # a Python flag: the per-step lookup stays free of tensor checks
        self._dummies: list = []
        if build is not None:  # a builder may return a torch scheduler, as Trainer(schedule=...) takes one
            raw = build
            build = lambda opt: as_schedule(raw(opt), opt)  # noqa: E731
        self.epochs, self.base_lrs = epochs, [float(lr) for lr in base_lrs]
        self.frozen_py: dict[int, float] = {}  # members whose rate was fixed (scale), as a float
        if build is None:
            return
        probe = build(self._dummy(base_lrs[0], optimizer, momentum, betas))
        self.interval = probe.interval
        if self.interval == "none":
            return
        self.cycled = bool(getattr(probe.scheduler, "cycle_momentum", False))
        if self.interval == "metric":
            self._dummies = [build(self._dummy(lr, optimizer, momentum, betas)) for lr in base_lrs]
            self.plateau_lrs = list(base_lrs)
            self.plateau_t = self.base.clone()
            return
        tables = {}
        for lr in sorted(set(base_lrs)):
            sched = build(self._dummy(lr, optimizer, momentum, betas))
            tables[lr] = self._tabulate(sched, optimizer, epochs, steps_per_epoch)
        self.lr_rows = [list(row) for row in zip(*(tables[lr][0] for lr in base_lrs), strict=True)]  # as floats
        self.lr_table = torch.stack([torch.tensor(tables[lr][0]) for lr in base_lrs], 1).to(device, dtype)
        self.mom_table = torch.stack([torch.tensor(tables[lr][1], dtype=torch.float64) for lr in base_lrs],
                                     1).to(device)  # double: Adam's bias correction 1 - beta1**t needs it

    @staticmethod
    def _dummy(lr: float, optimizer: str, momentum: float, betas) -> torch.optim.Optimizer:
        p = [torch.zeros(1, requires_grad=True)]
        if optimizer == "adam":
            return eager(torch.optim.Adam)(p, lr=lr, betas=tuple(betas))
        if optimizer == "rmsprop":
            return eager(torch.optim.RMSprop)(p, lr=lr, momentum=momentum)
        return eager(torch.optim.SGD)(p, lr=lr, momentum=momentum if optimizer == "momentum" else 0.0)

    @staticmethod
    def _group_momentum(group: dict) -> float:
        return group["betas"][0] if "betas" in group else group.get("momentum", 0.0)

    def _tabulate(self, sched: Schedule, optimizer: str, epochs: int, spe: int) -> tuple[list, list]:
        """LR and momentum before each step (step schedules) or each epoch (epoch schedules), plus one more."""
        opt = sched.scheduler.optimizer
        opt.step()  # once, as a fit steps before its scheduler (torch warns otherwise); the parameter has no
        # gradient, so this and every later step would change nothing: they are not taken (each cost ~65 us, per
        # distinct rate and step: a sweep over 16 rates spent 0.4 s of a 2 s loop here)
        lrs, moms = [], []
        for _ in range(epochs):
            for _ in range(spe if sched.interval == "step" else 1):
                group = opt.param_groups[0]
                lrs.append(group["lr"])
                moms.append(self._group_momentum(group))
                if sched.interval == "step" and len(lrs) < epochs * spe:
                    sched.scheduler.step()
            if sched.interval == "epoch":
                sched.scheduler.step()
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        moms.append(self._group_momentum(group))
        return lrs, moms

    def _row(self, step: int) -> int:
        """The tables' row for global step ``step`` (a step or epoch schedule; the last row past the end)."""
        i = step if self.interval == "step" else step // self.spe
        return min(i, len(self.lr_rows) - 1)

    def at(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-member (LR, momentum or None) for global step ``step``."""
        mom = None
        if self.interval == "step" or self.interval == "epoch":
            i = self._row(step)
            lr = self.lr_table[i]
            if self.cycled:
                mom = self.mom_table[i]
        elif self.interval == "metric":
            lr = self.plateau_t
        else:
            lr = self.base
        if self.any_frozen:
            lr = torch.where(torch.isnan(self.frozen_lr), lr, self.frozen_lr)
            if mom is not None:
                mom = torch.where(torch.isnan(self.frozen_mom), mom, self.frozen_mom)
        return lr, mom

    def rates(self, step: int) -> list[float]:
        """Each member's learning rate at ``step`` as the float a separate fit's optimizer holds (the step's
        tensor may be float32: 0.05 would read 0.05000000074505806), for the metrics."""
        if self.interval == "step" or self.interval == "epoch":
            rates = list(self.lr_rows[self._row(step)])
        elif self.interval == "metric":
            rates = list(self.plateau_lrs)
        else:
            rates = list(self.base_lrs)
        for m, lr in self.frozen_py.items():
            rates[m] = lr
        return rates

    def step_metric(self, values: dict[int, float]) -> None:
        if self.interval != "metric":
            return
        for m, value in values.items():
            self._dummies[m].scheduler.step(value)
            self.plateau_lrs[m] = self._dummies[m].scheduler.optimizer.param_groups[0]["lr"]
        self.plateau_t = torch.tensor(self.plateau_lrs, dtype=self.dtype, device=self.device)

    def scale(self, member: int, factor: float, step: int) -> None:
        """From now on member ``member`` trains at its current LR x ``factor`` with no schedule."""
        lr, mom = self.at(step)
        self.frozen_py[member] = self.rates(step)[member] * factor
        self.frozen_lr[member] = lr[member] * factor
        self.any_frozen = True
        if mom is not None:
            self.frozen_mom[member] = mom[member]

    def state_dict(self) -> dict:
        out = {"frozen_lr": self.frozen_lr, "frozen_mom": self.frozen_mom, "frozen_py": dict(self.frozen_py)}
        if self.interval == "metric":
            out["plateau"] = [d.scheduler.state_dict() for d in self._dummies]
            out["plateau_lrs"] = self.plateau_lrs
        return out

    def load_state_dict(self, state: dict) -> None:
        if ("plateau" in state) != (self.interval == "metric"):
            from trainwell.errors import TrainwellError

            raise TrainwellError("a checkpoint of a population " + (
                "with a plateau schedule: this one has another (the reduced rates would be lost)" if "plateau" in state
                else "without a plateau schedule: this one has one") + "; resume with the schedule it started with")
        self.frozen_lr.copy_(state["frozen_lr"])
        self.frozen_py = {int(m): float(v) for m, v in state.get("frozen_py", {}).items()} or {
            m: v for m, v in enumerate(self.frozen_lr.tolist()) if not math.isnan(v)}  # older files: float32
        self.frozen_mom.copy_(state["frozen_mom"])
        self.any_frozen = not bool(torch.isnan(self.frozen_lr).all())
        if self.interval == "metric":
            self.plateau_lrs = list(state["plateau_lrs"])
            self.plateau_t = torch.tensor(self.plateau_lrs, dtype=self.dtype, device=self.device)
            for d, s, lr in zip(self._dummies, state["plateau"], self.plateau_lrs, strict=True):
                d.scheduler.load_state_dict(s)
                d.scheduler.optimizer.param_groups[0]["lr"] = lr
