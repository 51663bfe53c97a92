"""A watched loop that feeds batch-first (B, T, ...) batches to a recurrent or attention module built without
``batch_first=True``, which reads them as (T, B, ...).

``nn.TransformerEncoderLayer``, ``nn.MultiheadAttention`` and ``nn.RNN``/``nn.LSTM``/``nn.GRU`` take their inputs
sequence-first by default. Given a DataLoader's (B, T, F) batch, such a module attends (or recurs) across the
examples of the batch at each position, and never across an example's own positions: every example's output then
depends on the rest of its batch, and a classifier still trains, on the wrong relations. ``doctor.check`` reads it
as batch independence (:mod:`~trainwell.doctor.batch_independence`: in eval mode, d out_i / d x_j = 0 for
j != i); at a watched loop's report the same reading runs on the first observed training forward, its examples
located as ``doctor.check`` locates them (:func:`~trainwell.doctor.batch_layout.fitting_views`: from the targets
given to ``w.step(loss, y=...)``). A model that transposes its input to (T, B, ...) itself, or one built
``batch_first=True``, keeps each example's output its own and passes. Where (B, T, ...) and (T, B, ...) fit the
targets alike (as many examples as positions, or targets per position laid out like the input) the loop is named
only when the examples mix along both readings: a tagger fed (B, T, F) with (B, T) targets reads as a correct
sequence-first tagger fed (T, B, F) with (T, B) targets, and is not named (``doctor.check`` reads the first
dimension as the examples there). ``doctor.check``'s batch independence weighs both readings in the same way where
one target per example fits both (:func:`check_independence`).
"""

from __future__ import annotations

import torch
from torch import nn

from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.batch_layout import SEQUENCE_FIRST, BatchView, fitting_views, installed, sequence_first_layers
from trainwell.doctor.forward import hooked_forward
from trainwell.doctor.verdict import Verdict
from trainwell.nn.modes import kept_modes
from trainwell.train.uncompiled import uncompiled

NAME = "loop: batch independence"


def loop_sequence_first(probe, forward: tuple | None, y) -> Verdict | None:
    """A fail when the model has a sequence-first layer and, on the first observed training forward (``forward``:
    its (args, kwargs), the model called on one tensor) with its targets ``y``, every reading of where its examples
    lie shows one example's output depending on the others; None otherwise (also without ``y=``, or for a model
    called on several tensors: where the examples lie is not known)."""
    layers = sequence_first_layers(probe.model)
    verdict = mixed_in_every_reading(probe, forward, y) if layers else None
    if verdict is None:
        return None
    name, kind = layers[0]
    more = f" (+{len(layers) - 1} more)" if len(layers) > 1 else ""
    return Verdict(NAME, "fail", f"{kind} '{name}'{more} is built with batch_first=False and each example's output "
                   f"depends on the other examples of its batch ({verdict.value}): it reads the (B, T, ...) batch "
                   "as (T, B, ...), mixing the examples at each position", "each example's output from its own input",
                   "build it with batch_first=True (nn.TransformerEncoderLayer(..., batch_first=True), "
                   "nn.LSTM(..., batch_first=True)), or give it x.transpose(0, 1) and transpose its output back")


def mixed_in_every_reading(probe, forward: tuple | None, y) -> Verdict | None:
    """The batch-independence fail of the watched model (``probe.model``) on its first observed training forward
    (``forward``: its (args, kwargs)) with its targets ``y``, read along every view of where its examples may lie
    (:func:`independence_in_some_reading`, the modes kept, the probe's hooks recording nothing); None when it is
    no fail, when the model was called on several tensors or without ``y=`` (where the examples lie is not
    known), or when the model cannot run the reading."""
    if forward is None:
        return None
    args, kwargs = forward
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor) or not isinstance(y, torch.Tensor):
        return None
    views = fitting_views(probe.model, args[0].detach(), y.detach())
    if not views:
        return None
    probe.reading = True  # the probe's hooks record nothing of these forwards
    try:
        with kept_modes(probe.model):
            verdict, _ = independence_in_some_reading(probe.model, views)
    except Exception:  # noqa: BLE001 - a model this reading cannot run gets no verdict from it
        return None
    finally:
        probe.reading = False
    return verdict if verdict.status == "fail" else None


