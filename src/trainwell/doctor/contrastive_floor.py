"""A contrastive loss's floor in a watched loop: cross-entropy over the cosine similarities of unit-norm embeddings
divided by a temperature T (InfoNCE, SimCLR's NT-Xent; Chen et al. 2020). Its logits lie within ±1/T, so at a high
temperature the loss levels off far above 0 however well the embeddings are learned (at T = 1 over 255 candidates
no unit vectors take it below about 4.5): a flat curve there is the temperature's doing, not the data's.

On a few observed steps a :class:`~torch.overrides.TorchFunctionMode` sees, inside the user's own loss, every
matrix product of operands with unit-norm rows (and ``F.cosine_similarity``) and the logits given to
``F.cross_entropy``; where the logits are one of those products times a constant (masked entries aside), that
constant is 1/T. The floor is then fitted directly: free unit vectors for the rows and the candidates (a
relaxation, so a lower bound on what any embedding reaches), at 1/T and at 10/T."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed
from trainwell.optim_eager import eager

_LOG_SOFTMAX = {F.log_softmax, torch.log_softmax, torch.Tensor.log_softmax, torch.logsumexp, torch.Tensor.logsumexp}
_PRODUCTS = {torch.matmul, torch.mm, torch.bmm, torch.Tensor.matmul, torch.Tensor.mm, torch.Tensor.__matmul__,
             torch.Tensor.bmm}
#: the most elements of a similarity matrix that is copied and fitted
_MOST = 1 << 22


def _unit(t: torch.Tensor, dim: int) -> bool:
    return t.is_floating_point() and t.dim() >= 2 and t.shape[dim] >= 2 and \
        bool(((t.detach().float().norm(dim=dim) - 1).abs() < 1e-3).all())


class _SimilarityCalls(TorchFunctionMode):
    """Records cosine-similarity matrices (products of unit-norm operands, ``F.cosine_similarity``) and the first
    2-D logits given to ``F.cross_entropy`` with class-index targets."""

    def __init__(self):
        super().__init__()
        self.products: list[tuple[torch.Tensor, int]] = []  # (similarities, the embeddings' width)
        self.logits: tuple[torch.Tensor, torch.Tensor] | None = None
        self.normalized: list[torch.Tensor] = []  # square logits given to a log-softmax (a logsumexp) over rows

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        out = func(*args, **(kwargs or {}))
        if func in _PRODUCTS and len(args) == 2 and all(isinstance(a, torch.Tensor) for a in args):
            a, b = args
            if a.dim() == 2 and b.dim() == 2 and out.numel() <= _MOST and _unit(a, -1) and _unit(b, 0):
                self.products.append((out.detach().float().clone(), a.shape[-1]))
        elif func is F.cosine_similarity and isinstance(out, torch.Tensor) and out.dim() == 2 and \
                out.numel() <= _MOST and isinstance(args[0], torch.Tensor):
            self.products.append((out.detach().float().clone(), args[0].shape[-1]))
        elif func in _LOG_SOFTMAX and args and isinstance(args[0], torch.Tensor) and len(self.normalized) < 4:
            given, dim = args[0], args[1] if len(args) > 1 else (kwargs or {}).get("dim")
            if given.dim() == 2 and given.shape[0] == given.shape[1] >= 2 and given.is_floating_point() and \
                    dim in (1, -1, (1,), (-1,), [1], [-1]) and given.numel() <= _MOST:
                self.normalized.append(given.detach().float().clone())
        elif func is F.cross_entropy and self.logits is None:
            given = args[0] if args else (kwargs or {}).get("input")
            target = args[1] if len(args) > 1 else (kwargs or {}).get("target")
            if isinstance(given, torch.Tensor) and isinstance(target, torch.Tensor) and given.dim() == 2 and \
                    target.dim() == 1 and not target.is_floating_point() and given.numel() <= _MOST:
                self.logits = (given.detach().float().clone(), target.detach().clone())
        return out


def _scale(logits: torch.Tensor, products: list[tuple[torch.Tensor, int]]) -> tuple[float, torch.Tensor, int] | None:
    """(1/T, the entries that are candidates, the embeddings' width) where the logits are one recorded similarity
    matrix times a constant on every entry not masked out (-inf, or a large negative fill); None otherwise."""
    valid = torch.isfinite(logits) & (logits.abs() < 1e4)
    for m, width in products:
        if m.shape != logits.shape or int(valid.sum()) < 2 * len(m):
            continue
        s, l = m[valid], logits[valid]
        denominator = float((s * s).sum())
        if denominator <= 0:
            continue
        a = float((s * l).sum()) / denominator
        if a > 0 and float((l - a * s).abs().max()) <= 1e-3 * max(a, 1e-6):
            return a, valid, width
    return None


class ContrastiveReader(FirstStepsReader):
    """Reads the temperature of a contrastive loss on a few observed steps of a watched loop."""

    def __init__(self):
        super().__init__()
        self.reading: dict | None = None
        #: 1/T of a log-softmax over the rows of a square similarity matrix (a supervised contrastive loss's)
        self.square_scale: float | None = None

    def _new_mode(self) -> _SimilarityCalls:
        return _SimilarityCalls()

    def _done(self) -> bool:
        return self.reading is not None or self.square_scale is not None

    def _keep(self, mode: _SimilarityCalls) -> None:
        """Read the step's logits."""
        for given in mode.normalized:
            found = _scale(given, mode.products)
            if found is not None:
                self.square_scale = found[0]
                return
        if mode.logits is None:
            return
        logits, target = mode.logits
        found = _scale(logits, mode.products)
        if found is None:
            return
        a, valid, width = found
        in_range = (target >= 0) & (target < logits.shape[1])
        if not bool(in_range.all()) or not bool(valid[torch.arange(len(target)), target].all()):
            return
        self.reading = {"scale": a, "valid": valid, "target": target, "width": width}

    def floors(self) -> tuple[float, float, float] | None:
        """(chance level ln K, the floor at 1/T, the floor at 10/T) for the logits read; None without a reading."""
        r = self.reading
        if r is None:
            return None
        chance = float(r["valid"].sum(1).float().log().mean())
        return chance, _fitted_floor(r, r["scale"]), _fitted_floor(r, 10 * r["scale"])


def _fitted_floor(reading: dict, scale: float) -> float:
    """The lowest mean cross-entropy free unit vectors reach, rows and candidates each their own (a lower bound on
    any embedding's loss), with logits ``scale`` x their cosines, fitted by L-BFGS."""
    valid, target, dim = reading["valid"], reading["target"], reading["width"]
    n, k = valid.shape
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(0)
        u = torch.randn(n, dim, requires_grad=True)
        v = torch.randn(k, dim, requires_grad=True)
        opt = eager(torch.optim.LBFGS)([u, v], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def loss():
            logits = scale * F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
            return F.cross_entropy(logits.masked_fill(~valid, float("-inf")), target)

        def closure():
            opt.zero_grad()
            value = loss()
            value.backward()
            return value

        opt.step(closure)
        with torch.no_grad():
            floor = float(loss())
    return floor if math.isfinite(floor) else math.nan


def flat_at_floor(verdict, reader: ContrastiveReader, losses: list[float]):
    """The flat loss curve's verdict told the temperature's cause: the loss is a contrastive one whose floor at its
    temperature is over 0.1, at a 10x lower temperature under half that, and the curve ended over half the way
    from chance (ln K) down to it; None otherwise (the curve's other readings apply)."""
    floors = reader.floors()
    tail = [v for v in losses[-max(1, len(losses) // 10):] if math.isfinite(v)]
    if floors is None or not tail:
        return None
    chance, floor, lower = floors
    end = sum(tail) / len(tail)
    if not (floor > 0.1 and lower < 0.5 * floor and end - floor <= 0.5 * (chance - floor)):
        return None
    a = reader.reading["scale"]
    candidates = round(math.exp(chance))
    advice = (f"the loss is a cross-entropy over cosine similarities of unit-norm embeddings divided by a temperature "
              f"of {1 / a:.3g}: its logits stay within ±{a:.3g}, so over {candidates} candidates no embedding takes it "
              f"below {floor:.3g} (at a temperature of {0.1 / a:.2g}: {lower:.2g}), and the curve ends at {end:.3g}, "
              "near that floor: lower the temperature (0.1-0.5 is usual)")
    return type(verdict)(verdict.check, verdict.status, f"{verdict.value}; temperature {1 / a:.3g}: floor {floor:.3g}",
                         verdict.expected, advice)
