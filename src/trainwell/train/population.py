"""The population learner: M models of one architecture trained together in one batched computation.

The members' parameters are stacked (``torch.func.stack_module_state``) and one forward/backward runs all of
them at once with ``torch.func.vmap`` over ``functional_call``. Each member keeps its own initialization, data
order (the loop's per-member generators), learning rate and its schedule, weight decay and labels (e.g. its own
label-noise draw). Different MLP widths share the widest architecture: a narrower member's weights sit in the
top-left block and the rest stay exactly zero, since act(0) = 0 units get zero gradients (ReLU, tanh, leaky
ReLU, linear).

The optimizers (SGD, momentum, Adam; coupled or decoupled weight decay on weights only) are written out with
per-member tensors and follow torch's update formulas. Each member's learning-rate schedule is the torch scheduler
a separate fit would build, run on a one-parameter stand-in optimizer with the member's own base rate (so cosine
with ``min_lr``, one-cycle's momentum cycling, step and plateau schedules match a separate fit). A frozen member
(it stopped) keeps its parameters, optimizer state and step count unchanged.

The loop is :class:`~trainwell.train.trainer.Trainer`; this module only supplies the learner.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from trainwell.optim import Schedule
from trainwell.train.learners import loss_function


def embed_state(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Place each narrow tensor in the top-left block of a zero tensor shaped like the wide one."""
    out = {}
    for key, w in wide.items():
        n = narrow[key]
        z = torch.zeros_like(w)
        z[tuple(slice(0, s) for s in n.shape)] = n
        out[key] = z
    return out


