"""The ``loop:`` verdicts on what a hand-written loop feeds the model: its inputs (NaN/Inf, scale as the first
weighted layer receives them, the same batch every step) and, given to ``w.step(loss, y=y)``, its targets (outside
the output width, 1-based, sorted by label, regression targets in raw units). The loop's other verdicts, and the
deferral of the learning-rate reading to any of them, are in :mod:`trainwell.doctor.loop_verdicts`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwell.doctor.input_scale import ADVICE as SMALL_ADVICE
from trainwell.doctor.input_scale import FAR, LARGE_ADVICE, RESTORED, is_small
from trainwell.doctor.loop_probe import LoopProbe
from trainwell.doctor.multi_hot import ADVICE, multi_hot_rows
from trainwell.doctor.plurals import counted
from trainwell.doctor.row_labels import TASKS
from trainwell.doctor.step_readings import fixed_rows, forward_tensors
from trainwell.doctor.target_range import one_label_left
from trainwell.doctor.targets import RAW_ADVICE, raw_units
from trainwell.doctor.verdict import Verdict


def _far_columns(floating: list[dict]) -> str:
    """The columns of a (B, F) feature table far from unit scale when the others are not (a raw column left out of
    the standardization), named with their mean and std on the farthest step; "" when all or none are."""
    s = max(floating, key=lambda t: t["q99"])
    cols = s.get("columns")
    if not cols:
        return ""
    far = [i for i, q in enumerate(cols["q99"]) if q > FAR]
    rest = [q for i, q in enumerate(cols["q99"]) if q <= FAR]
    if not far or not rest:
        return ""
    named = ", ".join(f"{i} (mean {cols['mean'][i]:.3g}, std {cols['std'][i]:.3g})" for i in far[:3])
    more = f" and {len(far) - 3} more" if len(far) > 3 else ""
    return (f"; column{'s' if len(far) > 1 else ''} {named}{more} of {len(cols['q99'])} in raw units, the other "
            f"{len(rest)} with 99% of |x| below {max(rest):.3g}")


def inputs(probe: LoopProbe, memorizing: bool = False) -> Verdict:
    """The batches the model trains on: of unit-ish scale (the 99th percentile of |x|, not its maximum), and not the
    same batch again and again. One batch in every step is full-batch training unless the model memorizes it
    (``memorizing``: the training loss ends far below the validation loss): then it is the loop bug, except when the
    loss reaches only a fixed subset of the output's rows (:func:`masked_rows`): a graph network's labelled nodes
    among all the nodes it reads, whose validation nodes are other rows of the same batch."""
    name = "loop: inputs"
    seen = probe.inputs
    if not seen and probe.nonfinite_input_step is None:
        return Verdict(name, "skip", "skipped: no training forward observed", "-", "")
    bad = sorted({s["step"] for s in seen if s.get("finite") is False})
    if bad or probe.nonfinite_input_step is not None:
        steps = len({s["step"] for s in seen})
        first = min(bad[:1] + [probe.nonfinite_input_step] * (probe.nonfinite_input_step is not None))
        where = (f"on {len(bad)} of {steps} observed steps (first at step {first})" if bad else
                 f"at step {first}")
        return Verdict(name, "fail", f"inputs hold NaN or Inf {where}", "finite inputs",
                       "the data holds NaN/Inf (missing values, a 0/0 when "
                       "standardizing a constant feature, log of 0): clean or impute it before training; no learning "
                       "rate fixes it")
    by_step = _inputs_by_step(seen)
    distinct = set(by_step.values())
    if len(by_step) >= 3 and len(distinct) == 1:
        masked = masked_rows(probe)
        if masked is not None:
            return Verdict(name, "info", f"the same input batch in all {len(by_step)} observed steps, the loss "
                           f"reaching only {masked[0]} of its {masked[1]} output rows, the same ones on every step: "
                           "full-batch training on a labelled subset (a graph network's training nodes)", "-",
                           "the other rows are inputs, not training examples: a gap to a validation loss over "
                           "them is the model's variance")
        return Verdict(name, "warn" if memorizing else "info",
                       f"the same input batch in all {len(by_step)} observed steps" +
                       ("; the training loss ends far below the validation loss" if memorizing else ""),
                       "a new batch each step", "full-batch training, or is next(iter(loader)) outside the loop, or a "
                       "generator seeded again every step (torch.Generator().manual_seed(0) inside the batch loop: "
                       "torch.randperm draws the same indices each time)? The model then memorizes one batch: seed "
                       "the generator once, before the loop")
    floating = [s for s in seen if s["floating"] and "std" in s]
    if floating:
        std = max(s["std"] for s in floating)
        top = max(s["max_abs"] for s in floating)
        bulk = max(s["q99"] for s in floating)
        layer = [s for s in floating if s.get("layer_std") is not None]
        inner = max((s["layer_q99"] for s in layer), default=math.inf)
        if bulk > FAR and len(layer) == len(floating) and inner <= FAR:
            return Verdict(name, "pass", f"inputs std up to {std:.3g} (99% of |x| below {bulk:.3g}), normalized "
                           "inside the model: the first weighted layer receives std up to "
                           f"{max(s['layer_std'] for s in layer):.3g}", "-")
        if bulk > FAR:
            which = max(floating, key=lambda s: s["q99"]).get("index")
            where = f" (the model's argument {which[0]} of {which[1]})" if which is not None else ""
            return Verdict(name, "warn", f"inputs far from unit scale: std up to {std:.3g}, 99% of |x| below "
                           f"{bulk:.3g}, max |x| {top:.3g}{where}{_far_columns(floating)}",
                           "std ~ 1", LARGE_ADVICE)
        small = [s["layer_nz_q99"] for s in layer if s.get("layer_nz_q99") is not None]
        restored = all((s.get("norm_scale") or 0.0) >= RESTORED for s in layer)  # a norm undoes the scale
        if small and len(small) == len(floating) and is_small(max(small)) and not restored:
            return Verdict(name, "warn", f"inputs far below unit scale: std up to {std:.3g}, 99% of "
                           f"the non-zero |x| below {max(small):.3g} as the first weighted layer receives them",
                           "std ~ 1 (99% of |x| above 0.02)", SMALL_ADVICE)
    return Verdict(name, "pass", f"{counted(len(distinct), 'distinct batch')} in "
                   f"{counted(len(by_step), 'observed step')}", "-")


def _inputs_by_step(seen: list[dict]) -> dict[int, tuple]:
    """Each observed step's forwards' inputs, as (shape, sum, head) per forward (a policy's are one per environment
    step)."""
    by_step: dict[int, tuple] = {}
    for s in seen:
        by_step[s["step"]] = by_step.get(s["step"], ()) + ((s["shape"], s["sum"], tuple(s["head"])),)
    return by_step


def full_batch_masked(probe: LoopProbe) -> tuple[int, int] | None:
    """:func:`masked_rows` when every observed step (3 or more) read the same input batch: full-batch training on a
    labelled subset, a graph network's training nodes; else None."""
    by_step = _inputs_by_step(probe.inputs)
    return masked_rows(probe) if len(by_step) >= 3 and len(set(by_step.values())) == 1 else None


