"""``trainwell watch --check``: the pre-flight (:func:`~trainwell.doctor.check.check`) of a script's model as it
was at its first training step, its verdicts folded into the first loop's report.

The model is copied at the first ``optimizer.step()``, and the copy checked when the loop's watch has closed (at
the script's end, or when it moves on to another loop): no hook or mode of the watch's then reads the check's own
forwards, losses and optimizer steps as the script's.

What ``doctor.check(model, x, y, loss_fn, optimizer=opt)`` is given by hand is read from the script's first steps:

- **the model and optimizer**: a copy of the module the script called outermost (in training mode, with
  gradients) whose output the first loss is computed from, taken at the first ``optimizer.step()`` before it moves
  anything (the weights the first forward used), and an optimizer of the same kind and settings over the copy's
  parameters (read for its weight decay and what it holds; never stepped);
- **the inputs and labels**: that module's inputs (positional, or named: ``model(**batch)``) and the target the
  loss saved in its graph (``F.cross_entropy``'s, ``nn.MSELoss``'s ...), copied, of the first training batches
  till :data:`EXAMPLES` examples (the examples ``doctor.check`` reads; at most :data:`STEPS` steps, while the
  batches' shapes join): one batch of 32 examples leaves 8 held out, too few for the input-independent baseline;
- **the loss**: rebuilt from the loss's graph (:mod:`~trainwell.doctor.graph_loss`); when it cannot be, the
  readings that need no loss (the model's structure: a residual block adding its input twice, a BatchNorm applied
  after two layers, a layer repeated ...) run alone, and one line says which checks were skipped and why.

The script's own model, optimizer, data and global random generators are not touched (the copy is checked, every
generator put back): its training is bit for bit what it is without ``--check``. The pre-flight costs one
``doctor.check`` (1-3 s on a small model; on a large one each costly check samples within
:data:`trainwell.doctor.budget.TIME_BUDGET_S`), once, at the loop's end.
"""

from __future__ import annotations

import copy
import gc
import time
import warnings
from collections import deque
from collections.abc import Callable

import torch
from torch import nn

from trainwell.doctor import global_rngs
from trainwell.doctor import outputs as O
from trainwell.doctor.batch_layout import sequence_first_layers
from trainwell.doctor.func_transforms import outside_transforms
from trainwell.doctor.graph_loss import graph_loss
from trainwell.doctor.report import Report
from trainwell.doctor.taped_loss import LossTape, TapedLoss
from trainwell.doctor.verdict import Verdict

NAME = "pre-flight"
EXAMPLES = 256  # examples gathered for the check (doctor.check's own default)
STEPS = 16  # ... over at most this many steps
BYTES = 64 * 2 ** 20  # ... holding at most this many bytes
#: the latest outermost training forwards kept till a backward (the loss's is among them)
FORWARDS = 4
GRAPH = 20_000  # nodes of the loss's graph walked to find them
#: the checks that need the loss (skipped when it cannot be rebuilt)
NEED_LOSS = ("initial loss, gradient check, overfit a tiny subset, symmetry, input-independent baseline, batch "
             "independence, targets")


