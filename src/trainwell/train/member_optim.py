"""Per-member optimization for a population: the optimizers' update rules over stacked parameters.

The optimizers (SGD, momentum, RMSprop with or without momentum, Adam; coupled or decoupled weight decay on weights
only) follow torch's update formulas with per-member rates, momenta and decays (torch's fused kernels where they
apply). A frozen member (it stopped) keeps its parameters, optimizer state and step count unchanged. Each member's
learning-rate schedule is :class:`trainwell.train.member_schedules.MemberSchedules`.
"""

from __future__ import annotations

import math
import numbers

import torch

from trainwell.errors import TrainwellError
from trainwell.optim import population_optimizers


def _number(v) -> float:
    """``v`` as a float (NaN when it is not a number, text or a boolean: refused by the checks below)."""
    return float(v) if isinstance(v, numbers.Real) and not isinstance(v, bool) else math.nan


# names people bring from torch, and how a population spells them
_ALIASES = {"adamw": "AdamW is optimizer='adam' with decay='decoupled'",
            "nesterov": "Nesterov is optimizer='momentum' with nesterov=True"}


def check_hyperparameters(states, lrs, weight_decays, *, decay, momentum, nesterov, betas, eps, alpha,
                           rmsprop_momentum) -> None:
    """The checks :func:`trainwell.optim.build_optimizer` and torch's optimizers make, per member, in one line."""
    for name, values in (("states", states), ("lrs", lrs), ("weight_decays", weight_decays)):
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{name}: a list with one entry per member, not a {type(values).__name__}")
        if not values:
            raise ValueError(f"{name}: an empty list: a population needs at least one member")
    for name, values, floor, allowed in (("lrs", lrs, False, "a finite number > 0"),
                                         ("weight_decays", weight_decays, True, "a finite number >= 0")):
        bad = next((v for v in values if not (math.isfinite(_number(v)) and (_number(v) > 0 or
                                                                              floor and _number(v) == 0))), None)
        if bad is not None:
            raise ValueError(f"{name}: {bad!r} is not allowed: each is {allowed}")
    if decay not in ("coupled", "decoupled"):
        raise ValueError(f"decay={decay!r} is not allowed: use 'coupled' or 'decoupled'")
    if nesterov and not _number(momentum) > 0:
        raise ValueError(f"nesterov=True needs a momentum > 0 (momentum={momentum!r})")
    for name, value, ok, allowed in (
            ("momentum", momentum, _number(momentum) >= 0, "a number >= 0"),
            ("rmsprop_momentum", rmsprop_momentum, _number(rmsprop_momentum) >= 0, "a number >= 0"),
            ("betas", betas, len(betas) == 2 and all(0 <= _number(b) < 1 for b in betas), "two numbers in [0, 1)"),
            ("eps", eps, _number(eps) >= 0, "a number >= 0"), ("alpha", alpha, _number(alpha) >= 0, "a number >= 0")):
        if not ok:
            raise ValueError(f"{name}={value!r} is not allowed: use {allowed}")


def _family_of(name: str) -> str:
    """Optimizers whose state means the same: SGD and momentum both keep (or start) a momentum buffer."""
    return "sgd" if name in ("sgd", "momentum") else name


def _family(state: dict) -> str | None:
    """The optimizer an older checkpoint's state was written by (none saved its name): Adam keeps m and v,
    RMSprop v alone, SGD with momentum a buffer; None when nothing tells (no step taken, or plain SGD)."""
    kinds = {n for per_param in state.values() for n in per_param}
    return "adam" if "m" in kinds else "rmsprop" if "v" in kinds else "sgd" if "buf" in kinds else None


