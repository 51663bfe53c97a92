"""Mixup (Zhang et al. 2018) or CutMix whose labels are mixed with another permutation than the inputs:
``x = lam * x + (1 - lam) * x[perm1]`` beside ``y = lam * y_onehot + (1 - lam) * y_onehot[perm2]`` (or
``lam * ce(out, y) + (1 - lam) * ce(out, y[torch.randperm(B)])``). Each mixed input's second label then belongs to
another example: the targets carry noise the inputs cannot explain, and the loss stays high at any rate.

On the first steps a :class:`~torch.overrides.TorchFunctionMode` keeps every permutation of a batch's rows the loop
applies (``t[perm]``, ``t[perm, ...]``, ``t.index_select(0, perm)``, ``t.flip(0)``; ``perm`` a permutation of
0..B-1 other than the identity) with the tensor it was applied to, and the targets the loop hands a loss function;
a forward pre-hook keeps the model's training input. The input is mixup's when each row is ``a x_i + b x_perm(i)``
of a kept tensor ``x`` (a, b above 0.01), CutMix's when each element is ``x``'s or ``x[perm]``'s; a target (the
``y`` given to ``w.step``, or one handed to the loss) is paired by a permutation when it is ``t[perm]`` or each row
``a t_i + b t_perm(i)`` of a kept tensor ``t`` (or of the one-hot rows of kept integer labels). A step whose targets
were paired by permutations, none of them the input's, mixed its labels apart from its inputs. Rows are compared
on :data:`ROW_ELEMENTS` of their elements at most, spread over them (copied to the CPU on the steps read only).

Example:
    >>> import torch
    >>> x = torch.randn(16, 3)
    >>> mixed_rows(0.7 * x + 0.3 * x.flip(0), x, x.flip(0)), mixed_rows(x.flip(0), x, x.flip(0))
    (True, False)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.nn.parameter import UninitializedTensorMixin
from torch.overrides import TorchFunctionMode

from trainwell.doctor.first_steps import FirstStepsReader
from trainwell.doctor.func_transforms import transformed
from trainwell.doctor.loop_forward_hooks import first_tensor
from trainwell.doctor.verdict import Verdict

NAME = "loop: mixed labels"
#: the fewest rows a permuted batch has
LEAST_ROWS = 8
#: each part's weight in a mixed row is at least this (a mix that keeps 99% of one example is not read)
LEAST_WEIGHT = 0.01
#: the relative residual of a row read as a mix of two rows (float32 or wider; a lower precision allows 8 of its eps)
TOLERANCE = 1e-4
#: steps read as mixup before judging
LEAST_READS = 2
#: steps a loop is read on, and the most permutations kept per step
TRIES, KEPT = 6, 16
#: the most elements of each row compared, spread evenly over the row (an image's pixels, subsampled)
ROW_ELEMENTS = 4096
#: the most values copied from one permuted tensor: a batch's, not a whole data set shuffled at an epoch's start
COPIED = 2**22

_LOSSES = {F.cross_entropy, F.nll_loss, F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.kl_div,
           F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.multilabel_soft_margin_loss,
           F.soft_margin_loss, F.multi_margin_loss}
_ROW_INDEXING = {torch.Tensor.__getitem__, torch.index_select, torch.Tensor.index_select, torch.flip, torch.Tensor.flip}


def _permutation(index, rows: int) -> torch.Tensor | None:
    """``index`` on the CPU when it is a permutation of 0..rows-1 other than the identity; else None."""
    if not isinstance(index, torch.Tensor) or index.dim() != 1 or index.dtype not in (torch.int64, torch.int32) or \
            len(index) != rows or rows < LEAST_ROWS:
        return None
    perm = index.detach().cpu().long()
    order = torch.arange(rows)
    if torch.equal(perm, order) or not torch.equal(perm.sort().values, order):
        return None
    return perm


def _row_index(func, args, kwargs) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(the tensor, the permutation) when ``func`` permutes a tensor's rows (dim 0), alone or before other
    indices; else None."""
    src = args[0] if args else None
    if func not in _ROW_INDEXING or not isinstance(src, torch.Tensor) or \
            isinstance(src, UninitializedTensorMixin) or src.dim() == 0:  # a lazy module's parameter has no shape
        return None
    rows = src.shape[0]
    if rows * min(math.prod(src.shape[1:]), ROW_ELEMENTS) > COPIED:
        return None
    if func is torch.Tensor.__getitem__ and len(args) > 1:
        index = args[1]
        index = index[0] if isinstance(index, tuple) and index else index
        perm = _permutation(index, rows)
    elif func in (torch.index_select, torch.Tensor.index_select):
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        perm = _permutation(args[2] if len(args) > 2 else kwargs.get("index"), rows) if dim == 0 else None
    elif func in (torch.flip, torch.Tensor.flip):
        dims = args[1] if len(args) > 1 else kwargs.get("dims")
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        perm = torch.arange(rows - 1, -1, -1) if dims == (0,) and rows >= LEAST_ROWS else None
    else:
        return None
    return (src, perm) if perm is not None else None


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A copy on the CPU of ``t``'s rows, flattened, of at most :data:`ROW_ELEMENTS` elements each (every k-th)."""
    flat = t.detach().reshape(len(t), -1)
    step = max(1, -(-flat.shape[1] // ROW_ELEMENTS))
    return flat[:, ::step].to("cpu", copy=True)


class _Permutations(TorchFunctionMode):
    """Keeps (the tensor's shape, a copy of its rows, the permutation) for each permutation of a batch's rows,
    and the targets handed to a loss function, while active."""

    def __init__(self):
        super().__init__()
        self.permuted: list[tuple[tuple, torch.Tensor, torch.Tensor]] = []
        self.targets: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if transformed():  # a torch.func transform's per-example pass: not read
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        if len(self.permuted) < KEPT:
            found = _row_index(func, args, kwargs)
            if found is not None:  # copied before any in-place mix
                self.permuted.append((tuple(found[0].shape), _rows(found[0]), found[1]))
        if func in _LOSSES and len(self.targets) < KEPT:
            target = args[1] if len(args) > 1 else kwargs.get("target")
            if isinstance(target, torch.Tensor):
                self.targets.append(target.detach())
        return func(*args, **kwargs)


def mixed_rows(mixed: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether each row of ``mixed`` is ``u a_i + v b_i`` (u and v above :data:`LEAST_WEIGHT`, to a relative
    residual of :data:`TOLERANCE`) on :data:`LEAST_ROWS` rows or more where ``a_i`` and ``b_i`` differ in direction
    (the others say nothing)."""
    if mixed.shape != a.shape or not mixed.is_floating_point() or not a.is_floating_point() or len(a) < LEAST_ROWS:
        return False
    tolerance = max(TOLERANCE, 8 * torch.finfo(mixed.dtype).eps, 8 * torch.finfo(a.dtype).eps)
    m, s, r = (t.detach().reshape(len(t), -1).double().cpu() for t in (mixed, a, b))
    ss, rr, sr = (s * s).sum(1), (r * r).sum(1), (s * r).sum(1)
    ms, mr = (m * s).sum(1), (m * r).sum(1)
    det = ss * rr - sr * sr
    live = det > 1e-9 * ss * rr
    if int(live.sum()) < LEAST_ROWS:
        return False
    m, s, r, ss, rr, sr, ms, mr, det = (t[live] for t in (m, s, r, ss, rr, sr, ms, mr, det))
    u, v = (ms * rr - mr * sr) / det, (mr * ss - ms * sr) / det
    residual = (m - u[:, None] * s - v[:, None] * r).norm(dim=1) / m.norm(dim=1).clamp_min(1e-300)
    return bool((residual < tolerance).all() and (u > LEAST_WEIGHT).all() and (v > LEAST_WEIGHT).all())


def _cut_and_pasted(mixed: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether every element of the (B, k) ``mixed`` is ``a``'s or ``b``'s, each alone on 1% of them or more
    (CutMix)."""
    if mixed.shape != a.shape or mixed.dim() != 2 or mixed.shape[1] < 2 or len(a) < LEAST_ROWS:
        return False
    m, a, b = mixed.detach().cpu(), a.cpu(), b.cpu()
    from_a, from_b = m == a, m == b
    return bool((from_a | from_b).all()) and float((from_a & ~from_b).float().mean()) >= 0.01 and \
        float((from_b & ~from_a).float().mean()) >= 0.01


def _pairing(target: torch.Tensor, permuted: list[tuple[tuple, torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """The permutations that pair ``target``'s rows: it is ``t[perm]`` (not ``t`` itself), or each row a mix of
    ``t_i`` and ``t_perm(i)``, for a kept tensor ``t``; or, for (B, C) targets and kept integer labels ``t``, each
    row a mix of ``one_hot(t)_i`` and ``one_hot(t[perm])_i`` (timm's mixed targets; smoothed ones too, each row's
    smallest value, the smoothing's share, taken off first when C >= 3)."""
    if target.dim() == 0:
        return []
    rows, found = _rows(target), []
    for shape, t, perm in permuted:
        if shape == tuple(target.shape):
            shuffled = t[perm]
            if (torch.equal(rows, shuffled) and not torch.equal(rows, t)) or mixed_rows(rows, t, shuffled):
                found.append(perm)
        elif len(shape) == 1 and target.dim() == 2 and target.shape[1] <= ROW_ELEMENTS and \
                _one_hot_mix(rows, t[:, 0], perm):
            found.append(perm)
    return found


def _one_hot_mix(target: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor) -> bool:
    """Whether the (B, C) ``target``'s rows mix the one-hot rows of the integer ``labels`` with those of
    ``labels[perm]`` (after taking off each row's smallest value when C >= 3: label smoothing's share)."""
    if labels.is_floating_point() or labels.dim() != 1 or not target.is_floating_point() or target.dim() != 2 or \
            len(labels) != len(target) or target.shape[1] < 2:
        return False
    classes = target.shape[1]
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        return False
    onehot = F.one_hot(labels.long(), classes).to(target.dtype)
    rows = target - target.min(1, keepdim=True).values if classes >= 3 else target
    return mixed_rows(rows, onehot, onehot[perm])


class MixupPairs(FirstStepsReader):
    """Reads a watched loop's first steps (:data:`TRIES` at most) for mixup or CutMix: call :meth:`read` with
    each step's ``y`` after :meth:`finish`; :meth:`verdict` judges the steps read."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.reads: list[tuple[bool, float]] = []  # per mixup step: (labels paired by its permutation, share off)
        self._kept: _Permutations | None = None
        self._input: tuple[tuple, torch.Tensor] | None = None  # the training input's shape and rows
        self._hook = None

    def _new_mode(self) -> _Permutations:
        return _Permutations()

    def _done(self) -> bool:
        return len(self.reads) >= 2 * LEAST_READS

    def _keep(self, mode: _Permutations) -> None:
        self._kept = mode

    def start(self) -> None:
        """Read the torch calls and the model's training input until :meth:`finish`, on :data:`TRIES` steps at
        most."""
        if self._mode is not None or self._done() or self.tries >= TRIES:
            return
        self._mode = self._new_mode()
        self._mode.__enter__()
        self._input = None
        if self._hook is None:
            self._hook = self.model.register_forward_pre_hook(self._forward, with_kwargs=True)

    def finish(self) -> None:
        super().finish()
        if self._mode is None and self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _forward(self, module, args, kwargs):
        if self._input is None and module.training and torch.is_grad_enabled():
            x = first_tensor(args, kwargs)
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dim() >= 1:
                self._input = (tuple(x.shape), _rows(x))

    def read(self, y) -> None:
        """The step just finished, with the targets ``y`` given to ``w.step`` (None if none)."""
        kept, given, self._kept, self._input = self._kept, self._input, None, None
        if kept is None or given is None or not kept.permuted:
            return
        shape, x = given
        mixing = next((perm for kept_shape, t, perm in kept.permuted if kept_shape == shape and
                       t.is_floating_point() and (mixed_rows(x, t, t[perm]) or _cut_and_pasted(x, t, t[perm]))),
                      None)
        if mixing is None:
            return
        targets = ([y] if isinstance(y, torch.Tensor) else []) + kept.targets
        pairs = [perm for target in targets for perm in _pairing(target, kept.permuted)]
        if not pairs:
            return
        paired = any(torch.equal(perm, mixing) for perm in pairs)
        self.reads.append((paired, float((pairs[0] != mixing).float().mean())))

    def verdict(self) -> Verdict | None:
        """A fail when on :data:`LEAST_READS` or more steps read as mixup no target was paired by the inputs'
        permutation, a pass when one was; None when fewer steps were read."""
        if len(self.reads) < LEAST_READS:
            return None
        paired = sum(p for p, _ in self.reads)
        if paired:
            return Verdict(NAME, "pass", f"mixup or CutMix read on {len(self.reads)} steps: the labels were mixed "
                           f"with the inputs' permutation on {paired} of them", "-")
        off = min(share for _, share in self.reads)
        return Verdict(NAME, "fail", f"on {len(self.reads)} of {len(self.reads)} steps read, the inputs were mixed "
                       f"(mixup or CutMix) with one permutation of the batch and the labels with another: at least "
                       f"{off:.0%} of the mixed inputs got another example's second label",
                       "the labels mixed with the inputs' permutation",
                       "draw one permutation and use it for both: index = torch.randperm(B); x = lam * x + (1 - lam) "
                       "* x[index]; y_a, y_b = y, y[index] (or mix the one-hot labels with the same index)")
