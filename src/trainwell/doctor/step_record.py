"""What one observed step of a hand-written loop did, read by :class:`~trainwell.doctor.loop_probe.LoopProbe` when
the optimizer steps: each parameter's ``.grad`` against the gradients this step's ``backward()`` passes delivered
(old gradients kept, cleared ones, a scale such as an undivided accumulated loss, weight decay written into
``.grad`` by hand), the loss's form read from the gradient it sends to the outputs
(:mod:`trainwell.doctor.loss_form`), and the pull of coupled weight decay against the loss's gradient."""

from __future__ import annotations

import math

import torch

from trainwell.doctor.loss_form import (
    always_true_columns,
    bce_on_bounded,
    differentiated_target,
    head_problem,
    one_output_per_row,
    read_form,
    zero_sum_rows,
)
from trainwell.doctor.loss_scaling import stepping_scaler_scale
from trainwell.doctor.pseudo_targets import differentiated_soft_target
from trainwell.doctor.step_readings import log_probabilities, reached_rows
from trainwell.doctor.tied_rows import tied_share


def held(optimizer: torch.optim.Optimizer) -> set[int]:
    """The ids of the tensors ``optimizer``'s param groups hold now (``add_param_group`` included)."""
    return {id(p) for g in optimizer.param_groups for p in g["params"]}


def _unheld_moves(probe, name: str, p: torch.Tensor) -> None:
    """Records in ``probe.unheld_moved`` a parameter no watched optimizer holds whose values changed since the last
    observed step that read it (its sum and sum of squares, in float64): an optimizer not given to the watch steps
    it (a sparse embedding's ``SparseAdam`` beside the dense layers' ``Adam``), so it does change."""
    w = p.detach().double()
    now = (float(w.sum()), float((w * w).sum()))
    if probe.unheld_values.get(name, now) != now:
        probe.unheld_moved.add(name)
    probe.unheld_values[name] = now


