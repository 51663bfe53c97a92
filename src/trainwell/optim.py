"""Optimizers with the lecture's two forms of weight decay, and learning-rate schedules.

- ``decay="coupled"``: L2 regularization in the gradient, g <- g + lambda w; the optimizer then transforms it
  (momentum averages it, Adam divides it by sqrt(v)). This is what torch's ``weight_decay`` argument does.
- ``decay="decoupled"``: w <- w - lr * lambda * w beside the optimizer's step (Loshchilov & Hutter 2019,
  "Decoupled Weight Decay Regularization"; AdamW). For Adam this is torch's AdamW; for SGD and RMSprop the decay is
  applied by :func:`decoupled` before the inner step.

Weight decay applies to weights only: biases and normalization parameters (tensors with < 2 dims) of a module
go into a group without decay.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.tensor([10.0]))
    >>> opt = build_optimizer([w], "adam", lr=1e-3, weight_decay=1e-2, decay="decoupled")
    >>> w.grad = torch.zeros(1); opt.step(); round(w.item(), 4)
    9.9999
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from trainwell.optim_eager import eager


@dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer: ``make(options) -> (torch class, its keyword arguments)`` from the options of
    :func:`build_optimizer` (momentum, nesterov, betas, eps, alpha, rmsprop_momentum); ``native_decoupled``, a
    class that applies decoupled decay itself (AdamW), else :func:`decoupled` wraps the class; ``population``,
    whether a vmapped population (:class:`~trainwell.train.member_optim.PopulationOptimizer`) implements it."""

    make: Callable[[dict], tuple[type[torch.optim.Optimizer], dict]]
    population: bool = False
    native_decoupled: type[torch.optim.Optimizer] | None = None
    description: str = ""


#: the optimizers ``optim.name`` may name, in the order they are listed (register more with
#: :func:`register_optimizer`)
OPTIMIZERS: dict[str, OptimizerSpec] = {}


def register_optimizer(name: str, *, population: bool = False, native_decoupled=None, description: str = ""):
    """Decorator: register ``make(options) -> (torch class, kwargs)`` as the optimizer called ``name``."""

    def add(make: Callable[[dict], tuple[type, dict]]) -> Callable[[dict], tuple[type, dict]]:
        if name in OPTIMIZERS:
            raise ValueError(f"optimizer {name!r} is already registered")
        OPTIMIZERS[name] = OptimizerSpec(make, population, native_decoupled, description)
        return make

    return add


def population_optimizers() -> tuple[str, ...]:
    """The optimizers a vmapped population trains with (the others train one model at a time)."""
    return tuple(name for name, spec in OPTIMIZERS.items() if spec.population)


@register_optimizer("sgd", population=True, description="plain stochastic gradient descent")
def _sgd(o: dict):
    return torch.optim.SGD, {}


@register_optimizer("momentum", population=True, description="SGD with heavy-ball or Nesterov momentum")
def _momentum(o: dict):
    return torch.optim.SGD, {"momentum": o["momentum"], "nesterov": o["nesterov"]}


@register_optimizer("rmsprop", population=True,
                    description="RMSprop (Tieleman & Hinton 2012), optionally with momentum")
def _rmsprop(o: dict):
    return torch.optim.RMSprop, {"alpha": o["alpha"], "eps": o["eps"], "momentum": o["rmsprop_momentum"]}


@register_optimizer("adam", population=True, native_decoupled=torch.optim.AdamW,
                    description="Adam (Kingma & Ba 2015); decoupled decay is AdamW (Loshchilov & Hutter 2019)")
def _adam(o: dict):
    return torch.optim.Adam, {"betas": tuple(o["betas"]), "eps": o["eps"]}


@register_optimizer("adagrad", description="Adagrad (Duchi, Hazan & Singer 2011): each coordinate's rate divided by "
                                           "the root of its summed squared gradients; RMSprop's predecessor")
def _adagrad(o: dict):
    return torch.optim.Adagrad, {"eps": o["eps"]}


_FUSED_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _fusable(cls: type[torch.optim.Optimizer], groups: list[dict]) -> bool:
    """Whether ``cls`` has torch's fused implementation (``fused=True``: the whole update of every parameter in
    one kernel, instead of about ten tensor operations per parameter) and every parameter can use it: dense
    floating tensors on a CPU or CUDA device. Adam, AdamW, SGD and Adagrad have one; on a small model's CPU step it
    is most of the optimizer's time (RESULTS section 28)."""
    import inspect

    if "fused" not in inspect.signature(cls.__init__).parameters:
        return False
    params = [p for g in groups for p in g["params"]]
    return bool(params) and all(isinstance(p, torch.Tensor) and not p.is_sparse and p.dtype in _FUSED_DTYPES
                                and p.device.type in ("cpu", "cuda") for p in params)