def masked_rows(probe: LoopProbe) -> tuple[int, int] | None:
    """(rows reached, rows) when the loss reached a subset of the output's rows on the first observed step, not all
    of them, and none outside it on every later one (:func:`~trainwell.doctor.step_readings.reached_rows`); else
    None."""
    return fixed_rows(probe.steps)


def scores_its_own_inputs(model: nn.Module, sample: tuple | None, classes: int | None) -> bool:
    """Whether the model's ``classes`` outputs score the vocabulary of its own inputs, as a language model's or a
    decoder's do: an ``nn.Embedding`` (or ``EmbeddingBag``) of that many rows, or an input of one-hot rows that
    wide (``sample``: a training forward's ``(args, kwargs)``; without one, a Linear layer that reads that many
    features). True when ``classes`` is unknown. A tagger's tags are not its words: its output width is not its
    word embedding's."""
    if classes is None:
        return True
    if any(isinstance(m, nn.Embedding | nn.EmbeddingBag) and m.num_embeddings == classes for m in model.modules()):
        return True
    if sample is None:
        return any(isinstance(m, nn.Linear) and m.in_features == classes for m in model.modules())
    return any(t.is_floating_point() and t.dim() >= 1 and t.shape[-1] == classes and
               bool(((t == 0) | (t == 1)).all()) and bool((t.sum(-1) == 1).all()) for t in forward_tensors(*sample))