def read_step(probe) -> dict:
    """What one observed step did: the gradients ``.grad`` holds against what this step's backward passes
    delivered, the loss's form read from the outputs' gradients, and the first step's weight-decay pull."""
    dot = n_g = n_inc = r_p = p_p = r_r = i_w = 0.0  # i_w: the delivered gradient against the weights
    present = cleared = 0
    clip = ValueClip()
    not_owned, backwards = [], 0
    dropped = crossed = 0  # passes whose gradients .grad lost; tensors that kept another optimizer's pass
    probe.owned = probe.held_now()  # add_param_group counts
    # of optimizers stepped in turn, the one stepping now applies only its own parameters' .grad (another's
    # may be cleared already, as a GAN's discriminator's is after its own step)
    stepping = held(probe.optimizer) if len(probe.optimizers) > 1 else None
    for name, p in probe.named.items():
        inc = probe._incoming.get(id(p))
        if inc is None:  # no backward pass delivered it; a .grad the loop wrote itself (DP-SGD's noised sum)
            if p.grad is not None and not p.grad.is_sparse and bool(p.grad.any()):
                probe.assigned.add(name)
            continue
        probe.reached.add(name)
        if bool((inc._values() if inc.is_sparse else inc).any()):
            probe.received.add(name)
            if id(p) not in probe.owned:
                not_owned.append(name)
                _unheld_moves(probe, name, p)
        if stepping is not None and id(p) not in stepping and id(p) in probe.owned or id(p) not in probe.owned:
            continue  # what no optimizer applies is named by the ownership verdict, not compared here
        backwards = max(backwards, probe._backwards.get(id(p), 0))
        dropped = max(dropped, probe._backwards.get(id(p), 0) - probe._kept.get(id(p), 0))
        crossed += id(p) in probe._crossed
        g = p.grad
        if inc.is_sparse or (g is not None and g.is_sparse):  # a sparse embedding's rows: held, not compared
            continue
        present += 1
        if g is None or not bool(g.any()):
            cleared += bool(inc.any())
            continue
        g64, i64, w64 = g.detach().double(), inc.double(), p.detach().double()
        dot += float((g64 * i64).sum())
        n_g += float((g64 * g64).sum())
        n_inc += float((i64 * i64).sum())
        clip.read(g64, i64)
        r = g64 - i64  # what was added to .grad besides this step's backward passes
        r_p += float((r * w64).sum())
        p_p += float((w64 * w64).sum())
        r_r += float((r * r).sum())
        i_w += float((i64 * w64).sum())
    scale = dot / n_inc if n_inc > 0 else math.nan
    # an addition proportional to the weights is weight decay written into .grad by hand, not old gradients
    decay = r_p / p_p if p_p > 0 else 0.0
    decay_fit = r_r > 0 and max(r_r - decay * r_p, 0.0) <= 1e-6 * r_r
    resid = math.sqrt(max(n_g - 2 * scale * dot + scale * scale * n_inc, 0.0) / n_g) if n_g > 0 else math.nan
    outs = probe._outs.batch_pairs()  # the passes whose gradients this step applies
    forms = [read_form(z, g) for z, g in outs if g is not None]
    probe.scored = next(((z, g) for z, g in outs if g is not None), None)
    # a regression output's gradient on each of the step's passes (micro-batches), read against the loss value
    # w.step is given (its reduction)
    probe.regressed = outs if outs and all(g is not None and z.dim() in (1, 2) and z.numel() <= 2**16 and
                                           not zero_sum_rows(g) for z, g in outs) else None
    known = [f for f in forms if f["form"] is not None]
    probe.two_class = outs[0] if len(outs) == 1 and len(known) == 1 and known[0]["form"] == "two_classes" else None
    # an output of no softmax form, read against the loss's value as binary cross-entropy (its soft targets' floor)
    probe.binary_pair = outs[0] if len(outs) == 1 and outs[0][1] is not None and not known and \
        outs[0][0].numel() <= 2**20 else None
    decay_ratio = coupled_decay(probe) if probe.opt_steps == 0 else None
    # the latest training forward came after the latest backward: this step runs before its own backward()
    early = probe._last_forward > probe._last_backward > 0
    return {"step": probe.opt_steps, "present": present, "cleared": cleared, "scale": scale, "resid": resid,
            "amp_scale": stepping_scaler_scale(),
            "before_backward": early, "decay_ratio": decay_ratio,
            "grad_norm": math.sqrt(n_g), "incoming_norm": math.sqrt(n_inc), "backwards": backwards,
            "dropped": dropped, "crossed": crossed, "value_clip": clip.result(),
            "manual_decay": decay if decay_fit and decay > 0 else None,
            # the backward delivered c * w alone (an L2 penalty) and no output of the model got a gradient
            "penalty_only": bool(outs) and all(g is None for _, g in outs) and i_w > 0 and p_p > 0 and
            n_inc - i_w * i_w / p_p <= 1e-6 * n_inc,
            # every output the step's passes scored got a gradient of exactly 0 (a loss flat in the outputs), and
            # the outputs' last width
            "flat_outputs": bool(outs) and all(g is not None and g.numel() and not bool(g.any()) for _, g in outs),
            "output_width": outs[0][0].shape[-1] if outs and outs[0][0].dim() else None,
            "not_owned": not_owned, "forwards": len(outs),
            "reached_rows": reached_rows(*outs[0]) if len(outs) == 1 else None,
            "form": known[0]["form"] if known and len(known) == len(forms) else None,
            "loss_weight": sum(f["weight"] for f in known) if known and len(known) == len(forms) else None,
            "rows": sum(f["rows"] for f in known), "classes": known[0]["classes"] if known else None,
            "separate_means": separate_means(outs, forms) if len(known) == len(forms) > 1 else False,
            "forward_weights": [(f["weight"], f.get("spread") or 1.0, f["rows"]) for f in known]
            if len(known) == len(forms) > 1 else None,
            "bounded": known[0]["bounded"] if known else None,
            "spread": max((f.get("spread") or 1.0) for f in known) if known else None,
            "smoothing": known[0].get("smoothing") if known else None,
            "label_weights": known[0].get("label_weights") if len(known) == 1 == len(forms) else None,
            "slower_than_ce": bool(known[0].get("slower_than_ce")) if len(known) == 1 == len(forms) else False,
            "entropy_bonus": known[0].get("entropy_bonus") if known else None,
            "log_probs": log_probabilities(outs[0][0]) if known and known[0]["form"] == "nll" else None,
            # the value the read form gives on these outputs, read once against the loss w.step is given
            "implied": known[0].get("implied") if len(known) == 1 == len(forms) else None,
            "first_logits": outs[0][0] if probe.opt_steps == 0 and outs else None,
            # the class scores' largest magnitude (cosine scores never pass 1)
            "score_max": float(outs[0][0].detach().abs().max()) if len(known) == 1 == len(outs) and
            known[0]["form"] == "cross_entropy" and outs[0][0].numel() else None,
            # a softmax loss's labels, the entry of each row its gradient pulls up (p - one-hot), at the first step
            "first_labels": outs[0][1].argmin(1) if probe.opt_steps == 0 and len(known) == 1 == len(outs) and
            known[0]["form"] == "cross_entropy" and outs[0][0].dim() == 2 else None,
            "zero_sum": bool(outs) and all(zero_sum_rows(g) for _, g in outs),
            "bce_bounded": bce_on_bounded(*outs[0]) if not known and outs and outs[0][1] is not None else None,
            "one_output": not known and bool(outs) and one_output_per_row(*outs[0]),
            "always_true": always_true_columns(*outs[0]) if not known and outs else None,
            "td_target_gamma": differentiated_target(outs) if not known else None,
            "soft_target": differentiated_soft_target(outs) if outs else None,
            "heads": {name: head_problem(z, g) for name, z, g in probe._outs.head_pairs()},
            "tied_rows": tied_share(outs[0][0], probe.step_forward, [z for _, z, _ in probe._outs.head_pairs()])
            if len(outs) == 1 else None}