def decoupled(cls: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """Return a subclass of ``cls`` that shrinks weights by lr * weight_decay before each step (decoupled)."""

    class Decoupled(cls):
        def __init__(self, params, weight_decay: float = 0.0, **kwargs):
            super().__init__(params, weight_decay=0.0, **kwargs)
            for group in self.param_groups:
                group.setdefault("decoupled_weight_decay", weight_decay)

        def add_param_group(self, param_group):
            param_group.setdefault("decoupled_weight_decay", self.defaults.get("decoupled_weight_decay", 0.0))
            super().add_param_group(param_group)

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                rate = group["lr"] * group.get("decoupled_weight_decay", 0.0)
                if rate:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.mul_(1.0 - rate)
            return super().step(closure)

    Decoupled.__name__ = Decoupled.__qualname__ = f"Decoupled{cls.__name__}"
    return Decoupled


def param_groups(params: nn.Module | Iterable, weight_decay: float) -> list[dict]:
    """Split a module's parameters into decayed weights and the rest (biases, norm scales, gate logits): the same
    weights the penalties act on (:func:`trainwell.regularize.penalized_parameters`)."""
    if isinstance(params, nn.Module):
        trainable = [p for p in params.parameters() if p.requires_grad]
        if weight_decay == 0:
            return [{"params": trainable, "weight_decay": 0.0}]  # one group: less work per step
        from trainwell.regularize import penalized_parameters

        weights = {id(p) for p in penalized_parameters(params)}
        decay = [p for p in trainable if id(p) in weights]
        no_decay = [p for p in trainable if id(p) not in weights]
        groups = [{"params": decay, "weight_decay": weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups
    return [{"params": list(params), "weight_decay": weight_decay}]


def plain_sgd_momentum(name: str, momentum: float | None, nesterov: bool, key: str = "name") -> float:
    """The momentum to use (0.9 when not given). Plain ``sgd`` has none: a momentum or Nesterov given to it (as
    torch's ``SGD(momentum=0.9)`` takes it) is refused with the name to use, ``momentum``, rather than dropped."""
    if name == "sgd" and (momentum or nesterov):
        given = f"momentum={momentum}" if momentum else "nesterov=True"
        raise ValueError(f"{given} is not allowed with {key}='sgd', plain SGD: use {key}='momentum' for SGD with "
                         f"{'Nesterov ' if nesterov else ''}momentum (torch's SGD(momentum=...))")
    return 0.9 if momentum is None else momentum


def build_optimizer(
    params: nn.Module | Iterable,
    name: str = "adam",
    lr: float = 1e-3,
    *,
    momentum: float | None = None,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    alpha: float = 0.99,
    weight_decay: float = 0.0,
    decay: str = "coupled",
    rmsprop_momentum: float = 0.0,
) -> torch.optim.Optimizer:
    """Build an optimizer by name (:data:`OPTIMIZERS`): ``sgd``, ``momentum`` (heavy ball or Nesterov),
    ``rmsprop``, ``adam``, ``adagrad``. Where torch has a fused implementation (Adam, AdamW, SGD, Adagrad) it is
    used: the same update, computed in one kernel per step.

    Args:
        params: a module (weights decay, biases/norm parameters do not) or an iterable of tensors (all decay).
        decay: ``"coupled"`` (L2 in the gradient) or ``"decoupled"`` (w <- w - lr * lambda * w).
        momentum, nesterov: of ``momentum`` (default 0.9, heavy ball). Plain ``sgd`` has none: given to it (as
            torch's ``SGD(momentum=0.9)`` takes it), they are refused with the name to use, ``momentum``.
        rmsprop_momentum: momentum inside RMSprop (0 = plain RMSprop).

    Raises:
        ValueError: unknown name or decay mode, or a learning rate <= 0 / a negative weight decay; the message
            names the argument (``lr=-1 is not allowed ...``).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"name={name!r} is not allowed: use one of {', '.join(OPTIMIZERS)}")
    if decay not in ("coupled", "decoupled"):
        raise ValueError(f"decay={decay!r} is not allowed: use 'coupled' or 'decoupled'")
    if not lr > 0:
        raise ValueError(f"lr={lr} is not allowed: use a number > 0")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay={weight_decay} is not allowed: use a number >= 0")
    momentum = plain_sgd_momentum(name, momentum, nesterov)
    spec = OPTIMIZERS[name]
    cls, kwargs = spec.make({"momentum": momentum, "nesterov": nesterov, "betas": betas, "eps": eps, "alpha": alpha,
                             "rmsprop_momentum": rmsprop_momentum})
    groups = param_groups(params, weight_decay)
    if _fusable(cls, groups):
        kwargs["fused"] = True
    cls = eager(cls)
    if decay == "decoupled" and spec.native_decoupled is not None:
        return eager(spec.native_decoupled)(groups, lr=lr, weight_decay=weight_decay, **kwargs)
    if decay == "decoupled":
        for group in groups:
            group["decoupled_weight_decay"] = group.pop("weight_decay")
        return decoupled(cls)(groups, lr=lr, weight_decay=weight_decay, **kwargs)
    return cls(groups, lr=lr, weight_decay=weight_decay, **kwargs)


class Schedule:
    """A torch LR scheduler plus when to step it: after every ``"step"``, every ``"epoch"``, or on a metric."""

    def __init__(self, scheduler, interval: str):
        self.scheduler = scheduler
        self.interval = interval

    def state_dict(self) -> dict:
        state = self.scheduler.state_dict() if self.scheduler is not None else {}
        return {**state, "trainwell_interval": self.interval}  # "none" once a stopping criterion froze it

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        self.interval = state.pop("trainwell_interval", self.interval)
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


#: the learning-rate schedules ``optim.schedule`` may name: ``builder(optimizer, total_steps, options) -> Schedule``
#: (register more with :func:`register_schedule`)
SCHEDULES: dict[str, Callable[..., Schedule]] = {}


def register_schedule(name: str):
    """Decorator: register ``builder(optimizer, total, o) -> Schedule`` as the schedule called ``name``; ``total``
    is the number of training steps, ``o`` the options of :func:`build_schedule`."""

    def add(builder: Callable[..., Schedule]) -> Callable[..., Schedule]:
        if name in SCHEDULES:
            raise ValueError(f"schedule {name!r} is already registered")
        SCHEDULES[name] = builder
        return builder

    return add


@register_schedule("none")
def _constant(optimizer, total: int, o: dict) -> Schedule:
    return Schedule(None, "none")


@register_schedule("step")
def _step(optimizer, total: int, o: dict) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.StepLR(optimizer, step_size=o["step_size"], gamma=o["gamma"]), "epoch")


@register_schedule("cosine")
def _cosine(optimizer, total: int, o: dict) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=o["min_lr"]), "step")


@register_schedule("onecycle")
def _onecycle(optimizer, total: int, o: dict) -> Schedule:
    max_lr = [g["lr"] for g in optimizer.param_groups]
    pct = o["warmup_fraction"]
    if abs(pct * total - 1.0) < 1e-9:
        # torch's warm-up phase would end on step 0 and divide by its zero length: a one-step warm-up is no
        # warm-up, so let the anneal start at once (the schedule is otherwise unchanged)
        pct = 0.5 / total
    # Smith's policy also cycles the momentum against the rate (torch's 0.95 -> 0.85 -> 0.95) where the optimizer
    # has one (Adam's beta1, momentum > 0). One without (plain SGD, plain RMSprop, Adagrad) keeps none: torch would
    # set 0.85-0.95 on plain SGD and RMSprop, silently making them their momentum variants, and refuses Adagrad.
    cycle = any(g.get("betas") is not None or g.get("momentum", 0.0) > 0 for g in optimizer.param_groups)
    return Schedule(torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total, pct_start=pct,
                                                        cycle_momentum=cycle), "step")


@register_schedule("plateau")
def _plateau(optimizer, total: int, o: dict) -> Schedule:
    return Schedule(torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=o["factor"], patience=o["patience"],
                                                               min_lr=o["min_lr"]), "metric")


def build_schedule(optimizer, name: str, *, epochs: int, steps_per_epoch: int, step_size: int = 30,
                   gamma: float = 0.1, patience: int = 5, factor: float = 0.1, min_lr: float = 0.0,
                   warmup_fraction: float = 0.25) -> Schedule:
    """Build an LR schedule (:data:`SCHEDULES`): ``none``, ``step`` (x gamma every step_size epochs), ``cosine`` (to
    min_lr over all steps), ``onecycle`` (Smith & Topin 2019; warm-up for warmup_fraction of steps, then anneal; the
    momentum cycles against the rate where the optimizer uses one), ``plateau`` (x factor when the monitored
    validation loss has not improved for ``patience`` epochs).

    Raises:
        ValueError: an unknown ``name``.
    """
    if name not in SCHEDULES:
        raise ValueError(f"name={name!r} is not allowed: use one of {', '.join(SCHEDULES)}")
    options = {"step_size": step_size, "gamma": gamma, "patience": patience, "factor": factor, "min_lr": min_lr,
               "warmup_fraction": warmup_fraction}
    return SCHEDULES[name](optimizer, max(1, epochs * steps_per_epoch), options)


def from_config(model: nn.Module, cfg) -> torch.optim.Optimizer:
    """Build the optimizer an OptimConfig describes for ``model``.

    Raises:
        ConfigError: a value :func:`build_optimizer` refuses, named by its config key (``optim.lr = -1 ...``).
    """
    from trainwell.errors import ConfigError

    try:
        return build_optimizer(
            model, cfg.name, cfg.lr, momentum=cfg.momentum if cfg.name != "sgd" else None,
            nesterov=cfg.nesterov and cfg.name != "sgd", betas=tuple(cfg.betas),
            eps=cfg.eps, alpha=cfg.alpha, weight_decay=cfg.weight_decay, decay=cfg.decay,
            rmsprop_momentum=cfg.rmsprop_momentum,
        )
    except ValueError as exc:
        raise ConfigError(f"optim.{str(exc).replace('=', ' = ', 1)}") from None