def narrow_state(wide: dict[str, torch.Tensor], template: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The top-left block of each wide tensor, shaped like ``template`` (the member's own architecture)."""
    return {k: wide[k][tuple(slice(0, n) for n in v.shape)].clone() for k, v in template.items()}


class PopulationOptimizer:
    """SGD / momentum (heavy-ball or Nesterov) / Adam over stacked parameters with per-member learning rates,
    momenta and weight decays (torch's update formulas; decay on weights only, as
    :func:`trainwell.optim.param_groups`). Members with ``active[m] = False`` are not touched at all.

    ``decay_masks[key]`` (broadcastable to the parameter without its member axis) marks which entries decay; by
    default a tensor decays when it is a weight ((M, out, in, ...): 3 or more dims).
    """

    def __init__(self, params: dict[str, torch.Tensor], name: str, lrs: torch.Tensor, weight_decays: torch.Tensor,
                 decay: str = "coupled", momentum: float = 0.9, nesterov: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 decay_masks: dict[str, torch.Tensor] | None = None):
        if name not in ("sgd", "momentum", "adam"):
            raise ValueError(f"population optimizer {name!r} is not supported: use sgd, momentum or adam")
        self.params, self.name, self.decay = params, name, decay
        self.decay_masks = decay_masks
        self.lrs, self.wds = lrs, weight_decays
        self.momentum, self.nesterov, self.betas, self.eps = momentum, nesterov, tuple(betas), eps
        self.state: dict[str, dict] = {k: {} for k in params}
        self.t = torch.zeros_like(lrs, dtype=torch.float64)  # steps per member (Adam's bias correction, in double
        # precision as torch computes it: 1 - 0.999**t in float32 would be off by ~1e-5)
        self.active = torch.ones(len(lrs), dtype=torch.bool, device=lrs.device)
        self.all_active = True

    @staticmethod
    def _b(v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (p.dim() - 1)))

    def freeze(self, member: int) -> None:
        self.active[member] = False
        self.all_active = False

    @torch.no_grad()
    def step(self, lrs: torch.Tensor | None = None, momenta: torch.Tensor | None = None) -> None:
        """One update at learning rates ``lrs`` (default: the base rates); ``momenta`` (M,) overrides beta1 (Adam)
        or the momentum (SGD) per member for this step, as one-cycle schedules do."""
        lrs = self.lrs if lrs is None else lrs
        masked = not self.all_active
        self.t += self.active.to(self.t.dtype)
        for key, p in self.params.items():
            if p.grad is None:
                continue
            lr = self._b(lrs, p)
            act = self._b(self.active, p)
            g = p.grad
            new_p = p
            mask = self.decay_masks.get(key) if self.decay_masks is not None else None
            if mask is not None or (self.decay_masks is None and p.dim() >= 3):  # weights: (M, out, in, ...)
                wd = self._b(self.wds, p) if mask is None else self._b(self.wds, p) * mask
                if self.decay == "decoupled":
                    new_p = p * (1 - lr * wd)
                else:
                    g = g + wd * p
            st = self.state[key]
            if self.name == "adam" and not masked and new_p is p:
                self._adam_in_place(p, g, lr, st, momenta)
                continue
            if self.name == "adam":
                b1 = self._b(momenta, p) if momenta is not None else self.betas[0]
                b2 = self.betas[1]
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                if isinstance(b1, float):
                    m = st["m"].lerp(g, 1 - b1)
                else:
                    m = st["m"] + (g - st["m"]) * (1 - b1).to(p.dtype)
                v = st["v"] * b2 + (1 - b2) * g * g
                t = self._b(self.t, p).clamp_min(1)
                bc1 = (1 - b1**t).to(p.dtype)
                bc2_sqrt = torch.sqrt(1 - b2**t).to(p.dtype)
                denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                new_p = new_p - lr / bc1 * m / denom
                if masked:
                    m, v = torch.where(act, m, st["m"]), torch.where(act, v, st["v"])
                st["m"], st["v"] = m, v
            else:
                if self.name == "momentum" or momenta is not None:  # one-cycle gives plain SGD a momentum too
                    mu = self._b(momenta, p).to(p.dtype) if momenta is not None else self.momentum
                    buf = g.clone() if "buf" not in st else st["buf"] * mu + g
                    g = g + mu * buf if self.nesterov else buf
                    if masked and "buf" in st:
                        buf = torch.where(act, buf, st["buf"])
                    st["buf"] = buf
                new_p = new_p - lr * g
            p.copy_(torch.where(act, new_p, p) if masked else new_p)
            p.grad = None

    def _adam_in_place(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, st: dict,
                       momenta: torch.Tensor | None) -> None:
        """Adam when every member trains: the same formulas in place, with no temporaries but ``denom``."""
        b1 = self._b(momenta, p) if momenta is not None else self.betas[0]
        b2 = self.betas[1]
        if not st:
            st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
        m, v = st["m"], st["v"]
        if isinstance(b1, float):
            m.lerp_(g, 1 - b1)
        else:
            m.add_((g - m).mul_((1 - b1).to(p.dtype)))
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        t = self._b(self.t, p).clamp_min(1)
        bc1 = (1 - b1**t).to(p.dtype)
        bc2_sqrt = torch.sqrt(1 - b2**t).to(p.dtype)
        denom = v.sqrt().div_(bc2_sqrt).add_(self.eps)
        p.sub_(torch.div(m, denom, out=denom).mul_(lr / bc1))  # torch's order: step_size * (m / denom)
        p.grad = None

    def state_dict(self) -> dict:
        return {"state": self.state, "t": self.t, "active": self.active}

    def load_state_dict(self, state: dict) -> None:
        self.state = {k: dict(v) for k, v in state["state"].items()}
        self.t.copy_(state["t"])
        self.active.copy_(state["active"])
        self.all_active = bool(self.active.all())


class MemberView:
    """Member ``m`` of a population seen as a module (parameters, state dict), for per-member callbacks such as
    the stopping criteria (weight change, best-weight restore)."""

    def __init__(self, learner: PopulationLearner, member: int):
        self.learner, self.member = learner, member

    def parameters(self):
        return [p[self.member] for p in self.learner.params.values()]

    def named_parameters(self):
        return [(k, p[self.member]) for k, p in self.learner.params.items()]

    def state_dict(self) -> dict[str, torch.Tensor]:
        m = self.member
        return {**{k: v[m].detach() for k, v in self.learner.params.items()},
                **{k: v[m] for k, v in self.learner.buffers.items()}}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in {**self.learner.params, **self.learner.buffers}.items():
            v[self.member].copy_(state[k])


class MemberSchedules:
    """Each member's learning rate (and one-cycle momentum) at every step, as a separate fit's torch scheduler
    would set it. Step and epoch schedules are tabulated once per distinct base rate; plateau schedules run one
    stand-in scheduler per member on that member's monitored value."""

    def __init__(self, build: Callable[[torch.optim.Optimizer], Schedule] | None, base_lrs: list[float], optimizer: str,
                 momentum: float, betas, *, epochs: int, steps_per_epoch: int, device):
        self.base = torch.tensor(base_lrs, dtype=torch.float32, device=device)
        self.spe, self.device = steps_per_epoch, device
        self.cycled = False
        m = len(base_lrs)
        self.frozen_lr = torch.full((m,), math.nan, device=device)
        self.frozen_mom = torch.full((m,), math.nan, dtype=torch.float64, device=device)
        self.interval = "none"
        self.any_frozen = False  # a Python flag: the per-step lookup stays free of tensor checks
        self._dummies: list = []
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
        self.lr_table = torch.stack([torch.tensor(tables[lr][0]) for lr in base_lrs], 1).float().to(device)
        self.mom_table = torch.stack([torch.tensor(tables[lr][1], dtype=torch.float64) for lr in base_lrs],
                                     1).to(device)  # double: Adam's bias correction 1 - beta1**t needs it

    @staticmethod
    def _dummy(lr: float, optimizer: str, momentum: float, betas) -> torch.optim.Optimizer:
        p = [torch.zeros(1, requires_grad=True)]
        if optimizer == "adam":
            return torch.optim.Adam(p, lr=lr, betas=tuple(betas))
        return torch.optim.SGD(p, lr=lr, momentum=momentum if optimizer == "momentum" else 0.0)

    @staticmethod
    def _group_momentum(group: dict) -> float:
        return group["betas"][0] if "betas" in group else group.get("momentum", 0.0)

    def _tabulate(self, sched: Schedule, optimizer: str, epochs: int, spe: int) -> tuple[list, list]:
        """LR and momentum before each step (step schedules) or each epoch (epoch schedules), plus one more."""
        opt = sched.scheduler.optimizer
        lrs, moms = [], []
        for _ in range(epochs):
            for _ in range(spe if sched.interval == "step" else 1):
                group = opt.param_groups[0]
                lrs.append(group["lr"])
                moms.append(self._group_momentum(group))
                opt.step()
                if sched.interval == "step" and len(lrs) < epochs * spe:
                    sched.scheduler.step()
            if sched.interval == "epoch":
                sched.scheduler.step()
        group = opt.param_groups[0]
        lrs.append(group["lr"])
        moms.append(self._group_momentum(group))
        return lrs, moms

    def at(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-member (LR, momentum or None) for global step ``step``."""
        mom = None
        if self.interval == "step" or self.interval == "epoch":
            i = step if self.interval == "step" else step // self.spe
            i = min(i, len(self.lr_table) - 1)
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

    def step_metric(self, values: dict[int, float]) -> None:
        if self.interval != "metric":
            return
        for m, value in values.items():
            self._dummies[m].scheduler.step(value)
            self.plateau_lrs[m] = self._dummies[m].scheduler.optimizer.param_groups[0]["lr"]
        self.plateau_t = torch.tensor(self.plateau_lrs, dtype=torch.float32, device=self.device)

    def scale(self, member: int, factor: float, step: int) -> None:
        """From now on member ``member`` trains at its current LR x ``factor`` with no schedule."""
        lr, mom = self.at(step)
        self.frozen_lr[member] = lr[member] * factor
        self.any_frozen = True
        if mom is not None:
            self.frozen_mom[member] = mom[member]

    def state_dict(self) -> dict:
        out = {"frozen_lr": self.frozen_lr, "frozen_mom": self.frozen_mom}
        if self.interval == "metric":
            out["plateau"] = [d.scheduler.state_dict() for d in self._dummies]
            out["plateau_lrs"] = self.plateau_lrs
        return out

    def load_state_dict(self, state: dict) -> None:
        self.frozen_lr.copy_(state["frozen_lr"])
        self.frozen_mom.copy_(state["frozen_mom"])
        self.any_frozen = not bool(torch.isnan(self.frozen_lr).all())
        if self.interval == "metric":
            self.plateau_lrs = list(state["plateau_lrs"])
            self.plateau_t = torch.tensor(self.plateau_lrs, dtype=torch.float32, device=self.device)
            for d, s, lr in zip(self._dummies, state["plateau"], self.plateau_lrs, strict=True):
                d.scheduler.load_state_dict(s)
                d.scheduler.optimizer.param_groups[0]["lr"] = lr


class PopulationLearner:
    """``len(states)`` copies of ``model``'s architecture trained together, member m starting from ``states[m]``.

    Args:
        model: the (widest) architecture; must have no BatchNorm (its running statistics cannot be vmapped).
        states: one state dict per member (see :func:`embed_state` for narrower MLPs).
        optimizer: "sgd", "momentum" or "adam", with per-member ``lrs`` and ``weight_decays``.
        schedule: ``schedule(optimizer) -> Schedule``, the same builder a separate fit uses (None: constant LR);
            ``epochs`` and ``steps_per_epoch`` size its tables.
        loss_fn: a loss name or callable ``(outputs, targets) -> scalar`` (vmapped over members).

    Example:
        >>> from torch import nn
        >>> net = nn.Linear(2, 2)
        >>> learner = PopulationLearner(net, [net.state_dict()] * 3, optimizer="sgd", lrs=[0.1, 0.2, 0.3],
        ...                             weight_decays=[0.0] * 3)
        >>> learner.size
        3
    """

    vmapped = True

    def __init__(self, model: nn.Module, states: list[dict], *, optimizer: str, lrs: list[float],
                 weight_decays: list[float], decay: str = "coupled", momentum: float = 0.9, nesterov: bool = False,
                 betas=(0.9, 0.999), eps: float = 1e-8, loss_fn: str | Callable = "cross_entropy",
                 schedule: Callable[[torch.optim.Optimizer], Schedule] | None = None, epochs: int = 1,
                 steps_per_epoch: int = 1, device: str | torch.device = "cpu"):
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("population training cannot vmap BatchNorm's running statistics: use layer/group norm "
                             "or train the members one after another")
        if not len(states) == len(lrs) == len(weight_decays):
            raise ValueError(f"a population needs one state, lr and weight decay per member: got {len(states)}, "
                             f"{len(lrs)}, {len(weight_decays)}")
        self.device = torch.device(device)
        members = []
        for state in states:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            members.append(m.to(self.device))
        params, buffers = stack_module_state(members)
        # every member's parameters live in one (M, P) tensor: the optimizer then runs a handful of big element-wise
        # ops per step instead of a handful per parameter tensor; the named parameters are views into it
        self.layout, start = [], 0
        for key, v in params.items():
            n = v[0].numel()
            self.layout.append((key, start, start + n, tuple(v.shape[1:])))
            start += n
        self.flat = torch.cat([v.detach().reshape(len(states), -1) for v in params.values()], 1).requires_grad_(True)
        decays = torch.zeros(1, start, device=self.device)
        for _, a, b, shape in self.layout:
            if len(shape) >= 2:  # weights decay; biases and norm scales do not (as trainwell.optim.param_groups)
                decays[:, a:b] = 1.0
        self.buffers = buffers
        self.base = copy.deepcopy(model).to("meta")
        self.size = len(states)
        self.loss_fn = loss_function(loss_fn) if isinstance(loss_fn, str) else loss_fn
        lr_t = torch.tensor(lrs, dtype=torch.float32, device=self.device)
        wd_t = torch.tensor(weight_decays, dtype=torch.float32, device=self.device)
        self.optimizer = PopulationOptimizer({"flat": self.flat}, optimizer, lr_t, wd_t, decay, momentum, nesterov,
                                             tuple(betas), eps, decay_masks={"flat": decays})
        self.schedules = MemberSchedules(schedule, list(lrs), optimizer, momentum, betas, epochs=epochs,
                                         steps_per_epoch=steps_per_epoch, device=self.device)
        self.steps = 0  # optimizer steps taken by the population (the schedules' position)
        self.rows = torch.arange(self.size, device=self.device).unsqueeze(1)
        self.model = self  # the loop's State.model: the whole population

    def _views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        # one split (its backward is one concatenation), not a slice per parameter (each slice's backward would
        # materialize a zero tensor the size of all parameters)
        m = flat.shape[0]
        pieces = torch.split(flat, [b - a for _, a, b, _ in self.layout], dim=1)
        return {key: piece.view(m, *shape) for (key, _, _, shape), piece in zip(self.layout, pieces, strict=True)}

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """Each parameter stacked over members, (M, ...): views into the one (M, P) tensor (not tracked)."""
        return self._views(self.flat.detach())

    # -- the forward ---------------------------------------------------------------------------------------
    def _forward_one(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Outputs (M, B, C): ``x`` is (M, B, ...) per member, or (B, ...) shared by all with ``shared``."""
        return vmap(self._forward_one, in_dims=(0, 0, None if shared else 0), randomness="different")(
            self._views(self.flat), self.buffers, x)

    # -- the learner contract ------------------------------------------------------------------------------
    def start_epoch(self) -> None:
        self.base.train()

    def lrs(self) -> list[float]:
        return self.schedules.at(self.steps)[0].tolist()

    def train_step(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[idx]  # (M, B, ...)
        yb = y[self.rows, idx] if y.dim() == 2 else y[idx]  # per-member labels (M, N) or shared (N,)
        out = self.forward(xb)
        losses = vmap(self.loss_fn)(out, yb)  # (M,)
        losses.sum().backward()
        lr, mom = self.schedules.at(self.steps)
        self.optimizer.step(lr, mom)
        self.steps += 1
        return losses.detach(), (out.detach().argmax(dim=2) == yb).sum(dim=1)

    def epoch_metrics(self, n: int) -> list[dict]:
        return [{} for _ in range(self.size)]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> tuple[list[float], list[float]]:
        """Per-member mean loss and accuracy on shared data ``(x, y)``."""
        self.base.eval()
        total = torch.zeros(self.size, dtype=torch.float64, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.int64, device=self.device)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(self.device), y[i : i + batch_size].to(self.device)
            out = self.forward(xb, shared=True)  # (M, B, C)
            total += vmap(self.loss_fn, in_dims=(0, None))(out, yb).double() * len(yb)
            correct += (out.argmax(dim=2) == yb).sum(dim=1)
        self.base.train()
        n = max(len(x), 1)
        return (total / n).tolist(), [c / n for c in correct.tolist()]

    def end_epoch(self, values: dict[int, float]) -> None:
        self.schedules.step_metric(values)

    def scale_lr(self, factor: float, member: int = 0) -> None:
        self.schedules.scale(member, factor, self.steps)

    def freeze(self, member: int) -> None:
        self.optimizer.freeze(member)

    def member_model(self, member: int) -> MemberView:
        return MemberView(self, member)

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s parameters and buffers as a plain (wide) state dict."""
        return {k: v.detach().clone() for k, v in MemberView(self, member).state_dict().items()}

    def state_dict(self) -> dict:
        return {"params": {k: v.detach() for k, v in self.params.items()}, "buffers": self.buffers,
                "optimizer": self.optimizer.state_dict(), "schedules": self.schedules.state_dict(),
                "steps": self.steps}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for k, v in self.params.items():
            v.copy_(state["params"][k])
        for k, v in self.buffers.items():
            v.copy_(state["buffers"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedules.load_state_dict(state["schedules"])
        self.steps = int(state["steps"])


__all__ = ["MemberView", "PopulationLearner", "PopulationOptimizer", "embed_state", "narrow_state"]