def position_aligned(logits: torch.Tensor | None, y: torch.Tensor) -> bool:
    """Whether targets ``y`` hold one label per position of the ``logits`` (the logits' shape less one axis, the
    class axis, with any batch size): (B,) labels of (B, C) scores, a tagger's (B, T) tags, a mask's (B, H, W).
    CTC's (B, S) label sequences against (T, B, C) log-probabilities are not: the loss aligns them itself, and
    its class 0 is the blank no target holds. True when the logits are unknown."""
    if logits is None or y.dim() == 0:
        return True
    for k in range(logits.dim()):
        rest = logits.shape[:k] + logits.shape[k + 1:]
        if len(rest) == y.dim() and tuple(rest[1:]) == tuple(y.shape[1:]):
            return True
    return False


def labels(ys: list[torch.Tensor], classes: int | None, broadcast: str | None = None, soft: bool = False,
           against: list[bool] | None = None, tokens: bool = True, aligned: bool = True,
           contexts: list | None = None, game: str | None = None, policy: str | None = None) -> Verdict:
    """Targets passed to ``w.step(loss, y=y)``: inside [0, C), including class 0, mixed within batches like the
    whole run (a permutation test); and no elementwise loss that broadcast outputs against targets of another
    shape (``broadcast``: torch's warning text, caught while the loop ran). ``tokens``: the outputs score the
    model's own input vocabulary (:func:`scores_its_own_inputs`), so (B, T) targets are tokens whose id 0 (a start
    or padding token) may never be a target; otherwise (a tagger's tags) class 0 never appearing while the largest
    target is C - 1 reads as 1-based labels, as for (B,) labels. ``soft``: the loss's gradient summed to
    0 over the classes on every observed step (a loss of softmax(z)), so floating-point targets of the outputs'
    width are soft labels or a teacher's logits, not regression targets. ``against``: per observed step whose
    multi-hot targets were read against its gradient, whether the loss is cross-entropy against them
    (:func:`~trainwell.doctor.multi_hot.cross_entropy_against`): multi-hot rows under a softmax loss of another
    form (a partial-label loss over candidate sets) are not the bug. ``aligned``: the targets hold one label per
    output position (:func:`position_aligned`); label sequences a loss aligns itself (CTC, whose class 0 is the
    blank) are not read as 1-based. ``contexts``: per batch, the plain values its forward took (a multi-task
    model's task, ``model(x, "parity")``): each task's batches have a label mix of their own, tested apart.
    ``game``: why the loss is one player's in a game that goes through the other player's parameters (a GAN's
    generator, through its discriminator): its constant targets are the answer it asks of that player ("real"),
    one value by design (a discriminator's own loss, which alone says whether the fakes are its negatives, is not
    such a loss). ``policy``: how the loss read as a policy gradient: its batches are the policy's own rollouts
    (a critic's returns, the actions taken), grouped by episode by construction, not a dataset's examples to shuffle,
    so their order is not read."""
    name = "loop: labels"
    if broadcast is not None:
        return Verdict(name, "fail", f"the loss broadcast outputs against targets of another shape ({broadcast[:120]})",
                       "targets shaped like the outputs", "an output (B, 1) against targets (B,) becomes a (B, B) "
                       "loss of every output against every target: squeeze the output (out.squeeze(1)) or "
                       "unsqueeze the targets")
    if not ys:
        return Verdict(name, "skip", "skipped: no targets seen (pass them as w.step(loss, y=y); `trainwell watch` "
                       "reads those a torch loss such as F.cross_entropy was given)", "-", "")
    constant = _one_value(ys)
    if constant is not None and game is not None:
        return Verdict(name, "pass", f"every target in {counted(len(ys), 'batch')} is {constant}: one player's loss "
                       f"in a game ({game}), whose targets are the answer it asks of the other player", "-")
    if constant is not None:
        return Verdict(name, "warn", f"every target in {counted(len(ys), 'batch')} is {constant}",
                       "targets that differ",
                       "a constant output fits these targets perfectly and the loss says nothing about the inputs: "
                       "are the negative examples (or the other classes) missing, e.g. never sampled? (A ranking "
                       "loss's +1, which item of each pair ranks first, is one value by design)")
    left = None if ys[0].is_floating_point() else one_label_left(torch.cat([y.reshape(-1) for y in ys]), classes)
    if left is not None:
        return Verdict(name, "warn", f"{left[0]} ({counted(len(ys), 'batch')})", "targets of two classes or more",
                       left[1])
    if ys[0].is_floating_point():
        hot = [r for r in (multi_hot_rows(y, classes) for y in ys) if r is not None] if soft else []
        several, rows = sum(r[0] for r in hot), sum(len(y) for y in ys)
        if hot and against and not any(against):
            return Verdict(name, "pass", f"multi-hot targets under a softmax loss that is not cross-entropy against "
                           f"them ({several} of {rows} rows mark two or more classes): a loss over each row's marked "
                           "set (partial-label candidates)", "-")
        if hot:
            return Verdict(name, "fail", f"multi-hot targets under a softmax loss: {several} of {rows} rows mark two "
                           "or more classes", "one class per row (or a probability distribution)", ADVICE)
        if soft and classes and ys[0].dim() >= 2 and ys[0].shape[-1] == classes:
            return Verdict(name, "pass", f"floating-point targets over the {classes} classes of a softmax loss (its "
                           "gradient sums to 0 over the classes): soft labels or a teacher's logits", "-")
        return _float_targets(ys, policy)
    flat = [y.reshape(-1) for y in ys]
    every = torch.cat(flat)
    valid = every[every >= 0]  # negative targets are ignore_index
    void = ""
    if classes and int(valid.max() if valid.numel() else 0) >= classes and \
            bool((valid[valid >= classes] == 255).all()) and classes < 255:
        valid, void = valid[valid < classes], "; 255 read as a void label (ignore_index=255)"
    if valid.numel() == 0:
        return Verdict(name, "skip", "skipped: no non-negative targets", "-", "")
    lo, hi = int(valid.min()), int(valid.max())
    if classes and hi >= classes:
        return Verdict(name, "fail", f"targets up to {hi} for {classes} outputs", f"targets in [0, {classes})",
                       "a label outside the output width: more classes than outputs, or 1-based labels")
    # token sequences (B, T) over the model's own input vocabulary keep id 0 for a start or padding token that is
    # never a target; a tagger's (B, T) tags are labels
    if classes and lo >= 1 and classes > 2 and len(ys) >= 5 and hi == classes - 1 and aligned and \
            (ys[0].dim() == 1 or not tokens):
        return Verdict(name, "warn", f"targets run {lo}..{hi}: class 0 never appears in {counted(len(ys), 'batch')}",
                       f"targets in [0, {classes})", "1-based labels? subtract 1 (output 0 is trained towards "
                       "never being chosen, and the model has one class too many)")
    return _label_mix(flat, contexts, policy, f"{counted(len(ys), 'batch')}, targets {lo}..{hi}", void)