def _copied(value):
    """Tensors of a forward's arguments copied (the script may change its batch in place after the step)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_copied(v) for v in value)
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    return value


def _joined(parts: list, dim: int = 0):
    """The batches' inputs (or targets) joined along dimension ``dim`` (their first, or a sequence-first input's
    second), in their structure; raises where they do not join (sequences padded to other lengths)."""
    first = parts[0]
    if isinstance(first, torch.Tensor) and first.dim() == 0:  # one value for the whole call (a task's id)
        if all(isinstance(p, torch.Tensor) and torch.equal(p, first) for p in parts):
            return first
        raise ValueError("the batches differ in a value given to the whole call (a 0-d tensor)")
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim) if len(parts) > 1 else first
    if isinstance(first, (tuple, list)):
        return type(first)(_joined([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _joined([p[k] for p in parts]) for k in first}
    if all(p == first for p in parts):
        return first
    raise ValueError("the batches differ in a value that is not a tensor")


def _rows(value, axis: int = 0) -> int:
    """The examples an input holds: the size along ``axis`` of its first tensor with that many dimensions (a 0-d
    tensor beside the batch, a task's id given to the whole call, holds none); 0 without one."""
    return next((t.shape[axis] for t in O.leaves(value) if t.dim() > axis), 0)


def _example_axis(model: nn.Module, batches: list[tuple]) -> int:
    """The dimension along which the batches' single input tensor holds its examples: 1 for a sequence-first input
    ((T, B, ...) with one target per example, as the default ``nn.GRU`` reads it: its batches join along B, not
    T) where every batch's targets fit that dimension and either some batch's do not fit the first (B != T) or the
    model has a sequence-first layer (B == T: the shapes alone cannot tell); else 0. A 2-D input is read as (T, B)
    only by a model with a sequence-first layer (token ids into an embedding and a default ``nn.GRU``): (N, F)
    features whose F equals a labeled slice's size (FixMatch's 16 features and 16 labeled rows) are not."""
    if not all(isinstance(x, torch.Tensor) and x.dim() >= 2 and isinstance(y, torch.Tensor) and y.dim() == 1
               for x, y in batches):
        return 0
    if not all(x.shape[1] == len(y) for x, y in batches):
        return 0
    seq_first = bool(sequence_first_layers(model))
    if not seq_first and any(x.dim() == 2 for x, _ in batches):
        return 0
    return 1 if any(x.shape[0] != len(y) for x, y in batches) or seq_first else 0


def _targets_of_some_rows(model: nn.Module, batches: list[tuple]) -> tuple[int, int] | None:
    """(targets, rows) summed over the batches where every batch's loss saved fewer targets than its forward read
    rows (FixMatch's labeled rows, a slice of one forward over labeled and unlabeled rows, the only ones with
    labels), and no layout of ``doctor.check``'s pairs them (a sequence-first batch's one target per sequence);
    else None."""
    from trainwell.doctor.bags import as_bag_inputs
    from trainwell.doctor.batch_layout import batch_first_view

    covered = seen = 0
    for x, y in batches:
        try:
            rows = len(as_bag_inputs(x, model))
        except Exception:  # noqa: BLE001 - inputs doctor.check reports on its own
            return None
        targets = len(O.leaves(y)[0]) if O.leaves(y) and O.leaves(y)[0].dim() else 0
        if not 0 < targets < rows or batch_first_view(model, x, y) is not None:
            return None
        covered, seen = covered + targets, seen + rows
    return (covered, seen) if batches else None


def _autocast_on() -> bool:
    """Whether a ``torch.autocast`` region is active on the CPU or CUDA."""
    return any(torch.is_autocast_enabled(device) for device in ("cpu", "cuda"))


def _in_precision(value, dtype: torch.dtype):
    """``value``'s half-precision floating-point tensors (a forward's inputs under ``torch.autocast``: an encoder's
    bfloat16 output handed to the decoder the loss reads) in ``dtype``, the module's weights' precision, in which
    ``doctor.check`` runs it with autocast off."""
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.dtype in (torch.float16, torch.bfloat16) and dtype != value.dtype else value
    if isinstance(value, (tuple, list)) and not hasattr(value, "_fields"):
        return type(value)(_in_precision(v, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _in_precision(v, dtype) for k, v in value.items()}
    return value


def _bytes(value) -> int:
    return sum(t.numel() * t.element_size() for t in O.leaves(value))


#: what the skipped loss checks need: the user's loss, given to doctor.check in the script
_PASS_LOSS = "pass your loss to doctor.check(model, x, y, loss_fn) for them"
#: the same for a model given one value for the whole call (a hypernetwork's task id): one value at a time
_WHOLE_CALL = ("to run them, check one value at a time: wrap the model in a module that holds it, whose forward(x) "
               "returns model(task, x), and call doctor.check(wrapped, x, y, loss_fn) on that task's examples")


class ScriptPreflight:
    """Reads the script's forwards and losses from its first backward on, copies the model at its first
    ``optimizer.step()``, and checks the copy once :data:`EXAMPLES` examples are gathered (or the loop ends).
    ``outermost()``: whether the forward ending is one the script called outermost (the script watch's call depth);
    ``quiet(on)``: the script watch set to ignore the pre-flight's own forwards, backwards and steps."""

    def __init__(self, outermost: Callable[[], bool], quiet: Callable[[bool], None]):
        from torch.nn.modules.module import register_module_forward_hook

        self._outermost, self._quiet = outermost, quiet
        self._forwards: deque = deque(maxlen=FORWARDS)  # (module, args, kwargs, output tensors)
        self._tape = LossTape()  # the torch calls from the latest forward's output to the first loss
        self._loss: tuple | None = None  # (module, loss module or None, its description or why not)
        self._batches: list[tuple] = []  # (x, y) of each training batch read
        self._copy: tuple | None = None  # (the model's copy, the optimizer's) from the first step
        self._steps = 0
        self._copies: dict[int, torch.Tensor] = {}  # id(a parameter of the model) -> its copy's
        self._reached: set[int] = set()  # ids of the tensors the first loss went through
        self._unowned = False  # the first step moved only parameters upstream of the module the loss reads
        self.gathering = True  # till the examples are gathered
        self.done = False  # the check ran (or cannot)
        self.report: Report | None = None
        self._hook = register_module_forward_hook(outside_transforms(self._forwarded), with_kwargs=True)

    def _forwarded(self, module, args, kwargs, out) -> None:
        if not self.gathering or not (torch.is_grad_enabled() and module.training):
            return
        if module is not (self._loss[0] if self._loss is not None else module) or \
                self._loss is None and not self._outermost():
            return
        leaves = O.leaves(out)
        weight = next((q for q in module.parameters() if q.is_floating_point()), None)
        if any(t.grad_fn is not None for t in leaves) and weight is not None:
            args, kwargs = _copied(tuple(args)), _copied(dict(kwargs or {}))
            if _autocast_on():  # the check runs with autocast off: in the weights' precision
                args, kwargs = _in_precision(args, weight.dtype), _in_precision(kwargs, weight.dtype)
            self._forwards.append((module, args, kwargs, leaves))
            if self._loss is None:  # not a loss module's forward (no parameters): a model's, before the first loss
                self._tape.start(leaves)

    def backed(self, loss: torch.Tensor) -> None:
        """The script's ``backward()`` from ``loss``: its forward's batch and its target kept, and the loss read
        from the first (before the backward frees the graph). A reading that raises ends the gathering: the
        pre-flight never stops the script."""
        if self._unowned:
            self._stop_unowned()
            return
        if not self.gathering or not self._forwards:
            return
        try:
            self._backed(loss)
        except Exception as error:  # noqa: BLE001 - see the docstring
            self._stop(f"not run: the loss could not be read ({type(error).__name__}: {error})")

    def _stop_unowned(self) -> None:
        """The first loss trained none of the module it reads: no optimizer holding that module's parameters
        stepped between its backward and the next one (or the loop's end)."""
        self._unowned = False
        self._stop(f"not run: the first loss reads the output of {type(self._loss[0]).__name__}, but only parameters "
                   "upstream of it were stepped before the next backward() (a GAN's generator loss read through its "
                   "discriminator): that loss does not train it; call doctor.check(model, x, y, loss_fn) in the "
                   "script on the model and loss to check")

    def _stop(self, why: str) -> None:
        """Nothing to check: one line says why."""
        self.report = Report([Verdict(NAME, "skip", why)], phases=["pre"])
        self._copy, self._batches, self._copies, self._loss = None, [], {}, None
        self.close()

    def _backed(self, loss: torch.Tensor) -> None:
        from trainwell.doctor.registration import graph_leaves, graph_nodes
        from trainwell.doctor.saved_targets import saved_target

        ends = {t.grad_fn: i for i, f in enumerate(self._forwards) for t in f[3] if t.grad_fn is not None}
        found = {ends[n] for n in graph_nodes([loss.grad_fn], stop=lambda n: n in ends, limit=GRAPH) if n in ends}
        if not found:  # the loss is none of these forwards' (another model's, a forward not called outermost)
            if self._loss is None:
                self._stop("not run: the first loss's graph reaches the output of no module the script called in "
                           "training mode")
            return
        reached = None
        for forward in [f for i, f in enumerate(self._forwards) if i in found][::-1]:
            loss_fn, text = graph_loss(loss, forward[3])
            if loss_fn is not None or reached is None:
                reached = (forward, loss_fn, text)
            if loss_fn is not None:
                break
        (module, args, kwargs, leaves), loss_fn, text = reached
        self._forwards.clear()
        if self._loss is None:  # the tensors the first loss reached: the parameters its step may move
            self._reached = {id(t) for t in graph_leaves(loss, limit=GRAPH)}
        target = saved_target(loss)
        if self._loss is None:
            key, text = text, f"{text}, read from its graph" if loss_fn is not None else text
            if loss_fn is None and leaves is self._tape.outputs:  # the script's own arithmetic, replayed
                rows = {len(t) for t in (*O.leaves(args), *O.leaves(kwargs), target) if t is not None and t.dim()}
                loss_fn = self._tape.loss(loss, target, rows)
                text = repr(loss_fn) if loss_fn is not None else text
            self._tape.stop()
            self._loss = (module, loss_fn, text, key)
        elif module is not self._loss[0] or text != self._loss[3]:
            return
        x = None if args and kwargs else kwargs if kwargs else args[0] if len(args) == 1 else args
        self._batches.append((x, None if target is None else target.detach().clone()))
        if len(self._batches) > 1:
            try:
                _joined([b[0] for b in self._batches]), _joined([b[1] for b in self._batches])
            except Exception:  # noqa: BLE001 - shapes that do not join: the batches so far are checked
                self._batches.pop()
                self._steps = STEPS

    def stepped(self, optimizer: torch.optim.Optimizer) -> None:
        """An ``optimizer.step()`` is about to move the weights: at the first, the model is copied; the batches
        are read till :data:`EXAMPLES` examples."""
        self._steps += 1
        if self._unowned and any(id(p) in self._copies for g in optimizer.param_groups for p in g["params"]):
            self._unowned = False  # the module's own optimizer steps on the same loss (an encoder's, then a decoder's)
        if self._copy is None:
            if self._loss is None:  # no training forward and backward before it: nothing to check
                self._stop("not run: no forward of a module in training mode was followed by backward() before "
                           "the first optimizer.step()")
                return
            held = {id(p) for g in optimizer.param_groups for p in g["params"]}
            trainable = [p for p in self._loss[0].parameters() if p.requires_grad]
            # only parameters upstream of the module: does another optimizer step it before the next backward?
            self._unowned = bool(trainable) and not any(id(p) in held for p in trainable) and bool(held & self._reached)
            try:
                model = copy.deepcopy(self._loss[0])
            except Exception as error:  # noqa: BLE001 - the script goes on unchecked
                self._stop(f"not run: the model could not be copied ({type(error).__name__}: {error})")
                return
            self._copy = (model, optimizer)
            self._copies = {id(p): q for p, q in zip(self._loss[0].parameters(), model.parameters(), strict=True)}
            if any(p.requires_grad and id(p) not in held for p in self._loss[0].parameters()):
                self._copy = (model, None)  # one of several optimizers (a head's of its own): read by the watch
        rows = sum(_rows(x) for x, _ in self._batches if x is not None)
        if (rows >= EXAMPLES or self._steps >= STEPS or _bytes([b[0] for b in self._batches]) >= BYTES) and \
                not self._unowned:  # (else read on till an optimizer steps the module, or the next backward)
            self.close()

    def run(self) -> None:
        """The pre-flight on the model's copy with the batches gathered (at the loop's end)."""
        if self._unowned:
            self._stop_unowned()
        if self.done or self._copy is None:
            return
        self.done = True
        self.close()
        self._quiet(True)
        try:
            with global_rngs.kept(_devices(self._loss[0])), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.report = self._check()
        except Exception as error:  # noqa: BLE001 - the pre-flight must not stop the script
            self.report = Report([Verdict(NAME, "skip", f"not run: {type(error).__name__}: {error}")],
                                 phases=["pre"])
        finally:
            self._copy, self._batches, self._copies = None, [], {}
            gc.collect()  # the copies gone: the script watch counts the optimizers alive
            self._quiet(False)

    def _check(self) -> Report:
        from trainwell.doctor.check import check

        (module, loss_fn, text, _), (model, optimizer) = self._loss, self._copy
        batches = [b for b in self._batches if b[0] is not None]
        if not batches:
            return Report([Verdict(NAME, "skip", "not run: the model is called with positional and named inputs "
                                   "at once; call doctor.check(model, x, y, loss_fn) in the script")],
                          phases=["pre"])
        axis = _example_axis(model, batches)
        x = _joined([b[0] for b in batches], axis)
        rows = _rows(x, axis)
        where = f"on a copy of {type(module).__name__} as it was at step 1, on the script's first " + \
            (f"{len(batches)} training batches" if len(batches) > 1 else "training batch") + f" ({rows} examples)"
        partial = _targets_of_some_rows(model, batches) \
            if axis == 0 and loss_fn is not None and all(b[1] is not None for b in batches) else None
        if partial is None and isinstance(loss_fn, TapedLoss):  # rebuilt from the first step: it must score the
            failed = _replay_error(model, x, _joined([b[1] for b in batches]), loss_fn)  # joined rows too
            if failed is not None:
                loss_fn, text = None, f"the script's own loss, replayed on these {rows} examples, raised {failed} " \
                    "(it makes a tensor of the first batch's rows itself)"
        whole = any(t.dim() == 0 for t in O.leaves(x))  # a value for the whole call beside the batch: no rows
        if whole:
            loss_fn, text = None, "the model is called with a 0-d tensor beside its batch (a task's id for the " \
                "whole call), so its examples cannot be split into subsets or joined across batches"
        if loss_fn is None or any(b[1] is None for b in batches):
            why = text if loss_fn is None else "the loss saved no target in its graph"
            found = [Verdict(NAME, "skip", f"ran {where}, on the model's structure only: doctor.check's "
                             f"{NEED_LOSS} skipped: {why}; {_WHOLE_CALL if whole else _PASS_LOSS}"),
                     *([] if whole else _structure(model, x))]
            return Report(found, phases=["pre"] * len(found))
        if partial is not None:
            covered, seen = partial
            read = f"the first {len(batches)} training batches" if len(batches) > 1 else "the first training batch"
            return Report([Verdict(NAME, "skip", f"not run: the loss's targets cover only {covered} of the {seen} "
                                   f"rows {type(module).__name__}'s forward read in {read}, as in a semi-supervised "
                                   "batch whose labeled rows are a slice of it (labeled and unlabeled rows through "
                                   "one forward), so the pre-flight cannot pair the inputs with their targets; call "
                                   "doctor.check(model, x_labeled, y, loss_fn) in the script on the labeled "
                                   "rows")], phases=["pre"])
        tic = time.perf_counter()
        pre = check(model, x, _joined([b[1] for b in batches]), loss_fn,
                    optimizer=_same_optimizer(optimizer, self._copies) if optimizer is not None else None)
        line = Verdict(NAME, "info", f"doctor.check ran {where} in {time.perf_counter() - tic:.1f} s; loss: {text}")
        return Report([line, *pre.verdicts], phases=["pre"] * (1 + len(pre.verdicts)))

    def close(self) -> None:
        """The forward hook goes (once the examples are gathered, or the script ends)."""
        self.gathering = False
        self._tape.stop()
        self._hook.remove()
        self._forwards.clear()

    def folded(self, report: Report) -> Report:
        """``report`` (the first loop's) with the pre-flight's verdicts before its own (run now with the batches
        so far when the loop ended before :data:`EXAMPLES` examples); folded into one report only."""
        self.run()
        pre, self.report = self.report, None
        self.done = True
        self.close()
        if pre is None:
            return report
        return Report(pre.verdicts + report.verdicts, report.title, pre.phases + report.phases)


def _replay_error(model: nn.Module, x, y, loss_fn: TapedLoss) -> str | None:
    """The error the replayed loss raises on the model's output for ``x`` and the labels ``y``, or None."""
    from trainwell.doctor.check import untouched
    from trainwell.doctor.inputs import call

    with untouched(model), torch.no_grad():
        try:
            out = call(model, x)
        except Exception:  # noqa: BLE001 - a forward that raises is doctor.check's to report
            return None
        return loss_fn.replay_error(out, y)


def _structure(model: nn.Module, x) -> list[Verdict]:
    """The readings of the model's structure, which need no loss: a residual block adding its input twice, a
    BatchNorm applied after two layers, a layer repeated, a bidirectional layer read at one end ..."""
    from trainwell.doctor.bags import as_bag_inputs
    from trainwell.doctor.check import untouched
    from trainwell.doctor.doubled_skip import doubled_skip_verdict, doubled_skips
    from trainwell.doctor.structure_readings import structure_verdicts

    with untouched(model), torch.enable_grad():
        x = as_bag_inputs(x, model)
        try:
            skips = doubled_skip_verdict(doubled_skips(model, x))
        except Exception:  # noqa: BLE001 - a reading it cannot follow gives no verdict
            skips = None
        return [v for v in (skips, *structure_verdicts(model, x)) if v is not None]


def _devices(module: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})


def _same_optimizer(optimizer, copies: dict):
    """An optimizer of ``optimizer``'s kind and settings over the model copy's parameters where it holds the
    model's (``copies``: id of the model's -> the copy's; others kept): what the pre-flight reads of it (weight
    decay, the parameters it holds). None when one cannot be made."""
    groups = [{**g, "params": [copies.get(id(p), p) for p in g["params"]]} for g in optimizer.param_groups]
    try:
        return type(optimizer)(groups, **optimizer.defaults)
    except Exception:  # noqa: BLE001 - a custom optimizer with other arguments: the check runs without it
        return None


__all__ = ["ScriptPreflight"]
