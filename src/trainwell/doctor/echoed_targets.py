"""Floating-point targets that are one of the model's own inputs, value for value: the answer is in what the model
reads. A forecaster trained on ``y = x`` (the target not shifted one step ahead) learns to copy the step it
reads, and a sequence-to-sequence decoder fed the current target instead of the previous one (teacher forcing
feeds ``y[t-1]`` at step t; Williams & Zipser 1989) reads each answer; both reach a training loss below the
data's noise and fail once they must predict. An autoencoder reconstructs its input by design.

Which it is, is read from the model itself where it runs on a few rows: the input's steps from t = T // 2 on are
changed and the outputs compared. An output at step t that does not move does not read the step-t value: the
model shifts the targets itself, and nothing is wrong. One that moves while the earlier outputs stay, and that
reads the earlier steps too, is a left-to-right model copying its input; one whose earlier outputs move too mixes
all steps (an autoencoder, or a decoder that reads ahead), and one that reads no earlier step maps each step on
its own (an autoencoder step by step). The token-id form of this reading (a language model's targets equal to
its inputs) is :mod:`~trainwell.doctor.sequence_targets`.

A model that takes other inputs besides the one its targets equal (a diffusion denoiser's ``(x_t, t)`` trained on
``x_t`` instead of the noise added to it) is an autoencoder only when it squeezes that input through a code
narrower than it. Which it does, is read from one row: the input is moved along up to :data:`_DIRECTIONS`
orthonormal directions (central differences) and the rank of the output's changes counted. An autoencoder's
changes span at most its code's width; a model whose output follows the input in every direction has no such
bottleneck and learns to copy it, a warning.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.inputs import Inputs, call, fields
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes

NAME = "targets vs inputs"
_ROWS = 8  # rows the model is run on to read which steps its outputs depend on
_MOVED = 1e-4  # an output moved: its largest change over its largest magnitude
_DIRECTIONS = 64  # directions an input row is moved along to count the output's rank
_STEP, _RANK_TOL = 1e-2, 1e-3  # the move, relative to the row's scale; singular values below this share are 0


def echoed_input(tensors: list[torch.Tensor], y: torch.Tensor) -> int | None:
    """The index of the first floating-point tensor among ``tensors`` equal to ``y`` (same shape, same values),
    or None; targets that are one value throughout (zeros) are no reading."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() < 1 or y.numel() < 2:
        return None
    candidates = [i for i, t in enumerate(tensors) if isinstance(t, torch.Tensor) and t.is_floating_point()
                  and t.shape == y.shape and t.device == y.device and t.dtype == y.dtype]
    if not candidates or bool((y == y.reshape(-1)[0]).all()):
        return None
    return next((i for i in candidates if torch.equal(tensors[i], y)), None)