def _label_mix(flat: list[torch.Tensor], contexts: list | None, policy: str | None, seen: str, void: str) -> Verdict:
    """The batches' class labels mixed like the whole run's (:func:`_mix_by_context`), not read for a policy
    gradient's (``policy``: its batches are its rollouts, the actions of one episode together)."""
    name = "loop: labels"
    if policy is not None:
        return Verdict(name, "pass", f"{seen}{void}; their order is not read: {policy}, whose batches are its own "
                       "rollouts, grouped by episode", "-")
    mixed = _mix_by_context(flat, contexts)
    if mixed is not None:
        return Verdict(name, "warn", mixed, "each batch's label mix close to the whole run's",
                       "the data is sorted (by label) or not shuffled: use DataLoader(..., shuffle=True) or a new "
                       "permutation every epoch")
    return Verdict(name, "pass", f"{seen}, mixed like the whole run{void}", "-")


def _one_value(ys: list[torch.Tensor]) -> str | None:
    """The single value every target of 3 or more batches holds (all ones: no negatives sampled), else None."""
    if len(ys) < 3:
        return None
    first = ys[0].reshape(-1)[:1]
    if first.numel() == 0 or not all(bool((y == first).all()) for y in ys):
        return None
    value = first.item()
    return f"{value:g}" if isinstance(value, float) else str(value)


def parts_of_targets(parts: dict[str, list[torch.Tensor]], heads: dict[str, tuple], verdict: Verdict) -> Verdict:
    """The labels ``verdict`` read from a tensor ``y=``, or, where it found nothing wrong (or had no tensor to
    read) and ``w.step(loss, y=(labels, boxes))`` gave several targets, the first part (``parts``: name -> its
    batches) that is wrong: a task's class labels (``y={'shape': ...}``) outside its head's width or 1-based, read
    against the output field of the same key (``heads``: name -> its shape), or a floating-point part far from unit
    scale (boxes in pixels beside class labels)."""
    if verdict.status not in ("pass", "skip"):
        return verdict
    for name, ys in parts.items():
        if not ys[0].is_floating_point():
            found = _task_labels(name, ys, heads.get(name))
            if found is not None:
                return found
            continue
        found = _float_targets(ys)
        if found.status == "warn":
            return Verdict(found.check, "warn", f"targets {name}: {found.value}", found.expected, found.advice)
    if verdict.status == "skip" and parts:
        scaled = [name for name, ys in parts.items() if ys[0].is_floating_point()]
        tasks = [name for name in parts if name not in scaled and name in heads]
        read = ([f"the floating-point ones ({', '.join(scaled)}) of unit scale (read for their scale only)"]
                if scaled else []) + ([f"the class labels of {', '.join(tasks)} within their heads"] if tasks else [])
        return Verdict(verdict.check, "pass", f"several targets: {'; '.join(read) or 'none read'}", "-")
    return verdict


