"""Population training: N models of one architecture trained together in one batched computation.

The members' parameters are stacked (``torch.func.stack_module_state``) and one forward/backward runs all of
them at once with ``torch.func.vmap`` over ``functional_call``. Each member keeps its own initialization (seed),
data order, learning rate, weight decay and labels (e.g. its own label-noise draw). Different MLP widths share the
widest architecture: a narrower member's weights sit in the top-left block and the rest stay exactly zero, since
act(0) = 0 units get zero gradients (ReLU, tanh, leaky ReLU, linear).

The optimizers (SGD, momentum, Adam; coupled or decoupled weight decay on weights only) are written out with a
per-member learning rate and follow torch's update formulas; a learning-rate schedule is applied as a common
multiplier, which is exact for schedules proportional to the base rate (step, cosine to 0, one-cycle).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from trainwell.train.stopping import EarlyStopping


@dataclass
class MemberResult:
    """One member's per-epoch history and where it stopped."""

    history: list[dict] = field(default_factory=list)
    stop_epoch: int | None = None
    best_epoch: int | None = None


def embed_state(narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Place each narrow tensor in the top-left block of a zero tensor shaped like the wide one."""
    out = {}
    for key, w in wide.items():
        n = narrow[key]
        z = torch.zeros_like(w)
        z[tuple(slice(0, s) for s in n.shape)] = n
        out[key] = z
    return out


class PopulationOptimizer:
    """SGD / momentum (heavy-ball or Nesterov) / Adam over stacked parameters with per-member learning rates and
    weight decays (torch's update formulas; decay on weights only, as :func:`trainwell.optim.param_groups`)."""

    def __init__(self, params: dict[str, torch.Tensor], name: str, lrs: torch.Tensor, weight_decays: torch.Tensor,
                 decay: str = "coupled", momentum: float = 0.9, nesterov: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if name not in ("sgd", "momentum", "adam"):
            raise ValueError(f"population optimizer {name!r} is not supported: use sgd, momentum or adam")
        self.params, self.name, self.decay = params, name, decay
        self.lrs, self.wds = lrs, weight_decays
        self.momentum, self.nesterov, self.betas, self.eps = momentum, nesterov, betas, eps
        self.state: dict[str, dict] = {k: {} for k in params}
        self.t = 0
        self.active = torch.ones_like(lrs)  # members that stopped early get 0: their weights freeze

    def _b(self, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (p.dim() - 1)))

    @torch.no_grad()
    def step(self, factor: float = 1.0, momentum: float | None = None) -> None:
        """One update at ``factor`` x each member's rate; ``momentum`` overrides beta1 (Adam) or the momentum
        (SGD) for this step, as one-cycle schedules do."""
        self.t += 1
        for key, p in self.params.items():
            if p.grad is None:
                continue
            lr = self._b(self.lrs * factor * self.active, p)
            wd = self._b(self.wds, p) if p.dim() >= 3 else torch.zeros_like(lr)  # weights: (M, out, in, ...)
            g = p.grad
            if self.decay == "decoupled":
                p.mul_(1 - lr * wd)
            else:
                g = g + wd * p
            st = self.state[key]
            if self.name == "adam":
                b1, b2 = self.betas
                if momentum is not None:
                    b1 = momentum
                if not st:
                    st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
                st["m"].lerp_(g, 1 - b1)
                st["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (st["v"].sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
                p.sub_(lr / (1 - b1**self.t) * st["m"] / denom)
            else:
                if self.name == "momentum":
                    mu = self.momentum if momentum is None else momentum
                    if "buf" not in st:
                        st["buf"] = g.clone()
                    else:
                        st["buf"].mul_(mu).add_(g)
                    g = g + mu * st["buf"] if self.nesterov else st["buf"]
                p.sub_(lr * g)
            p.grad = None


class Population:
    """Train ``len(states)`` copies of ``model``'s architecture, member m starting from ``states[m]``.

    Args:
        model: the (widest) architecture; must have no BatchNorm (its running statistics cannot be vmapped).
        states: one state dict per member (see :func:`embed_state` for narrower MLPs).
        seeds: each member's data-order seed (as ``Trainer(seed=...)``).
        loss: "cross_entropy" (others: "hinge", "mse").
    """

    def __init__(self, model: nn.Module, states: list[dict], seeds: list[int], optimizer: str, lrs: list[float],
                 weight_decays: list[float], *, decay: str = "coupled", momentum: float = 0.9, nesterov: bool = False,
                 betas=(0.9, 0.999), eps: float = 1e-8, loss=F.cross_entropy, device: str | torch.device = "cpu"):
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            raise ValueError("population training cannot vmap BatchNorm's running statistics: use layer/group norm "
                             "or train the members one after another")
        self.device = torch.device(device)
        members = []
        for state in states:
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            members.append(m.to(self.device))
        params, buffers = stack_module_state(members)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        self.buffers = buffers
        self.base = copy.deepcopy(model).to("meta")
        self.size = len(states)
        self.seeds = list(seeds)
        self.loss = loss
        lr_t = torch.tensor(lrs, dtype=torch.float32, device=self.device)
        wd_t = torch.tensor(weight_decays, dtype=torch.float32, device=self.device)
        self.optimizer = PopulationOptimizer(self.params, optimizer, lr_t, wd_t, decay, momentum, nesterov,
                                             tuple(betas), eps)

    def _forward_one(self, params, buffers, x):
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: torch.Tensor, shared: bool = False) -> torch.Tensor:
        """Outputs (M, B, C): ``x`` is (M, B, ...) per member, or (B, ...) shared by all with ``shared``."""
        return vmap(self._forward_one, in_dims=(0, 0, None if shared else 0), randomness="different")(
            self.params, self.buffers, x)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member mean loss and accuracy on shared data ``(x, y)``: two (M,) tensors."""
        self.base.eval()
        total = torch.zeros(self.size, device=self.device)
        correct = torch.zeros(self.size, device=self.device)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(self.device), y[i : i + batch_size].to(self.device)
            out = self.forward(xb, shared=True)  # (M, B, C)
            losses = vmap(self.loss, in_dims=(0, None))(out, yb)
            total += losses * len(yb)
            correct += (out.argmax(dim=2) == yb).sum(dim=1)
        self.base.train()
        n = max(len(x), 1)
        return total / n, correct / n

    def state_dicts(self) -> list[dict]:
        """Each member's parameters as a plain state dict (buffers included)."""
        return [{**{k: v[m].detach().clone() for k, v in self.params.items()},
                 **{k: v[m].clone() for k, v in self.buffers.items()}} for m in range(self.size)]

    def fit(self, train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor] | None,
            epochs: int, batch_size: int, *, lr_factors: list[float] | None = None,
            momenta: list[float] | None = None,
            early_stopping: EarlyStopping | None = None, monitor: str = "val_loss", restore_best: bool = True,
            labels: torch.Tensor | None = None, progress=None) -> list[MemberResult]:
        """Train every member for ``epochs`` epochs; ``labels`` (M, N) gives each member its own training labels
        (default: the shared ``train[1]``). ``lr_factors`` is the schedule's multiplier for every step."""
        x = train[0].to(self.device)
        y_all = (labels if labels is not None else train[1].expand(self.size, -1)).to(self.device)
        n = len(x)
        generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        results = [MemberResult() for _ in range(self.size)]
        best_params = {k: v.detach().clone() for k, v in self.params.items()}
        rows = torch.arange(self.size, device=self.device).unsqueeze(1)
        step = 0
        if progress is not None:
            progress.start(epochs)
        for epoch in range(epochs):
            perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(self.device)  # (M, N)
            loss_sum = torch.zeros(self.size, device=self.device)
            correct = torch.zeros(self.size, device=self.device)
            lr_now = float(self.optimizer.lrs[0]) * (lr_factors[step] if lr_factors else 1.0)
            for i in range(0, n, batch_size):
                idx = perms[:, i : i + batch_size]  # (M, B)
                xb, yb = x[idx], y_all[rows, idx]
                out = self.forward(xb)
                losses = vmap(self.loss)(out, yb)  # (M,)
                losses.sum().backward()
                self.optimizer.step(lr_factors[step] if lr_factors else 1.0, momenta[step] if momenta else None)
                step += 1
                loss_sum += losses.detach() * idx.shape[1]
                correct += (out.detach().argmax(dim=2) == yb).sum(dim=1)
            metrics = {"train_loss": (loss_sum / n).tolist(), "train_acc": (correct / n).tolist()}
            if val is not None and len(val[0]):
                vl, va = self.evaluate(*val)
                metrics.update(val_loss=vl.tolist(), val_acc=va.tolist())
            for m, res in enumerate(results):
                if res.stop_epoch is not None:
                    continue
                row = {"epoch": epoch, "step": step, "lr": lr_now * self._lr_ratio(m),
                       **{k: v[m] for k, v in metrics.items()}}
                res.history.append(row)
                if early_stopping is not None and monitor in row:
                    stop, _, _, best_i, _ = early_stopping.scan([h[monitor] for h in res.history])
                    if best_i == len(res.history) - 1:
                        res.best_epoch = epoch
                        for k, v in self.params.items():
                            best_params[k][m] = v.detach()[m]
                    if stop:
                        res.stop_epoch = epoch
                        self.optimizer.active[m] = 0.0
            if progress is not None:
                progress.update({"epoch": epoch, "train_loss": sum(metrics["train_loss"]) / self.size,
                                 "train_acc": sum(metrics["train_acc"]) / self.size})
            if all(r.stop_epoch is not None for r in results):
                break
        if progress is not None:
            progress.stop()
        if early_stopping is not None and restore_best:
            with torch.no_grad():
                for k, v in self.params.items():
                    for m, res in enumerate(results):
                        if res.best_epoch is not None:
                            v[m] = best_params[k][m]
        return results

    def _lr_ratio(self, m: int) -> float:
        return float(self.optimizer.lrs[m] / self.optimizer.lrs[0])


def schedule_factors(name: str, optimizer: str = "adam", *, epochs: int, steps_per_epoch: int, momentum: float = 0.9,
                     betas=(0.9, 0.999), **kwargs) -> tuple[list[float] | None, list[float] | None]:
    """Per step: the LR multiplier of a schedule proportional to the base rate, and the momentum (SGD) or beta1
    (Adam) the schedule sets (one-cycle cycles it); (None, None) for "none"."""
    from trainwell.optim import build_schedule

    if name == "none":
        return None, None
    if name == "plateau":
        raise ValueError("optim.schedule = 'plateau' depends on each member's validation loss: train the members "
                         "one after another")
    p = [torch.zeros(1, requires_grad=True)]
    if optimizer == "adam":
        dummy = torch.optim.Adam(p, lr=1.0, betas=tuple(betas))
    else:
        dummy = torch.optim.SGD(p, lr=1.0, momentum=momentum if optimizer == "momentum" else 0.0)
    sched = build_schedule(dummy, name, epochs=epochs, steps_per_epoch=steps_per_epoch, **kwargs)
    factors, momenta = [], []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            group = dummy.param_groups[0]
            factors.append(group["lr"])
            momenta.append(group["betas"][0] if optimizer == "adam" else group.get("momentum", 0.0))
            dummy.step()
            if sched.interval == "step":
                sched.scheduler.step()
        if sched.interval == "epoch":
            sched.scheduler.step()
    cycled = name == "onecycle" and optimizer in ("adam", "momentum")
    return factors, (momenta if cycled else None)
