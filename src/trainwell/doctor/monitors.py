"""In-flight monitors: every ``every`` steps, look inside one training step.

Per activation layer: mean, std, saturated fraction (tanh |a| > 0.99, sigmoid a < 0.01 or > 0.99), dead fraction
(ReLU units never positive on the batch) and histograms of the activations and of their back-propagated
gradients (Glorot & Bengio 2010, figs. 6-7). Per parameter tensor: gradient norm and the update/weight ratio
||dw|| / ||w|| of that step (cs231n: about 1e-3 is healthy). Warnings are recorded with the step at which they
first appeared; the loop pays for a snapshot only once per ``every`` steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwell.doctor.activation_statistics import _finite_fraction, _hist, _std, activation_stats
from trainwell.doctor.dead_units import conv1d_channels
from trainwell.doctor.fitted_saturation import fitted_bounds
from trainwell.doctor.func_transforms import outside_transforms
from trainwell.doctor.functional_activations import _FEEDERS, FunctionalActivations, calls_functions
from trainwell.doctor.layer_labels import layer_label, weighted_labels
from trainwell.doctor.outputs import leaves
from trainwell.doctor.plurals import counted
from trainwell.doctor.silent_branch_units import silent_branch_advice, within_block, zero_scaled_norms
from trainwell.doctor.verdict import Verdict
from trainwell.train.callbacks import Callback, State
from trainwell.train.uncompiled import suspend_compiled

_WATCHED = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid)
_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # outputs checked for NaN/Inf only
#: where an update/weight warning is read: over the parameter tensors, not in one layer
UPDATES = "the updates"
_STAND_IN = {cls.__name__: cls() for cls in _WATCHED}  # the kind of a functional activation (F.relu: ReLU)


def _as_float(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


def _first_weight(record: dict) -> str:
    return next(n for n in record["grad_rms"] if n.endswith("weight"))


def _depth_ratio(weights: list[tuple[str, float]], heads, band: float) -> float | None:
    """The first weight tensor's gradient RMS over the last one's (``weights``: (name, RMS) in the model's order;
    None without two, or with a last one of 0). A model with several output layers (``heads``: the layers whose
    outputs are the model's; an actor's and a critic's, each with its own loss term) has no one last layer: the
    first is read against every head, vanishing (below ``band``) only when it is against each of them, exploding
    (above 1 / ``band``) likewise; a policy's gradient is small against a value loss's by design."""
    if len(weights) < 2:
        return None
    tops = [g for n, g in weights[1:] if n.removesuffix(".weight") in heads and g > 0]
    if len(tops) < 2:
        return weights[0][1] / weights[-1][1] if weights[-1][1] > 0 else None
    mildest_low, mildest_high = weights[0][1] / min(tops), weights[0][1] / max(tops)
    return max(mildest_high, min(mildest_low, 1 / band))  # either far out against every head, or inside the band


#: how a dead-ReLU warning names units that are the model's own output
OUTPUT_UNITS = "in the model's output"
#: the advice for dead ReLUs that are the model's output: their cause is the ReLU there, not the rate or the init
OUTPUT_ADVICE = ("a ReLU (or other non-negative activation) after the last layer? Output units pushed below 0 there "
                 "get no gradient and stay at 0 (a consequence, not the learning rate or the init): for class scores "
                 "(logits) end the model with its last Linear layer and no activation; for targets that are never "
                 "negative, units at 0 on every example are those whose targets are 0 or below")


class Monitor(Callback):
    """Record activation, gradient and update statistics every ``every`` steps and flag problems.

    Args:
        every: steps between snapshots (the cadence); each snapshot covers one whole training step.
        dead_warn, saturation_warn: warn above these fractions.
        update_range: healthy band of the update/weight ratio (median over parameter tensors).
        depth_ratio: warn when the gradient RMS of the first weight tensor is this many times smaller (vanishing)
            or larger (exploding) than the last one's.
    """

    vmap_safe = False  # forward hooks need the real module: a vmapped population cannot run them

    def __init__(self, every: int = 50, bins: int = 30, dead_warn: float = 0.5, saturation_warn: float = 0.5,
                 update_range: tuple[float, float] = (1e-5, 1e-1), depth_ratio: float = 1e-3, path=None):
        if every < 1:
            raise ValueError(f"monitor cadence every = {every} is not allowed: use an integer >= 1")
        self.every, self.bins = every, bins
        self.dead_warn, self.saturation_warn = dead_warn, saturation_warn
        self.update_range, self.depth_ratio = update_range, depth_ratio
        self.path = path  # records are appended here as JSON lines (they grow; checkpoints stay small)
        self.records: list[dict] = []
        self.warnings: list[dict] = []
        self._hooks: list = []
        self._recompile = None  # compiles a compiled model back after an observed step (suspend_compiled)
        self._armed = False
        self._functional: FunctionalActivations | None = None
        self._retries = 0  # observations dropped in a row (steps skipped on non-finite gradients)
        self._snapshot: dict[str, torch.Tensor] | None = None
        self._acts: dict[str, dict] = {}
        self._storage: dict[str, tuple[int, int]] = {}  # (data_ptr, numel) of each activation's output
        self._calls: dict[str, int] = {}  # calls of each activation in the model's current forward
        self._pooled: dict[tuple[str, int], tuple[torch.Tensor, int]] = {}  # a call site's peaks and rows this step
        self._feeder: nn.Module | None = None  # the weighted layer that ran last in the observed forward
        self._layer_out: dict[str, tuple[int, int]] = {}  # (data_ptr, numel) of each Linear/Conv layer's output
        self._heads: set[str] = set()  # the Linear/Conv layers whose output is (part of) the model's own output
        self._labels: dict[str, str] = {}  # how a warning names a layer: layer_labels.layer_label

    # -- hooks ---------------------------------------------------------------------------------------------
    def _forward_hook(self, name: str):
        def hook(module, args, out):
            if not isinstance(out, torch.Tensor):
                return
            if not isinstance(module, _WATCHED):  # Linear/Conv: only NaN/Inf, the case the doctor must name
                self._layer_out[name] = (out.data_ptr(), out.numel())
                total = float(out.detach().sum())  # one pass, no temporary; non-finite iff a value is (or overflow)
                finite = 1.0 if math.isfinite(total) else _finite_fraction(out.detach())
                if finite < 1.0:
                    self._acts[name] = {"kind": type(module).__name__, "nonfinite": 1.0 - finite}
                return
            self._activation(name, module, out)
        return hook

    def _activation(self, name: str, module: nn.Module, out: torch.Tensor) -> None:
        # the same call site's peaks in this step's other forwards (a call site: the module and the how-manieth
        # call of it within one forward of the model, so a ReLU module reused after two layers is not pooled)
        site = (name, self._calls.get(name, 0))
        self._calls[name] = site[1] + 1
        stats = activation_stats(module, out, self.bins, self._pooled.get(site), conv1d_channels(self._feeder))
        if "_peaks" in stats:
            self._pooled[site] = stats.pop("_peaks")
        self._acts[name] = stats
        # a functional activation's name already says what it is and what ran before it (F.relu after fc1)
        functional = module is _STAND_IN.get(type(module).__name__)
        self._labels[name] = layer_label(name, None if functional else module, None if functional else self._feeder)
        self._storage[name] = (out.data_ptr(), out.numel())
        if out.requires_grad:
            out.register_hook(lambda g: self._acts[name].update(self._grad_stats(g)))

    def _feeding(self, module, args, out) -> None:
        self._feeder = module

    def _model_output_hook(self, module, args, out) -> None:
        """Mark the activations whose output is the model's own output (or a view of it): a Sigmoid ending an
        autoencoder of binary pixels, a Tanh ending a generator. Saturating there is the fit of targets at the
        activation's bounds, not a hidden unit that stopped learning."""
        self._calls, self._feeder = {}, None  # a new forward: call sites count from the first again
        outputs = {(t.data_ptr(), t.numel()) for t in leaves(out) if isinstance(t, torch.Tensor)}
        for name, where in getattr(self, "_storage", {}).items():
            if where in outputs and name in self._acts:
                self._acts[name]["output"] = True
        self._heads |= {name for name, where in self._layer_out.items() if where in outputs}

    def _grad_stats(self, g: torch.Tensor) -> dict:
        g = g.detach()  # a gradient with a graph of its own (torch.autograd.grad(..., create_graph=True))
        mean = float(g.mean())
        std = _std(g, mean) if math.isfinite(mean) else math.nan
        bad = 0.0 if math.isfinite(std) else 1.0 - _finite_fraction(g)
        return {"grad_std": std, "grad_hist": _hist(g, self.bins), "grad_nonfinite": bad}

    def on_fit_start(self, state: State) -> None:
        self._remove()  # hooks left by a fit that ended in an exception
        self.records, self.warnings, self._max_lr, self._first_loss = [], [], 0.0, None
        # weights that start at zero (a LoRA adapter's B, a zero-initialized projection): ||dw|| / ||w|| divides by
        # a norm that only the updates made, so it is large at any rate; their ratio is left out
        self.zero_start = {n for n, p in state.model.named_parameters()
                           if p.requires_grad and not nn.parameter.is_lazy(p) and p.dim() >= 2
                           and not bool(p.detach().any())}  # (a lazy module's weights are made later)
        self.zero_norms = zero_scaled_norms(state.model)  # a residual branch's last norm started at 0 (by design)
        self._module_order = {name: i for i, (name, _) in enumerate(state.model.named_modules())}
        self._labels = weighted_labels(state.model)

    def _install(self, model: nn.Module) -> None:
        self._remove()
        self._storage, self._calls, self._pooled, self._feeder = {}, {}, {}, None
        self._layer_out, self._heads = {}, set()
        self._hooks = [m.register_forward_hook(outside_transforms(self._forward_hook(name)))
                       for name, m in model.named_modules() if isinstance(m, _WATCHED + _LAYERS)]
        self._hooks.append(model.register_forward_hook(outside_transforms(self._model_output_hook)))
        # the weighted layer that ran last feeds the next activation: a Conv1d's (N, C, L) map is read per channel
        self._hooks += [m.register_forward_hook(outside_transforms(self._feeding)) for m in model.modules()
                        if isinstance(m, _FEEDERS)]
        if calls_functions(model):  # a user's module may call F.relu, torch.tanh, x.sigmoid() in its forward
            self._functional = FunctionalActivations(
                model, lambda name, kind, out: self._activation(name, _STAND_IN[kind], out))
            self._functional.__enter__()
        # a compiled model runs the observed step uncompiled: hooks traced into its graph would recompile it
        self._recompile = suspend_compiled(model)

    def _remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []
        if self._functional is not None:
            self._functional.__exit__(None, None, None)
            self._functional = None
        if self._recompile is not None:
            self._recompile()
            self._recompile = None

    # -- the cadence ---------------------------------------------------------------------------------------
    def on_batch_end(self, state: State) -> None:
        if getattr(self, "_first_loss", None) is None and state.batch_loss is not None:
            self._first_loss = abs(_as_float(state.batch_loss))  # one sync, once: the reference for "converged"
        if self._armed:
            self._remove()  # hooks live for one observed step only: no cost on the others
            self._record(state)
            self._armed, self._retries = False, 0
        if (state.step + 1) % self.every == 0:
            # the next step is observed whole: its forward (hooks), backward (grads) and update (vs this copy)
            self._snapshot = {n: p.detach().clone() for n, p in state.model.named_parameters() if p.requires_grad}
            self._acts = {}
            self._armed = True
            self._install(state.model)

    def skipped_step(self, state: State) -> bool:
        """The loop did not update on this step because its gradients were not finite (AMP's GradScaler skips such
        a step): an observation in progress is dropped and the next step observed instead. Returns whether it was
        (at most 50 times in a row: a loop that never gets finite gradients is then reported)."""
        if not self._armed or self._retries >= 50:
            return False
        bad = any(a.get("grad_nonfinite", 0.0) > 0 or a.get("nonfinite", 0.0) > 0 for a in self._acts.values())
        bad = bad or any(p.grad is not None and not p.grad.is_sparse and not bool(torch.isfinite(p.grad).all())
                         for p in state.model.parameters())
        if not bad:
            return False
        self._retries += 1
        self._acts = {}
        self._install(state.model)  # the same snapshot: the weights did not change
        return True

    def _record(self, state: State) -> None:
        grads, updates = self._step_norms(state.model)
        lr = float(state.optimizer.param_groups[0]["lr"])
        self._max_lr = max(getattr(self, "_max_lr", 0.0), lr)
        self._stops_itself = isinstance(state.optimizer, torch.optim.LBFGS)  # its own tolerances end its steps
        loss = _as_float(state.batch_loss) if state.batch_loss is not None else None
        record = {"step": state.step, "epoch": state.epoch, "lr": lr, "activations": self._acts, "grad_rms": grads,
                  "update_ratio": updates, "loss": loss, "heads": sorted(self._heads)}
        self.records.append(record)
        if self.path is not None:
            from trainwell.rundir import append_jsonl

            append_jsonl(self.path, record)
        self._snapshot = None
        self._check(record)

    def _step_norms(self, model: nn.Module) -> tuple[dict[str, float], dict[str, float]]:
        """The observed step's gradient RMS per parameter tensor and update/weight ratio ``||dw|| / ||w||`` per
        weight tensor (against the copy taken when the monitor armed), all in one transfer: torch's
        ``_foreach_norm`` computes every norm in one call where the tensors are dense and on one device."""
        params = dict(model.named_parameters())
        taken = [(name, params[name], before) for name, before in (self._snapshot or {}).items()]
        graded = [(name, p) for name, p, _ in taken if p.grad is not None]
        # weights only: a zero-initialized bias has no meaningful ratio; nor has a weight that started at zero
        weights = [(name, p.detach(), before) for name, p, before in taken
                   if p.dim() >= 2 and name not in getattr(self, "zero_start", ())]
        gs, ws, bs = [p.grad for _, p in graded], [w for _, w, _ in weights], [b for _, _, b in weights]
        if any(g.is_sparse for g in gs) or len({t.device for t in gs + ws}) > 1:
            norms = [g.norm() for g in gs] + [(w - b).norm() for w, b in zip(ws, bs, strict=True)] + \
                [b.norm() for b in bs]
            values = [float(v) for v in norms]
        else:
            norms = [*(torch._foreach_norm(gs) if gs else ()),
                     *(torch._foreach_norm(torch._foreach_sub(ws, bs)) + torch._foreach_norm(bs) if ws else ())]
            values = torch.stack(norms).tolist() if norms else []
        k, m = len(gs), len(ws)
        grads = {name: v / math.sqrt(p.numel()) for (name, p), v in zip(graded, values[:k], strict=True)}
        updates = {name: v / max(size, 1e-12)
                   for (name, _, _), v, size in zip(weights, values[k:k + m], values[k + m:], strict=True)}
        return grads, updates

    def _warn(self, kind: str, where: str, step: int, value: str, advice: str) -> None:
        if any(w["kind"] == kind and w["where"] == where for w in self.warnings):
            return  # record the first appearance only
        label = getattr(self, "_labels", {}).get(where)
        self.warnings.append({"kind": kind, "where": where, "label": label, "step": step, "value": value,
                              "advice": advice})

    def _check(self, r: dict) -> None:
        step = r["step"]
        for name, a in r["activations"].items():
            if a.get("nonfinite", 0.0) > 0:
                self._warn("non-finite activations", name, step, f"{a['nonfinite']:.0%} NaN/Inf",
                           "the forward pass overflows or divides by zero here: lower the learning rate, clip "
                           "gradients, normalize the inputs, or guard log/exp/division in this layer")
            if a.get("grad_nonfinite", 0.0) > 0:
                self._warn("non-finite gradients", name, step, f"{a['grad_nonfinite']:.0%} NaN/Inf in the gradient",
                           "lower the learning rate or clip gradients (and check the loss and inputs)")
            if a.get("dead", 0.0) > self.dead_warn:
                output = a.get("output")  # the model's scores themselves: a ReLU after the last layer
                self._warn("dead ReLUs", name, step, f"{a['dead']:.0%} of units never active" +
                           (f", {OUTPUT_UNITS}" if output else ""),
                           OUTPUT_ADVICE if output else self._dead_advice(name))
            if a.get("saturated", 0.0) > self.saturation_warn and not a.get("output"):
                self._warn("saturated units", name, step, f"{a['saturated']:.0%} saturated",
                           "use Xavier init, normalize the inputs, or a smaller learning rate")
        ratio = _depth_ratio([(n, g) for n, g in r["grad_rms"].items() if n.endswith("weight")],
                             r.get("heads", ()), self.depth_ratio)
        if ratio is not None:
            if ratio < self.depth_ratio:
                self._warn("vanishing gradients", _first_weight(r), step, f"first/last gradient RMS {ratio:.2g}",
                           "use He/Xavier init, ReLU instead of saturating units, normalization or skip connections")
            elif ratio > 1 / self.depth_ratio:
                self._warn("exploding gradients", _first_weight(r), step, f"first/last gradient RMS {ratio:.2g}",
                           "lower the learning rate, clip gradients, or use a smaller init")
        bad = [n for n, g in r["grad_rms"].items() if not math.isfinite(g)]
        if bad:
            self._warn("non-finite gradients", bad[0], step, "NaN/Inf gradient",
                       "lower the learning rate or clip gradients (and check the loss and inputs)")
        ratios = sorted(v for v in r["update_ratio"].values() if math.isfinite(v))
        # the tensors this step moved: with optimizers stepped in turn (a GAN) the others' ratio is 0 on this step
        ratios = [v for v in ratios if v > 0] or ratios
        # a converged model is not a slow one: no gradient, or a loss near 0 relative to its start, is not
        # "raise the LR"
        first = getattr(self, "_first_loss", None)
        loss = r.get("loss")
        converged = (not any(g > 0 for g in r["grad_rms"].values())
                     or (loss is not None and first is not None and abs(loss) <= 1e-3 * max(first, 1e-12)))
        # under L-BFGS a step that moved no weight at all is the optimizer stopping itself once its tolerance_grad /
        # tolerance_change is met, not a rate too low (SGD's rate of 1e-9 also moves no float32 weight: too low)
        converged = converged or (getattr(self, "_stops_itself", False) and bool(ratios) and
                                  not any(v > 0 for v in ratios))
        if ratios:
            # the middle tensor on the side judged (an even count has two): half the tensors at least lie beyond
            # the band, so of a small model's two weights (an embedding and its head) one alone is not the rate's
            low, high = ratios[(len(ratios) - 1) // 2], ratios[len(ratios) // 2]
            lo, hi = self.update_range
            if low > hi:
                self._warn("update/weight ratio", UPDATES, step, f"median update/weight {low:.2g} over "
                           f"{counted(len(ratios), 'weight tensor')}{self._zero_start_note()}",
                           "updates are large (healthy ~1e-3): lower the learning rate")
            elif high < lo and r["lr"] >= 0.5 * self._max_lr and not converged:  # nor while a schedule anneals
                self._warn("update/weight ratio", UPDATES, step, f"median update/weight {high:.2g} over "
                           f"{counted(len(ratios), 'weight tensor')}",
                           "updates are tiny (healthy ~1e-3): raise the learning rate")

    def _dead_advice(self, site: str) -> str:
        """The advice for dead ReLUs at ``site``: within a residual block whose last normalization's scale started
        at zero (its branch outputs 0 at first, so a layer reading it sees one input for every example and its
        units with a negative bias start dead), that cause; else the learning rate's and the init's."""
        norms = within_block(site, getattr(self, "zero_norms", []), getattr(self, "_module_order", {}))
        if norms:
            feeder = site.split("after ", 1)[1].split(" #", 1)[0] if "after " in site else site
            return silent_branch_advice(norms, feeder)
        return "lower the learning rate, use He init with a small positive bias, or leaky ReLU"

    def _zero_start_note(self) -> str:
        """Which weights the update/weight ratio leaves out because they started at zero ('' if none)."""
        names = sorted(getattr(self, "zero_start", ()))
        if not names:
            return ""
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        return f" (left out: {shown}, which started at zero, so ||dw|| / ||w|| is large at any rate)"

    def on_fit_end(self, state: State) -> None:
        self._remove()

    # -- results -------------------------------------------------------------------------------------------
    def verdicts(self) -> list[Verdict]:
        if not self.records and not self.warnings:
            return [Verdict("monitors", "skip", f"skipped: no step observed yet (one in {self.every})", "-", "")]
        if not self.warnings:
            return [Verdict("monitors", "pass", f"{counted(len(self.records), 'snapshot')} of the network (one every "
                            f"{self.every} steps), no warnings{self._zero_start_note()}",
                            "no dead/saturated layers, balanced gradients, update/weight ~1e-3")]
        return [Verdict(f"monitor: {w['kind']}", "fail", f"in layer {_named(w)} at step {w['step']}: {w['value']}",
                        "finite values", w["advice"]) if w["kind"].startswith("non-finite") else
                self._revived(w) or self._settled(w) or self._fitted(w) or
                Verdict(f"monitor: {w['kind']}", "warn", f"{_named(w)} at step {w['step']}: {w['value']}",
                        self._expected(w["kind"]), w["advice"]) for w in self.warnings]

    def _expected(self, kind: str) -> str:
        """What a healthy network shows for the monitor ``kind`` (its warning's threshold)."""
        lo, hi = self.update_range
        return {"dead ReLUs": f"at most {self.dead_warn:.0%} of a layer's units never active",
                "saturated units": f"at most {self.saturation_warn:.0%} of a layer's units saturated",
                "vanishing gradients": f"first/last gradient RMS above {self.depth_ratio:g}",
                "exploding gradients": f"first/last gradient RMS below {1 / self.depth_ratio:g}",
                "update/weight ratio": f"median update/weight between {lo:g} and {hi:g} (healthy ~1e-3)"}.get(kind, "-")

    def _revived(self, w: dict) -> Verdict | None:
        """An ``info`` for a dead-ReLU or saturated-units warning whose layer came back: at the last observed step
        after it, at most half the warning's threshold of its units is dead (a decoder fed a VQ-VAE's few codes at
        first) or saturated. Units that are dead get no gradient and stay so; a layer that revives was short of
        varied inputs, not broken. A saturated share read on one small batch (one bag of a few instances per
        step, as attention-based multiple-instance learning trains) moves with that batch: a layer that is
        saturated on one snapshot and far below the threshold at the last one is not stuck."""
        key, limit = {"dead ReLUs": ("dead", self.dead_warn),
                      "saturated units": ("saturated", self.saturation_warn)}.get(w["kind"], (None, None))
        if key is None:
            return None
        last = next((r for r in reversed(self.records) if r["step"] > w["step"] and
                     math.isfinite(r["activations"].get(w["where"], {}).get(key, math.nan))), None)
        if last is None or last["activations"][w["where"]][key] > limit / 2:
            return None
        if key == "saturated":
            return Verdict(f"monitor: {w['kind']}", "info", f"{_named(w)} at step {w['step']}: {w['value']}; at "
                           f"step {last['step']}: {last['activations'][w['where']][key]:.0%} (out of saturation "
                           "again: the saturation came from that one batch)", self._expected(w["kind"]),
                           "nothing to do for this layer: a layer that saturates for good stays saturated on the "
                           "later batches; if it recurs, normalize what feeds it")
        return Verdict(f"monitor: {w['kind']}", "info", f"{_named(w)} at step {w['step']}: {w['value']}; at step "
                       f"{last['step']}: {last['activations'][w['where']][key]:.0%} (the units came back: they "
                       "were not dead)", self._expected(w["kind"]), "nothing to do for this layer: dead units get no "
                       "gradient and stay dead, so units that came back were only idle for a while")

    def _fitted(self, w: dict) -> Verdict | None:
        """An ``info`` for a saturated-units warning whose layer the fit drove to its bounds while the loss fell far
        (:func:`~trainwell.doctor.fitted_saturation.fitted_bounds`)."""
        how = fitted_bounds(w, self.records, self.saturation_warn)
        if how is None:
            return None
        return Verdict(f"monitor: {w['kind']}", "info", f"{_named(w)} at step {w['step']}: {w['value']}; {how}",
                       self._expected(w["kind"]), "nothing to do where these values are meant to reach the bounds "
                       "(generated weights, gates); a hidden layer's units saturated this way pass almost no gradient "
                       "any more: if the loss stalls, a smaller learning rate or normalization keeps them in range")

    def _settled(self, w: dict) -> Verdict | None:
        """An ``info`` for a "large" update/weight warning whose steps settled: at every observed step from the middle
        of the run on, the middle ratio is inside the band, at the last one at most a tenth of its top (10x cs231n's
        healthy ~1e-3), and the last observed loss is below the first. Weights started far below their usual scale
        (word2vec's uniform +-0.5/d input vectors, Mikolov et al. 2013) make ||dw|| / ||w|| large on the first
        steps at a healthy rate, until they grow; a rate too high keeps the ratio large, or the loss does not
        fall."""
        if w["kind"] != "update/weight ratio" or not w["value"].startswith("median") or \
                "updates are large" not in w["advice"]:
            return None
        late = [r for r in self.records[len(self.records) // 2 :] if r["step"] > w["step"]]
        middles = [_middle(r["update_ratio"]) for r in late]
        losses = [r["loss"] for r in self.records if r.get("loss") is not None and math.isfinite(r["loss"])]
        if not late or any(m is None or m > self.update_range[1] for m in middles) or \
                middles[-1] > self.update_range[1] / 10 or len(losses) < 2 or losses[-1] >= losses[0]:
            return None
        return Verdict(f"monitor: {w['kind']}", "info", f"{_named(w)} at step {w['step']}: {w['value']}; from step "
                       f"{late[0]['step']} on at most {max(middles):.2g} (the steps settled as the weights grew: "
                       "large only against a small initialization, not a rate too high)", "-", "")

    def on_epoch_start(self, state: State) -> None:
        if self._armed and not self._hooks:  # resumed between arming and the observed step
            self._install(state.model)

    def state_dict(self) -> dict:
        armed = {"armed": self._armed, "snapshot": self._snapshot, "max_lr": getattr(self, "_max_lr", 0.0),
                 "zero_start": sorted(getattr(self, "zero_start", ()))}  # a resumed fit does not call on_fit_start
        if self.path is not None:  # the records live in the file; the checkpoint says how many are valid
            return {"n_records": len(self.records), "warnings": self.warnings, **armed}
        return {"records": self.records, "warnings": self.warnings, **armed}

    def load_state_dict(self, state: dict) -> None:
        self.warnings = list(state.get("warnings", []))
        self._armed, self._snapshot = bool(state.get("armed", False)), state.get("snapshot")
        self._max_lr = float(state.get("max_lr", 0.0))
        self.zero_start = set(state.get("zero_start", ()))  # the weights that were zero when watching began
        if "records" in state:
            self.records = list(state["records"])
            return
        from trainwell.rundir import atomic_write_text, read_jsonl

        self.records = read_jsonl(self.path)[: state.get("n_records", 0)] if self.path is not None else []
        if self.path is not None:  # drop records newer than the checkpoint
            import json

            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in self.records))


def _named(warning: dict) -> str:
    """How a warning's row names where it was read: the layer's label (its name and what it is), or the name of a
    place that is no layer (the updates over all weight tensors)."""
    where = warning["where"]
    return warning.get("label") or (where if where == UPDATES else f"'{where}'")


def _middle(ratios: dict) -> float | None:
    """The upper middle of a record's finite update/weight ratios (the tensors that moved), as the warning reads
    them; None for none."""
    values = sorted(v for v in ratios.values() if math.isfinite(v))
    values = [v for v in values if v > 0] or values
    return values[len(values) // 2] if values else None