def _task_labels(name: str, ys: list[torch.Tensor], head: tuple | None) -> Verdict | None:
    """One task's class labels (``name``: its key in ``y=`` and in the model's dict output) against the width of
    its head (``head``: that output's shape, (B, C) or (B, T, C)): labels past it, or 1-based; None otherwise, or
    when the head is not known."""
    if head is None or any(y.shape[0] != head[0] for y in ys[:1]):
        return None
    width = head[1] if ys[0].dim() == 1 or tuple(ys[0].shape) != head[:-1] else head[-1]
    found = labels(ys, width)
    if found.status == "pass" or not (found.value.startswith("targets up to") or "class 0 never" in found.value):
        return None
    return Verdict(found.check, found.status, f"task {name}: {found.value} (its head's output {name})",
                   found.expected, f"the labels of task {name} do not fit its head: {found.advice}")


def _float_targets(ys: list[torch.Tensor], policy: str | None = None) -> Verdict:
    """Floating-point targets (regression, soft labels): far from unit scale they make the loss and its gradients
    scale with them (targets in raw units, e.g. prices), like unnormalized inputs; batches whose targets sit in
    bands of their own (data sorted by target, no shuffling) are named as sorted labels are, unless the loss is a
    policy gradient's (``policy``: how it read so), whose batches are rollouts grouped by episode."""
    name = "loop: labels"
    sorted_by_target = _sorted_values(ys) if policy is None else None
    if sorted_by_target is not None:
        return Verdict(name, "warn", sorted_by_target, "each batch's targets spread like the whole run's",
                       "the data is sorted by its target or not shuffled: use DataLoader(..., shuffle=True) or a "
                       "new permutation every epoch")
    every = torch.cat([y.reshape(-1).double() for y in ys])
    every = every[torch.isfinite(every)]
    if raw_units(every):
        std, mean, top = float(every.std()), float(every.mean()), float(every.abs().max())
        return Verdict(name, "warn", f"floating-point targets far from unit scale: mean {mean:.3g}, std "
                       f"{std:.3g}, max |y| {top:.3g}", "targets of unit scale",
                       RAW_ADVICE)
    if policy is not None:
        return Verdict(name, "pass", f"floating-point targets of unit scale; their order is not read: {policy}, "
                       "whose batches are its own rollouts, grouped by episode (a critic's returns)", "-")
    return Verdict(name, "pass", "floating-point targets, no broadcasting seen", "-")


def _sorted_values(ys: list[torch.Tensor]) -> str | None:
    """A permutation test for floating-point targets: the share of their variance that lies between batches
    (each example's targets averaged), against the same share after shuffling the pooled examples. Shuffled
    batches of B examples hold about 1/B of it; data sorted by its target, nearly all. Batches of fewer than 4
    examples are left out."""
    means = [y.reshape(len(y), -1).double().mean(1) for y in ys if y.dim() >= 1 and len(y) >= 4]
    if len(means) < 5:
        return None
    pooled = torch.cat(means)
    pooled = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
    total = float(pooled.var())
    if not total > 0:
        return None
    sizes = torch.tensor([len(m) for m in means])
    batch = torch.repeat_interleave(torch.arange(len(means)), sizes)

    def between(values: torch.Tensor) -> float:
        sums = torch.zeros(len(means), dtype=torch.double).index_add_(0, batch, values)
        return float(((sums / sizes - values.mean()) ** 2 * sizes).sum() / ((len(values) - 1) * total))

    found = _beyond_shuffling(between, pooled, factor=4.0)
    if found is not None:
        return f"{found[0]:.0%} of the targets' variance lies between batches (shuffled batches: {found[1]:.0%})"
    return None


