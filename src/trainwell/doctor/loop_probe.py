"""Hooks that read what a hand-written training loop actually does, for :func:`trainwell.doctor.watch`.

On every step (a few Python operations): the optimizer's learning rate when it steps, whether it stepped at all,
and the module's ``training`` flag on each forward pass. On observed steps (the first three, then one in
``every``): each parameter's gradient as each ``backward()`` delivers it (tensor hooks) against what ``.grad``
holds when ``optimizer.step()`` runs (a step pre-hook), the model's output and the gradient the loss sends back
to it (:mod:`trainwell.doctor.loss_form`), and the batch's inputs.

From these, :mod:`trainwell.doctor.loop_verdicts` names the loop's bugs: gradients that accumulate because
``zero_grad()`` is missing, or that are cleared between ``backward()`` and ``step()``; parameters that receive
gradients but that the optimizer does not hold; parameters that never receive one; clipping on every step;
gradient accumulation without dividing the loss; the wrong mode; a schedule that collapses the rate.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainwell.doctor import outputs as O
from trainwell.doctor.loss_form import read_form

_MODE_SENSITIVE = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


def _first_tensor(args, kwargs) -> torch.Tensor | None:
    for value in list(args) + list(kwargs.values()):
        found = O.leaves(value) if not isinstance(value, torch.Tensor) else [value]
        if found:
            return found[0]
    return None


class LoopProbe:
    """Hooks on a user's model and optimizer. ``attach()`` installs them, ``detach()`` removes every one."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, every: int = 50):
        self.model, self.optimizer, self.every = model, optimizer, max(1, int(every))
        self.named = dict(model.named_parameters())
        self.owned = {id(p) for g in optimizer.param_groups for p in g["params"]}
        model_ids = {id(p) for p in self.named.values()}
        self.foreign = [tuple(p.shape) for g in optimizer.param_groups for p in g["params"] if id(p) not in model_ids]
        self.mode_sensitive = [n for n, m in model.named_modules() if isinstance(m, _MODE_SENSITIVE)]
        self.opt_steps = 0
        self.lrs: list[float] = []
        self.steps: list[dict] = []  # one record per observed optimizer step
        self.received: set[str] = set()  # parameters that got a gradient on an observed step
        self.inputs: list[dict] = []  # observed training forwards: scale and a fingerprint
        self.train_steps = self.eval_mode_steps = 0
        self.validations = self.train_mode_validations = 0
        self.unregistered: list[str] | None = None
        self._forwards: list[tuple[bool, bool]] = []  # (training, grad enabled) since the last step
        self._incoming: dict[int, torch.Tensor] = {}
        self._backwards: dict[int, int] = {}
        self._outs: list[list] = []
        self._hooks: list = []
        self._grad_hooks: list = []
        self._armed = False

    @property
    def frozen(self) -> list[str]:
        """The parameters that do not require a gradient now."""
        return [n for n, p in self.named.items() if not p.requires_grad]

    # -- hooks ---------------------------------------------------------------------------------------------
    def attach(self) -> None:
        self._hooks = [self.model.register_forward_pre_hook(self._pre_forward, with_kwargs=True),
                       self.model.register_forward_hook(self._post_forward),
                       self.optimizer.register_step_pre_hook(self._pre_step),
                       self.optimizer.register_step_post_hook(self._post_step)]
        self._arm()

    def detach(self) -> None:
        self._disarm()
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _observed(self, k: int) -> bool:
        return k < 3 or (k + 1) % self.every == 0

    def _arm(self) -> None:
        self._incoming, self._backwards, self._outs = {}, {}, []
        self._grad_hooks = [p.register_hook(self._grad_hook(id(p))) for p in self.named.values() if p.requires_grad]
        self._armed = True

    def _disarm(self) -> None:
        for h in self._grad_hooks:
            h.remove()
        self._grad_hooks, self._armed = [], False

    def _grad_hook(self, pid: int):
        def hook(g):
            seen = self._incoming.get(pid)
            self._incoming[pid] = g.detach().clone() if seen is None else seen + g.detach()
            self._backwards[pid] = self._backwards.get(pid, 0) + 1
        return hook

    def _pre_forward(self, module, args, kwargs):
        grad = torch.is_grad_enabled()
        self._forwards.append((module.training, grad))
        if self._armed and grad and len(self.inputs) < 64:
            x = _first_tensor(args, kwargs)
            if x is not None:
                self.inputs.append(_input_stats(x, self.opt_steps))

    def _post_forward(self, module, args, out):
        if not (self._armed and torch.is_grad_enabled()):
            return
        z = O.logits(out)
        if isinstance(z, torch.Tensor) and z.is_floating_point() and z.requires_grad and len(self._outs) < 16:
            entry = [z.detach().clone(), None]
            self._outs.append(entry)

            def keep(g, entry=entry):
                entry[1] = g.detach().clone() if entry[1] is None else entry[1] + g.detach()
            z.register_hook(keep)

    def _pre_step(self, optimizer, args, kwargs) -> None:
        lr = optimizer.param_groups[0].get("lr", math.nan)
        self.lrs.append(float(lr))
        training = [mode for mode, grad in self._forwards if grad]
        if training:
            self.train_steps += 1
            if self.mode_sensitive and not training[-1]:
                self.eval_mode_steps += 1
        self._forwards = []
        if self._armed:
            self.steps.append(self._read_step())

    def _post_step(self, optimizer, args, kwargs) -> None:
        self.opt_steps += 1
        self._disarm()
        if self._observed(self.opt_steps):
            self._arm()

    # -- what one observed step did ------------------------------------------------------------------------
    def _read_step(self) -> dict:
        dot = n_g = n_inc = r_p = p_p = r_r = 0.0
        present = cleared = 0
        not_owned, backwards = [], 0
        self.owned = {id(p) for g in self.optimizer.param_groups for p in g["params"]}  # add_param_group counts
        for name, p in self.named.items():
            inc = self._incoming.get(id(p))
            if inc is None:
                continue
            if bool(inc.any()):
                self.received.add(name)
                if id(p) not in self.owned:
                    not_owned.append(name)
            backwards = max(backwards, self._backwards.get(id(p), 0))
            present += 1
            g = p.grad
            if g is None or not bool(g.any()):
                cleared += bool(inc.any())
                continue
            g64, i64, w64 = g.detach().double(), inc.double(), p.detach().double()
            dot += float((g64 * i64).sum())
            n_g += float((g64 * g64).sum())
            n_inc += float((i64 * i64).sum())
            r = g64 - i64  # what was added to .grad besides this step's backward passes
            r_p += float((r * w64).sum())
            p_p += float((w64 * w64).sum())
            r_r += float((r * r).sum())
        scale = dot / n_inc if n_inc > 0 else math.nan
        # an addition proportional to the weights is weight decay written into .grad by hand, not old gradients
        decay = r_p / p_p if p_p > 0 else 0.0
        decay_fit = r_r > 0 and max(r_r - decay * r_p, 0.0) <= 1e-6 * r_r
        resid = math.sqrt(max(n_g - 2 * scale * dot + scale * scale * n_inc, 0.0) / n_g) if n_g > 0 else math.nan
        forms = [read_form(z, g) for z, g in self._outs if g is not None]
        known = [f for f in forms if f["form"] is not None]
        return {"step": self.opt_steps, "present": present, "cleared": cleared, "scale": scale, "resid": resid,
                "grad_norm": math.sqrt(n_g), "incoming_norm": math.sqrt(n_inc), "backwards": backwards,
                "manual_decay": decay if decay_fit and decay > 0 else None,
                "not_owned": not_owned, "forwards": len(self._outs),
                "form": known[0]["form"] if known and len(known) == len(forms) else None,
                "loss_weight": sum(f["weight"] for f in known) if known and len(known) == len(forms) else None,
                "rows": sum(f["rows"] for f in known), "classes": known[0]["classes"] if known else None,
                "first_logits": self._outs[0][0] if self.opt_steps == 0 and self._outs else None}

    def validation_seen(self) -> None:
        """Called by ``Watch.validate``: the forwards since the last step were validation forwards."""
        self.validations += 1
        if self.mode_sensitive and any(mode for mode, _ in self._forwards):
            self.train_mode_validations += 1
        self._forwards = []


def _input_stats(x: torch.Tensor, step: int) -> dict:
    xd = x.detach()
    stats = {"step": step, "shape": tuple(xd.shape), "floating": xd.is_floating_point()}
    flat = xd.reshape(-1).float()
    stats["sum"] = float(flat.sum()) if flat.numel() else 0.0
    stats["head"] = flat[:64].tolist()
    if xd.is_floating_point() and flat.numel() > 1:
        stats["std"], stats["max_abs"] = float(flat.std()), float(flat.abs().max())
    return stats