def step_reads(run: Callable[[torch.Tensor, int], object], x: torch.Tensor) -> tuple[bool, bool, bool] | None:
    """(the output at step t moved, an output before step t moved) when ``x``'s steps from t = T // 2 on (axis 1)
    change, and (an output from step t on moved) when its steps before t change; ``run(x_rows, n)`` is the model's
    output with the first ``n`` rows of ``x`` replaced by ``x_rows``. None when the model raises or its output has
    no step axis of ``x``'s length."""
    if x.dim() < 2 or x.shape[1] < 4:
        return None
    n, t = min(len(x), _ROWS), x.shape[1] // 2
    base = x[:n].detach()
    noise = torch.randn(base.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = (noise * (float(base.double().std()) or 1.0)).to(base.device, base.dtype)
    later, earlier = base.clone(), base.clone()
    later[:, t:] += noise[:, t:]
    earlier[:, :t] += noise[:, :t]
    try:
        outs = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for rows in (base, later, earlier):
                torch.manual_seed(0)
                outs.append(O.logits(run(rows, n)))
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets the reading without it
        return None
    before = outs[0]
    if any(o is None or not o.is_floating_point() or o.shape != before.shape for o in outs) or before.dim() < 2 or \
            before.shape[1] != x.shape[1]:
        return None

    def moved(after: torch.Tensor, start: int, length: int) -> bool:
        return O.relative_change(before.narrow(1, start, length), after.narrow(1, start, length)) > _MOVED

    return moved(outs[1], t, 1), moved(outs[1], 0, t), moved(outs[2], t, x.shape[1] - t)


def follows_every_direction(run_row: Callable[[torch.Tensor], object], row: torch.Tensor) -> bool | None:
    """Whether the output follows the input row ``row`` (one example, ``(1, ...)``) in every direction: the rank of
    its changes along ``min(row size, _DIRECTIONS)`` orthonormal directions is full (no code narrower than the
    input). ``run_row(rows)`` is the model's output with ``rows`` in place of that input (the other inputs of the
    same example repeated). None when the model raises or its output does not change."""
    flat = row.detach().reshape(-1)
    d = flat.numel()
    r = min(d, _DIRECTIONS)
    if d < 2 or not row.is_floating_point():
        return None
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(d, r, generator=g, dtype=torch.float64))
    h = _STEP * (float(flat.double().abs().mean()) or 1.0)
    moves = (h * basis.T).to(row.device, row.dtype)
    rows = torch.cat([flat + moves, flat - moves]).reshape(2 * r, *row.shape[1:])
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            out = O.logits(run_row(rows))
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets the reading without it
        return None
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or len(out) != 2 * r:
        return None
    changes = (out[:r] - out[r:]).double().reshape(r, -1)
    if not bool(torch.isfinite(changes).all()):
        return None
    sv = torch.linalg.svdvals(changes)
    if not float(sv[0]) > 0:
        return None
    return int((sv > _RANK_TOL * sv[0]).sum()) >= min(r, changes.shape[1])


def echo_verdict(name: str, index: int, inputs: int, reads: tuple[bool, bool, bool] | None, seen: str = "",
                 copies: bool | None = None) -> Verdict | None:
    """The verdict on targets equal to input ``index`` of ``inputs`` (``reads``: :func:`step_reads` on it, None
    if unknown; ``seen``: where it was seen, the value's opening words; ``copies``:
    :func:`follows_every_direction` on it): a warning for a decoder's input, for the first of several inputs that
    the output follows in every direction (a denoiser's noisy input), or for the input of a left-to-right model
    (its output at a step reads that step and the earlier ones, not the later); an info for the only (or first)
    input of another model (an autoencoder over all the steps, or step by step); None when the output at a step
    does not read that step's value (the model shifts it itself)."""
    own, ahead, past = reads if reads is not None else (None, None, None)
    if own is False:
        return None
    if index > 0:
        return Verdict(name, "warn", f"{seen}the targets equal the model's input {index + 1} of {inputs}, value for "
                       "value", "a decoder input shifted right by one step",
                       "the targets are the decoder's input: shift it right by one (teacher forcing feeds y[t-1], "
                       "not y[t]: dec_in = torch.cat([start, y[:, :-1]], 1)); the model reads each answer and "
                       "fails once it must predict")
    which = "input" if inputs == 1 else f"first input (of {inputs})"
    if inputs > 1 and copies:
        return Verdict(name, "warn", f"{seen}the targets equal the model's {which}, value for value, and its output "
                       "follows that input in every direction (no code narrower than it): it learns to copy it",
                       "targets the inputs do not hold", "the model is given its answer: a diffusion denoiser fed "
                       "(x_t, t) regresses the noise added to x_t (or x0), not x_t itself; if this is a conditional "
                       "autoencoder, it needs a bottleneck narrower than its input")
    if own and not ahead and past:
        return Verdict(name, "warn", f"{seen}the targets equal the model's {which}, value for value, and its output "
                       "at step t reads the input only up to step t", "targets one step ahead of the input",
                       "a left-to-right model learns to copy the step it reads: for forecasting the targets are the "
                       "input shifted by one step (x = s[:, :-1], y = s[:, 1:])")
    return Verdict(name, "info", f"{seen}the targets equal the model's {which}, value for value: it reads as an "
                   "autoencoder", "-", "if this is forecasting, the targets must be the input shifted by one "
                   "step (x = s[:, :-1], y = s[:, 1:]): the model otherwise learns to copy its input")