def _beyond_shuffling(stat, pooled: torch.Tensor, factor: float, floor: float = 0.3) -> tuple[float, float] | None:
    """(the statistic of the batches as seen, its mean over 20 shufflings of the pooled values) when the seen one
    is above every shuffled one, ``factor`` times their mean and ``floor``: batches not drawn at random."""
    seen = stat(pooled)
    g = torch.Generator().manual_seed(0)
    null = [stat(pooled[torch.randperm(len(pooled), generator=g)]) for _ in range(20)]
    mean = sum(null) / len(null)
    return (seen, mean) if seen > max(null) and seen > factor * mean and seen > floor else None


def _mix_by_context(flat: list[torch.Tensor], contexts: list | None) -> str | None:
    """:func:`_mix_test` over the batches of each task apart, where the forwards took different plain values
    (``contexts``, one per batch): a task's labels (0/1 parity) have a mix of their own, not the run's."""
    if not contexts or len(contexts) != len(flat) or not 2 <= len(set(contexts)) <= TASKS:
        return _mix_test(flat)  # one task, or a value that changes with the step (an epoch index): no tasks
    for context in dict.fromkeys(contexts):
        mixed = _mix_test([f for f, c in zip(flat, contexts, strict=True) if c == context])
        if mixed is not None:
            return mixed
    return None


def _mix_test(flat: list[torch.Tensor]) -> str | None:
    """A permutation test of the batches' label mix: mean total-variation distance of each batch's label
    histogram from the pooled one, against the same statistic after shuffling the pooled labels. Batches of
    fewer than 4 labels (a short last batch) are left out."""
    flat = [f for f in flat if len(f) >= 4]
    sizes = [len(f) for f in flat]
    if len(flat) < 5:
        return None
    pooled = torch.cat(flat).clamp_min(0)
    c = int(pooled.max()) + 1
    if c < 2:
        return None
    overall = torch.bincount(pooled, minlength=c).double() / len(pooled)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    size = torch.tensor(sizes, dtype=torch.double)[:, None]

    def stat(labels: torch.Tensor) -> float:  # one scatter for all batches' histograms
        counts = torch.zeros(len(sizes) * c, dtype=torch.double).index_add_(
            0, batch * c + labels, torch.ones(len(labels), dtype=torch.double)).view(len(sizes), c)
        return float((counts / size - overall).abs().sum(1).mean() / 2)

    # sorted batches reach a mean distance of 1 - sum p_c^2 (each batch one class, class c's p_c of them): 0.67
    # with 3 balanced classes, 0.19 when one class holds 90%; the floor is 0.3, or 45% of that reach when lower
    reach = 1.0 - float((overall ** 2).sum())
    found = _beyond_shuffling(stat, pooled, factor=2.0, floor=min(0.3, 0.45 * reach))
    if found is not None:
        return (f"batches differ from the run's label mix by {found[0]:.2f} (total variation; shuffled batches: "
                f"{found[1]:.2f})")

    def repeated(labels: torch.Tensor) -> float:  # the share of each batch's labels that repeat one before them
        counts = torch.zeros(len(sizes) * c, dtype=torch.double).index_add_(
            0, batch * c + labels, torch.ones(len(labels), dtype=torch.double))
        return 1.0 - float((counts > 0).sum()) / len(labels)

    # with as many classes as a batch holds, even shuffled batches differ from the mix; sorted ones repeat labels
    found = _beyond_shuffling(repeated, pooled, factor=2.0)
    if found is not None:
        return (f"{found[0]:.0%} of each batch's labels repeat a label before them (shuffled batches: "
                f"{found[1]:.0%})")
    return None


def single_example_batches(probe: LoopProbe) -> Verdict | None:
    """A warning when training batches of one example ran through BatchNorm (a DataLoader's last batch when the
    dataset's size % batch_size == 1): BatchNorm normalizes it by that one example's statistics (in a CNN, over
    its positions; a dense layer's raises) and moves its running averages towards them (Ioffe & Szegedy 2015
    estimate the statistics over mini-batches of several examples). None when there were none."""
    k = probe.single_example_forwards
    if not k:
        return None
    return Verdict("loop: batch of one", "warn", f"{k} training batch{'es' * (k != 1)} of 1 example went through "
                   f"BatchNorm ({probe.train_steps} training steps in all)", "batches of 2 or more examples",
                   "BatchNorm normalizes a single example by its own statistics and pulls its running averages "
                   "towards them (the evaluation then uses them): drop the last incomplete batch, "
                   "DataLoader(..., drop_last=True), or choose a batch size that does not leave 1 example over")