def separate_means(outs: list, forms: list[dict]) -> bool:
    """Whether each forward the step's loss reached is its own term of the loss, a mean (weights summing to 1 or
    less) over another batch: different row counts, or outputs far apart (a labelled batch and an unlabelled one,
    two augmented views). The same batch forwarded twice and its loss added twice gives near-equal outputs."""
    if any(f["weight"] > 1.02 for f in forms):
        return False
    zs = [z.detach().double() for z, g in outs if g is not None]
    for i, a in enumerate(zs):
        for b in zs[i + 1:]:
            if a.shape == b.shape and float((a - b).norm()) < 0.5 * float(a.norm()):
                return False
    return True


def coupled_decay(probe) -> tuple[float, float] | None:
    """(weight decay, ||wd w|| / ||g||) over the first optimizer's decayed tensors at the first step: the pull
    of weight decay coupled to the gradient (SGD's, Adam's ``weight_decay``) against the loss's own gradient.
    None without coupled decay (AdamW's decoupled decay scales with the rate, not with the gradient)."""
    if isinstance(probe.optimizer, torch.optim.AdamW):
        return None
    pull = grad = 0.0
    strongest = 0.0
    for group in probe.optimizer.param_groups:
        wd = float(group.get("weight_decay", 0.0) or 0.0)
        if wd <= 0 or group.get("decoupled_weight_decay"):
            continue
        strongest = max(strongest, wd)
        for p in group["params"]:
            inc = probe._incoming.get(id(p))
            if inc is None or inc.is_sparse:
                continue
            pull += float((wd * p.detach().double()).pow(2).sum())
            grad += float(inc.double().pow(2).sum())
    if strongest == 0 or grad == 0:
        return None
    return strongest, math.sqrt(pull / grad)


class ValueClip:
    """Reads ``clip_grad_value_`` from one step's tensors: ``.grad`` equal to what backward() delivered clamped to
    [-c, c], one c for every tensor. ``result()`` gives (c, the share of the non-zero gradient elements that were
    clamped), or None when ``.grad`` is not such a clamp or nothing was clamped."""

    def __init__(self):
        self.caps: list[float] = []
        self.clamped = self.nonzero = 0
        self.fits = True

    def read(self, grad: torch.Tensor, incoming: torch.Tensor) -> None:
        """One tensor's ``.grad`` (float64) against its incoming gradient (float64)."""
        if not self.fits or torch.equal(grad, incoming):
            self.nonzero += int(incoming.count_nonzero())
            return
        cap = float(grad.abs().max())
        over = int((incoming.abs() > cap * (1 + 1e-6)).sum())
        if over == 0 or not torch.allclose(grad, incoming.clamp(-cap, cap), rtol=1e-5, atol=1e-30):
            self.fits = False
            return
        self.caps.append(cap)
        self.clamped += over
        self.nonzero += int(incoming.count_nonzero())

    def result(self) -> tuple[float, float] | None:
        if not self.fits or not self.caps or max(self.caps) > min(self.caps) * (1 + 1e-4) or not self.nonzero:
            return None
        return min(self.caps), self.clamped / self.nonzero