def echoed_targets(model: nn.Module, x: torch.Tensor | Inputs, y: torch.Tensor) -> Verdict | None:
    """Pre-flight: the verdict on floating-point targets equal to one of the inputs of ``x`` (None: none is)."""
    named = fields(x)
    index = echoed_input([t for _, t in named], y)
    if index is None:
        return None
    field = named[index][1]

    def run(rows: torch.Tensor, n: int):
        batch = x[:n]
        if isinstance(batch, Inputs):
            kept = dict(batch.items())[named[index][0]]
            batch = batch.map(lambda v: rows if v is kept else v)
        else:
            batch = rows
        with kept_modes(model):
            model.eval()
            return call(model, batch)

    def run_row(rows: torch.Tensor):
        batch = x[:1]
        if isinstance(batch, Inputs):
            kept = dict(batch.items())[named[index][0]]
            batch = batch.map(lambda v: rows if v is kept else v.expand(len(rows), *v.shape[1:]))
        else:
            batch = rows
        with kept_modes(model):
            model.eval()
            return call(model, batch)

    copies = follows_every_direction(run_row, field[:1]) if len(named) > 1 and index == 0 else None
    return echo_verdict(NAME, index, len(named), step_reads(run, field), copies=copies)


def forward_runner(model: nn.Module, args: tuple, kwargs: dict, index: int, tensors: list[torch.Tensor],
                   one_row: bool = False) -> Callable[[torch.Tensor, int], object] | None:
    """``run(rows, n)`` for :func:`step_reads` on a recorded forward: the model (in eval mode) on the first ``n``
    rows of its batch-sized tensor arguments, the ``index``-th tensor (of ``tensors``, the forward's tensors in
    order) replaced by ``rows``; with ``one_row``, the other arguments' first row repeated ``len(rows)`` times
    instead (for :func:`follows_every_direction`). None when that tensor sits inside a container argument."""
    target, rows_total = tensors[index], len(tensors[index])
    direct = [v for v in list(args) + list(kwargs.values()) if v is target]
    if not direct:
        return None

    def part(v, rows: torch.Tensor, n: int):
        if v is target:
            return rows
        if not (isinstance(v, torch.Tensor) and v.dim() and len(v) == rows_total):
            return v
        return v[:1].expand(len(rows), *v.shape[1:]) if one_row else v[:n]

    def run(rows: torch.Tensor, n: int):
        with kept_modes(model):
            model.eval()
            return model(*(part(v, rows, n) for v in args), **{k: part(v, rows, n) for k, v in kwargs.items()})

    return run


def quietly(probe, read: Callable[[], object]):
    """``read()`` with the probe's hooks silenced, the model's buffers (BatchNorm's running statistics) put back
    after it: a reading at the report leaves the watched model as it was."""
    buffers = [(b, b.detach().clone()) for b in probe.model.buffers()]
    probe.reading = True
    try:
        return read()
    finally:
        probe.reading = False
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)


def loop_echo(probe, echoes: list[int | None], sample: tuple | None) -> Verdict | None:
    """``doctor.watch``: the verdict when the floating-point targets given to ``w.step(loss, y=y)`` equalled one
    input of the step's training forward on half or more of the observed steps read (``echoes``: the index per
    step, or None); ``sample``: (args, kwargs, index, tensors) of the first such forward, on which the model is
    run at the report (the probe's hooks silenced; modes, buffers and the random state put back)."""
    if not echoes or sample is None:
        return None
    args, kwargs, index, tensors = sample
    hits = sum(e == index for e in echoes)
    if 2 * hits < len(echoes):
        return None
    run = forward_runner(probe.model, args, kwargs, index, tensors)
    row = forward_runner(probe.model, args, kwargs, index, tensors, one_row=True)
    reads = copies = None
    if run is not None:
        reads = quietly(probe, lambda: step_reads(run, tensors[index]))
        if len(tensors) > 1 and index == 0:
            copies = quietly(probe, lambda: follows_every_direction(lambda rows: row(rows, len(rows)),
                                                                    tensors[index][:1]))
    return echo_verdict("loop: targets vs inputs", index, len(tensors), reads,
                        f"on {hits} of {len(echoes)} observed steps, ", copies)