def independence_in_some_reading(model: nn.Module, views: list[BatchView]) -> tuple[Verdict, BatchView]:
    """Batch independence read along each of ``views`` (:func:`~trainwell.doctor.batch_layout.fitting_views`:
    where the examples may lie; not empty), in order: the first reading that is not a fail, and its view; else the first
    fail. A model is failed only when one example's output depends on the others along every reading that fits its
    targets and that it runs on (a learned positional embedding of the sequence's full length does not add to
    fewer positions); the first reading's error is raised when it runs on none. A compiled model (or part) runs
    uncompiled here: the reading's batches and eval mode would otherwise compile it again for the user's loop."""
    first, error = None, None
    with uncompiled(model):
        for view in views:
            try:
                with installed(model, view):
                    verdict = batch_independence(model, view.x)
            except Exception as e:  # noqa: BLE001 - a reading the model cannot run says nothing of its examples
                error = error or e
                continue
            if verdict.status != "fail":
                return verdict, view
            first = first or (verdict, view)
    if first is None:
        raise error
    return first


def example_readings(model: nn.Module, x, y) -> list[BatchView]:
    """The readings of ``x``'s examples that ``doctor.check``'s batch independence weighs when one target per
    example fits both (B, T, ...) and (T, B, ...) (a sequence-first model, as many examples as positions): ``x``
    as given and along dimension 1. Empty otherwise, also for targets per position: a tagger fed (B, T, F) with
    (B, T) targets runs as a correct sequence-first tagger fed (T, B, F) with (T, B) targets does, and is read
    as given."""
    views = [v for v in fitting_views(model, x, y) if not v.per_position]
    return views if len(views) > 1 else []


def check_independence(model: nn.Module, views: list[BatchView]) -> Verdict:
    """``doctor.check``'s batch independence over :func:`example_readings`: a pass where some reading keeps each
    example's output its own (the reading named), a fail where the examples mix along all of them."""
    verdict, view = independence_in_some_reading(model, views)
    if verdict.status == "fail":
        return Verdict(verdict.check, "fail", f"{verdict.value}, reading x as (B, T, ...) or as (T, B, ...)",
                       verdict.expected, verdict.advice)
    if view.transposed:
        return Verdict(verdict.check, verdict.status, f"{verdict.value}, reading x as (T, B, ...): the examples "
                       "along dimension 1", verdict.expected, verdict.advice)
    return verdict


def _layer_named(model: nn.Module, x) -> str | None:
    """The first sequence-first layer of ``model`` with how many more there are (``LSTM 'rnn'``), when ``x`` is
    one tensor of sequences: (B, T, ...) features, or (B, T) token ids that reach such a layer as (B, T, ...)
    (through an ``nn.Embedding``: :func:`_fed_batch_first`); None otherwise."""
    layers = sequence_first_layers(model)
    if not layers or not isinstance(x, torch.Tensor) or x.dim() < 2:
        return None
    if x.dim() == 2:
        if x.is_floating_point() or x.is_complex():
            return None
        fed = _fed_batch_first(model, x)
        layers = [(name, kind) for name, kind in layers if any(f == name or f.startswith(f"{name}.") for f in fed)]
        if not layers:
            return None
    name, kind = layers[0]
    return f"{kind} '{name}'" + (f" (+{len(layers) - 1} more)" if len(layers) > 1 else "")