class PopulationOptimizer:
    """SGD / momentum (heavy-ball or Nesterov) / RMSprop (Tieleman & Hinton 2012; optionally with momentum, torch's
    non-centred form) / Adam over stacked parameters with per-member learning rates,
    momenta and weight decays (torch's update formulas; decay on weights only, as
    :func:`trainwell.optim.param_groups`). Members with ``active[m] = False`` are not touched at all.

    ``decay_masks[key]`` (broadcastable to the parameter without its member axis) marks which entries decay;
    ``decayed`` names the parameters that decay (a fit's rule: :func:`trainwell.regularize.penalized_parameters`,
    no normalization scales); by default a tensor decays when it is a weight ((M, out, in, ...): 3 or more
    dims).
    """

    def __init__(self, params: dict[str, torch.Tensor], name: str, lrs: torch.Tensor, weight_decays: torch.Tensor,
                 decay: str = "coupled", momentum: float = 0.9, nesterov: bool = False,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 decay_masks: dict[str, torch.Tensor] | None = None, alpha: float = 0.99,
                 rmsprop_momentum: float = 0.0, decayed: set[str] | None = None):
        if name not in population_optimizers():
            alias = _ALIASES.get(str(name).lower())
            raise ValueError(f"population optimizer {name!r} is not supported: "
                             + (f"{alias}; " if alias else "") + f"use one of {', '.join(population_optimizers())}")
        self.params, self.name, self.decay = params, name, decay
        self.decay_masks, self.decayed = decay_masks, decayed
        self.lrs, self.wds = lrs, weight_decays
        self.any_decay = bool((weight_decays != 0).any())  # no member decays: the decay terms are skipped
        self.momentum, self.nesterov, self.betas, self.eps = momentum, nesterov, tuple(betas), eps
        self.alpha, self.rmsprop_momentum = alpha, rmsprop_momentum
        self.state: dict[str, dict] = {k: {} for k in params}
        self.t = torch.zeros_like(lrs, dtype=torch.float64)  # steps per member (Adam's bias correction, in double
        # precision as torch computes it: 1 - 0.999**t in float32 would be off by ~1e-5)
        self.active = torch.ones(len(lrs), dtype=torch.bool, device=lrs.device)
        self.all_active = True
        self._scratch: dict[str, torch.Tensor] = {}  # the fused kernels' step for members at their own rates
        self._step_count = torch.zeros((), dtype=torch.float32)  # the fused Adam kernel's step (a CPU tensor)

    @staticmethod
    def _b(v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (p.dim() - 1)))

    @property
    def updates_in_place(self) -> bool:
        """Whether a step updates every parameter and state tensor where it is (what a captured CUDA graph needs):
        not when a member is frozen (the masked update) or Adam decays decoupled from the gradient (both replace
        the state tensors every step)."""
        decoupled_adam = self.name == "adam" and self.decay == "decoupled" and self.any_decay
        return self.all_active and not decoupled_adam

    def freeze(self, member: int) -> None:
        self.active[member] = False
        self.all_active = False

    @torch.no_grad()
    def step(self, lrs: torch.Tensor | None = None, momenta: torch.Tensor | None = None) -> None:
        """One update at learning rates ``lrs`` (default: the base rates); ``momenta`` (M,) overrides beta1 (Adam)
        or the momentum (SGD, RMSprop) per member for this step, as one-cycle schedules do."""
        lrs = self.lrs if lrs is None else lrs
        masked = not self.all_active
        if masked:
            self.t += self.active.to(self.t.dtype)
        else:  # every member counts the step (a conversion of the mask costs ~25 us on a CPU: 1% of a step)
            self.t += 1
        if self._fused(lrs, momenta):
            return
        for key, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            lr = self._b(lrs, p)
            act = self._b(self.active, p)
            new_p = p
            wd = self._decay(key, p)
            st = self.state[key]
            decoupled_adam = self.name == "adam" and self.decay == "decoupled" and wd is not None
            if not masked and not decoupled_adam:  # every member trains: the update in place, one pass per term
                self._in_place(p, g, lr, wd, st, momenta)
                p.grad = None
                continue
            if wd is not None:
                if self.decay == "decoupled":
                    new_p = p * (1 - lr * wd)
                else:
                    g = g + wd * p
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
            elif self.name == "rmsprop":
                new_p = self._rmsprop(new_p, g, lr, st, momenta, act if masked else None)
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

    def _decay(self, key: str, p: torch.Tensor) -> torch.Tensor | None:
        """Each member's weight decay, broadcastable to ``p`` (zero where its decay mask is), or None when ``p``
        does not decay: no member decays, or it is not a weight ((M, out, in, ...)) and has no mask."""
        mask = self.decay_masks.get(key) if self.decay_masks is not None else None
        if not self.any_decay:
            return None
        if mask is None and (key not in self.decayed if self.decayed is not None
                             else self.decay_masks is not None or p.dim() < 3):
            return None
        wd = self._b(self.wds, p)
        return wd if mask is None else wd * mask

    def _runs(self, lrs: torch.Tensor, momenta: torch.Tensor | None) -> list[tuple[int, int, float, float, bool]]:
        """Maximal runs ``(start, stop, t, mu, one_lr)`` of consecutive training members that share one step count
        and one momentum (Adam's beta1; frozen members belong to none); ``one_lr``: they share the learning rate
        too."""
        default = self.betas[0] if self.name == "adam" else self.momentum if self.name == "momentum" else 0.0
        if self.all_active:  # one step count (no member ever stopped): one run unless the momenta differ
            rates = lrs.tolist()
            mus = momenta.tolist() if momenta is not None else [default]
            if mus.count(mus[0]) == len(mus):
                return [(0, len(rates), self.t[0].item(), mus[0], rates.count(rates[0]) == len(rates))]
        mus = momenta.tolist() if momenta is not None else [default] * len(lrs)
        runs: list[list] = []
        last_lr = None
        for m, (lr, t, mu, on) in enumerate(zip(lrs.tolist(), self.t.tolist(), mus, self.active.tolist(),
                                                strict=True)):
            if not on:
                continue
            if runs and runs[-1][1] == m and runs[-1][2] == t and runs[-1][3] == mu:
                runs[-1][1] = m + 1
                runs[-1][4] = runs[-1][4] and lr == last_lr
            else:
                runs.append([m, m + 1, t, mu, True])
            last_lr = lr
        return [tuple(r) for r in runs]

    def _fused(self, lrs: torch.Tensor, momenta: torch.Tensor | None) -> bool:
        """Adam, SGD and momentum (heavy-ball or Nesterov) through torch's fused kernels (``torch._fused_adam_``,
        ``torch._fused_sgd_``, the ones ``fit`` runs: one pass over the parameters, the gradient and the state,
        instead of four to ten), called once per run of members that share a step count and momentum
        (:meth:`_runs`: all the training members, unless some stopped or one-cycle gives them different momenta;
        frozen members are skipped). Members of one run at one learning rate update their parameters in the
        kernel; members at their own rates get the kernel's step at rate 1 in a scratch buffer, then
        ``p += lr * step`` per member (two more passes; the kernel takes one rate per call). Weight decay, per
        member and on weights only, is applied before it, as the in-place path does. Taken on a CPU with at most
        ``max(1, M // 2)`` runs (more calls cost more than the passes they save; benchmarks/RESULTS.md §29);
        returns whether it ran. RMSprop has no fused kernel."""
        if self.name not in ("adam", "sgd", "momentum") or self.lrs.device.type != "cpu":
            return False
        runs = self._runs(lrs, momenta)
        if len(runs) > max(1, len(self.lrs) // 2):
            return False
        buffered = self.name == "adam" or self.name == "momentum" or momenta is not None
        keys, grads, first = self._fused_inputs(lrs, buffered)
        whole = len(runs) == 1 and runs[0][:2] == (0, len(self.lrs))
        for run in runs:
            self._fused_run(run, keys, grads, lrs, buffered, first, whole)
        return True

    def _fused_inputs(self, lrs: torch.Tensor, buffered: bool) -> tuple[list[str], list[torch.Tensor], bool]:
        """Before the kernels: each parameter's weight decay applied (a frozen member's weights and gradient left
        as they are), its state created, its gradient taken off it. Returns the keys of the parameters that have a
        gradient, those gradients, and whether the momentum buffers start now (torch's ``is_first_step``)."""
        keys, grads, first = [], [], False
        for key, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            wd = self._decay(key, p)
            if wd is not None:
                if not self.all_active:
                    wd = torch.where(self._b(self.active, p), wd, 0.0)
                if self.decay == "decoupled":
                    p.mul_(torch.where(wd == 0, 1.0, 1 - self._b(lrs, p) * wd))
                else:
                    g.add_(wd * p)
            st = self.state[key]
            if self.name == "adam" and not st:
                st["m"], st["v"] = torch.zeros_like(p), torch.zeros_like(p)
            elif buffered and "buf" not in st:  # torch starts the buffer at the first gradient (is_first_step)
                st["buf"], first = torch.zeros_like(p), True
            keys.append(key)
            grads.append(g.contiguous())
            p.grad = None
        return keys, grads, first

    def _fused_run(self, run: tuple, keys: list[str], grads: list[torch.Tensor], lrs: torch.Tensor, buffered: bool,
                   first: bool, whole: bool) -> None:
        """One kernel call for the members ``run = (start, stop, t, mu, one_lr)`` of :meth:`_runs`."""
        start, stop, t, mu, one_lr = run

        def rows(ts: list[torch.Tensor]) -> list[torch.Tensor]:
            return ts if whole else [x[start:stop] for x in ts]

        params = [self.params[k] for k in keys]
        if one_lr:
            targets, lr = rows(params), float(lrs[start])
        else:  # the kernel's step at rate 1 into zeros, then each member's own rate
            for k, p in zip(keys, params, strict=True):  # kept between steps: fresh pages cost a fault each
                if k not in self._scratch:
                    self._scratch[k] = torch.empty_like(p)
            targets, lr = [x.zero_() for x in rows([self._scratch[k] for k in keys])], 1.0
        if self.name == "adam":
            step = self._step_count.fill_(t)  # one tensor kept: filled in place (torch.tensor costs 3x more)
            torch._fused_adam_(targets, rows(grads), rows([self.state[k]["m"] for k in keys]),
                               rows([self.state[k]["v"] for k in keys]), [], [step] * len(keys), lr=lr, beta1=mu,
                               beta2=self.betas[1], weight_decay=0.0, eps=self.eps, amsgrad=False, maximize=False)
        else:
            torch._fused_sgd_(targets, rows(grads), rows([self.state[k]["buf"] for k in keys]) if buffered else [],
                              weight_decay=0.0, momentum=mu if buffered else 0.0, lr=lr, dampening=0.0,
                              nesterov=self.nesterov, maximize=False, is_first_step=first)
        if not one_lr:
            for p, d in zip(rows(params), targets, strict=True):
                p.addcmul_(d, self._b(lrs[start:stop], p))

    def _rmsprop(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, st: dict,
                 momenta: torch.Tensor | None, act: torch.Tensor | None) -> torch.Tensor:
        """RMSprop's update as torch writes it: v <- alpha v + (1 - alpha) g^2; with momentum mu,
        b <- mu b + g / (sqrt(v) + eps) and p <- p - lr b, else p <- p - lr g / (sqrt(v) + eps)."""
        if not st:
            st["v"] = torch.zeros_like(p)
        v = st["v"] * self.alpha + (1 - self.alpha) * g * g
        step = g / v.sqrt().add_(self.eps)
        if momenta is not None or self.rmsprop_momentum > 0:
            mu = self._b(momenta, p).to(p.dtype) if momenta is not None else self.rmsprop_momentum
            buf = st["buf"] * mu + step if "buf" in st else step
            if act is not None:  # a frozen member keeps its buffer (none yet: zeros, as torch starts it)
                buf = torch.where(act, buf, st["buf"] if "buf" in st else 0.0)
            st["buf"] = buf
            step = buf
        st["v"] = torch.where(act, v, st["v"]) if act is not None else v
        return p - lr * step

    def _in_place(self, p: torch.Tensor, g: torch.Tensor, lr: torch.Tensor, wd: torch.Tensor | None, st: dict,
                  momenta: torch.Tensor | None) -> None:
        """The update when every member trains: the frozen-member path's formulas term by term (the same float
        roundings, so the results are bit for bit the same), written in place into ``p``, the state and ``g`` (the
        gradient, discarded after the step), without the temporaries and the final copy. ``wd``: the weight
        decay (:meth:`_decay`)."""
        if wd is not None:
            if self.decay == "decoupled":
                p.mul_(1 - lr * wd)
            else:
                g = g.add_(wd * p) if g is p.grad else g + wd * p
        if self.name == "adam":
            self._adam_in_place(p, g, lr, st, momenta)
            return
        if self.name == "rmsprop":
            if not st:
                st["v"] = torch.zeros_like(p)
            st["v"].mul_(self.alpha).add_((1 - self.alpha) * g * g)
            step = g.div_(st["v"].sqrt().add_(self.eps)) if g is p.grad else g / st["v"].sqrt().add_(self.eps)
            if momenta is not None or self.rmsprop_momentum > 0:
                mu = self._b(momenta, p).to(p.dtype) if momenta is not None else self.rmsprop_momentum
                if "buf" in st:
                    step = st["buf"].mul_(mu).add_(step)
                else:  # torch starts the buffer at zero: its first value is the step itself
                    st["buf"] = step = step.clone()
            p.sub_(lr * step)
            return
        if self.name == "momentum" or momenta is not None:  # one-cycle gives plain SGD a momentum too
            mu = self._b(momenta, p).to(p.dtype) if momenta is not None else self.momentum
            if "buf" in st:
                st["buf"].mul_(mu).add_(g)
            else:
                st["buf"] = g.clone()
            if self.nesterov:
                g = g.add_(mu * st["buf"]) if g is p.grad else g + mu * st["buf"]
            else:
                g = st["buf"]
        p.sub_(lr * g)

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

    def state_dict(self) -> dict:
        return {"state": self.state, "t": self.t, "active": self.active, "name": self.name}

    def load_state_dict(self, state: dict) -> None:
        theirs = state.get("name") or _family(state["state"])
        if theirs is not None and _family_of(theirs) != _family_of(self.name):
            raise TrainwellError(f"a checkpoint of a population trained with {theirs}: this one uses {self.name} "
                                 f"(its optimizer state would not mean the same); resume with the same optimizer")
        if set(state["state"]) != set(self.state):
            raise TrainwellError(
                f"this population checkpoint keeps its optimizer state under {sorted(state['state'])}, not the "
                f"parameters {sorted(self.state)} (it was written by an older trainwell, which kept one flat "
                f"state): it cannot be resumed by this version; its files are left as they are")
        # on the parameters' device: a checkpoint is read onto the CPU, and a population may resume on a GPU
        self.state = {k: {n: t.to(self.params[k].device) for n, t in v.items()} for k, v in state["state"].items()}
        self.t.copy_(state["t"])
        self.active.copy_(state["active"])
        self.all_active = bool(self.active.all())