def _fed_batch_first(model: nn.Module, ids: torch.Tensor) -> list[str]:
    """The names of the recurrent and attention modules whose input, on one eval-mode forward of (up to 8 of) the
    (B, T) token ids ``ids``, is laid out (B, T, ...) as the ids are (an embedding's output handed on untransposed);
    empty when the forward raises. A model that transposes the embedded ids to (T, B, ...) first is not named (B !=
    T: where B == T the layouts cannot be told apart, and such a model keeps its examples apart anyway)."""
    ids = ids[:8]
    fed: list[str] = []

    def record(name, inp, out):
        if isinstance(inp, torch.Tensor) and inp.dim() >= 3 and tuple(inp.shape[:2]) == tuple(ids.shape):
            fed.append(name)

    try:
        with kept_modes(model):
            model.eval()
            hooked_forward(model, ids, SEQUENCE_FIRST, record)
    except Exception:  # noqa: BLE001 - a forward this reading cannot run names nothing
        return []
    return fed


FIX = ("build it with batch_first=True (nn.LSTM(..., batch_first=True), nn.TransformerEncoderLayer(..., "
       "batch_first=True)), or give it x.transpose(0, 1) and transpose its output back")


def name_sequence_first(verdicts: list, model: nn.Module, x, y) -> list:
    """A batch-independence fail of a model with a recurrent or attention layer built ``batch_first=False`` and
    fed one tensor of sequences names that layer and its flag first: it recurs (or attends) along dimension 0, which
    the checks read as the examples. With one target per example (``len(y) == len(x)``, not laid out per position
    like ``x``) the batch can only be (B, T, ...) and the layer mixes the examples; with targets per position laid
    out like ``x`` it may also be a (T, B, ...) batch given as the layer reads it, whose targets the checks read
    along dimension 1 once flattened to (T * B, ...): the advice gives both."""
    failed = [v for v in verdicts if v.check == "batch independence" and v.status == "fail" and
              "reading x as" not in str(v.value)]
    if not failed or not isinstance(y, torch.Tensor) or y.dim() == 0:
        return verdicts
    layer = _layer_named(model, x)
    if layer is None:
        return verdicts
    shape = tuple(x.shape[:2])
    what = f"x {shape}" if x.dim() >= 3 else f"the embedded token ids x {shape}"
    advice = f"{layer} is built with batch_first=False: it reads {what} as (T, B, ...), mixing the examples at " \
        f"each position; {FIX}; else a BatchNorm left in train mode or a reduction over the batch axis"
    if y.dim() >= 2 and tuple(y.shape[:2]) == shape:  # per position: (B, T) and (T, B) read alike
        advice = (f"{layer} is built with batch_first=False: it recurs along dimension 0 of {what}, which the "
                  f"checks read as the examples. If x is (B, T, ...): {FIX}. If x is (T, B, ...), as the layer "
                  "reads it: give the targets flattened to (T * B, ...) (criterion(out.view(-1, C), y.view(-1))), "
                  "so that the checks read the examples along dimension 1")
    return [type(v)(v.check, v.status, v.value, v.expected, advice) if any(v is f for f in failed) else v
            for v in verdicts]


def sequence_first_crash(model: nn.Module, x, y, crash: Verdict | None, out) -> Verdict | None:
    """``crash`` (the first batch's forward or loss raised) with advice naming a ``batch_first=False`` layer when
    the output holds one row per position of the (B, T, ...) input, x.shape[1], where the targets hold one per
    example, len(x): a classifier's ``h_n[-1]`` of a recurrence over the batch axis."""
    rows = out if isinstance(out, torch.Tensor) else None
    if crash is None or crash.status != "fail" or not isinstance(x, torch.Tensor) or x.dim() < 2 or rows is None or \
            rows.dim() == 0 or not isinstance(y, torch.Tensor) or len(y) != len(x) or x.shape[1] == len(x) or \
            len(rows) != x.shape[1]:
        return crash
    layer = _layer_named(model, x)
    if layer is None:
        return crash
    return Verdict(crash.check, crash.status, crash.value, crash.expected,
                   f"the output holds {len(rows)} rows, one per position of the ({len(x)}, {x.shape[1]}, ...) input, "
                   f"and the targets {len(y)}: {layer} is built with batch_first=False and reads the batch as "
                   f"(T, B, ...), so its final state h_n[-1] has one row per position; {FIX}")
