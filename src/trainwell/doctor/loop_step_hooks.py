"""The optimizer and gradient hooks of :class:`~trainwell.doctor.loop_probe.LoopProbe`: each parameter's
gradient as each ``backward()`` delivers it, what ``.grad`` holds when ``optimizer.step()`` runs, the step's
forwards counted (train or eval mode, frozen BatchNorm layers), low-precision updates lost, and a validation's
forwards set apart."""

from __future__ import annotations

import math

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from trainwell.doctor.backward_passes import accumulate_node, fills_grad
from trainwell.doctor.dropped_batches import dropped_run
from trainwell.doctor.other_optimizers import read_other_step
from trainwell.doctor.sampled_validation import mc_dropout
from trainwell.doctor.step_forwards import drop_records
from trainwell.doctor.step_record import read_step
from trainwell.doctor.training_batches import switched_to_eval, validation_share

_LOW_PRECISION = (torch.bfloat16, torch.float16)
#: optimizers whose step moves each element by about the rate whatever its gradient's size, so one scale on every
#: gradient (clipping) changes the update little (Kingma & Ba 2015, section 2.1)
ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad, torch.optim.Adamax,
             torch.optim.NAdam, torch.optim.RAdam, torch.optim.Adadelta)


class StepHooks:
    """The step pre- and post-hooks of the first optimizer, every optimizer's step while armed, and the
    gradient hooks of an observed step; the state they read and write is
    :class:`~trainwell.doctor.loop_probe.LoopProbe`'s."""

    def _any_step(self, optimizer, args, kwargs) -> None:
        """Every optimizer's step while armed (a global hook): another player's (a GAN's discriminator) takes the
        gradients delivered before it."""
        if self.turns is not None:
            self.turns.append((self._last_backward, id(optimizer)))
        if optimizer is not self.optimizer:
            self._tick += 1
            self._other_step = self._tick

    def _any_pre_step(self, optimizer, args, kwargs) -> None:
        """Every optimizer's step while armed, before it runs (a global hook): another optimizer given to the watch
        has its ``.grad`` read against what was delivered to it (:mod:`~trainwell.doctor.other_optimizers`)."""
        index = next((i for i, o in enumerate(self.optimizers) if o is optimizer), 0)
        if index and index not in self._others_read and len(self.other_reads) < 256:
            read = read_other_step(self, index, optimizer, self._incoming, self.opt_steps)
            if read is not None:  # none delivered yet (it steps before this window's backward): read later
                self._others_read.add(index)
                self.other_reads.append(read)

    def _trail(self) -> None:
        """At the first optimizer's observed step: the other optimizers that step after it with nothing delivered
        to their ``.grad`` in between (one backward, then every optimizer's step) are read against this window's
        deliveries until the next ``w.step`` call."""
        left = [o for i, o in enumerate(self.optimizers) if i and i not in self._others_read]
        if not left:
            return
        grads = {id(p): _grad_key(p) for o in left for g in o.param_groups for p in g["params"]}
        incoming, done, step = self._incoming, set(self._others_read), self.opt_steps - 1

        def read(optimizer, args, kwargs) -> None:
            index = next((i for i, o in enumerate(self.optimizers) if o is optimizer), 0)
            if not index or index in done or len(self.other_reads) >= 256:
                return
            done.add(index)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            if all(grads.get(id(p)) == _grad_key(p) for p in params):  # no backward or zero_grad since
                found = read_other_step(self, index, optimizer, incoming, step)
                if found is not None:
                    self.other_reads.append(found)
        self.untrail()
        self._trailing = register_optimizer_step_pre_hook(read)

    def untrail(self) -> None:
        """Remove the hook :meth:`_trail` placed (at ``w.step``)."""
        if self._trailing is not None:
            self._trailing.remove()
            self._trailing = None

    def _grad_hook(self, p: torch.Tensor):
        pid = id(p)
        accumulate = accumulate_node(p)

        def hook(g):  # runs before ``g`` is added to p.grad: p.grad is what the earlier passes left
            if not fills_grad(accumulate):  # torch.autograd.grad(loss, params): MAML's inner step, no .grad
                return
            self._tick += 1
            self._last_backward = self._tick
            seen = self._incoming.get(pid)
            if seen is not None and _nonzero(seen):
                tick, version = self._delivered[pid]
                stepped = self._other_step > tick  # another optimizer stepped since (a GAN's other player)
                if _cleared(p.grad):  # used if it stepped, or if the tensor changed in place (SAM's ascent step)
                    self._cleared_since(pid, stepped or p._version != version)
                    seen = None
                elif stepped:
                    self._crossed.add(pid)  # .grad keeps a pass from before another optimizer's step
            self._incoming[pid] = g.detach().clone() if seen is None else seen + g.detach()
            self._outs.filled()
            self._backwards[pid] = self._backwards.get(pid, 0) + 1
            self._kept[pid] = self._kept.get(pid, 0) + 1
            self._delivered[pid] = (self._tick, p._version)
        return hook

    def _cleared_since(self, pid: int, handed_on: bool) -> None:
        """``.grad`` was cleared (``zero_grad()``) after earlier passes delivered to it: what they delivered is gone
        from it. Passes that came before another optimizer's step (a GAN's discriminator's loss reaching the
        generator) or before the tensor changed in place (SAM's ascent step) were used and are not this step's;
        passes with neither after them were thrown away (zero_grad inside a gradient accumulation)."""
        self._kept[pid] = 0
        if handed_on:
            self._outs.handed_on()
            self._backwards[pid] = 0
            self._crossed.discard(pid)

    def _pre_step(self, optimizer, args, kwargs) -> None:  # the first optimizer's
        self.validation_losses.paused()  # entered after a forward in eval mode with gradients: a training step's
        # step(closure) (L-BFGS): the forward and backward passes run inside the step, so they are read after it
        self._closure_step = any(callable(a) for a in args) or callable(kwargs.get("closure"))
        if self.opt_steps == 0 and not self._closure_step:
            self.stepped_before_forward = self._last_forward == 0
        lr = optimizer.param_groups[0].get("lr", math.nan)
        self.lrs.append(float(lr))
        if len(optimizer.param_groups) > 1:
            self.group_lrs.append([float(g.get("lr", math.nan)) for g in optimizer.param_groups])
        if self._closure_step:
            return
        self._count_forwards()
        if self._armed:
            self._settle_forwards()
            self.max_lrs = [g.get("max_lr") for g in optimizer.param_groups]
            self.initial_lrs = [g.get("initial_lr") for g in optimizer.param_groups]
            self.steps.append(read_step(self))
            self._low_before = [(p, p.detach().clone()) for p in self.named.values()
                                if p.dtype in _LOW_PRECISION and p.grad is not None and not p.grad.is_sparse]

    def _count_forwards(self) -> None:
        """The step's forwards with gradients: one training step, and whether its last forward ran in eval mode."""
        training = [mode for mode, grad, _, _ in self._forwards if grad]
        # of them, those a backward reached: a forward after the backward (an accuracy logged in eval mode with
        # gradients) is not the step's
        reached = [mode for mode, grad, hit, _ in self._forwards if grad and hit[0]]
        if len(self.dropped_forwards) < 64:  # train-mode forwards with gradients no backward reached
            self.dropped_forwards.append(dropped_run([mode and grad and not hit[0] for mode, grad, hit, _ in
                                                      self._forwards], self._other_steps))
        if training:
            self.train_steps += 1
            eval_mode = not (reached or training)[-1]
            self.eval_mode_steps += eval_mode
            self.eval_runs.stepped(eval_mode)
            frozen = self._frozen_norms() if self._norms_training else set()
            if frozen:
                self.frozen_norm_steps += 1
                self.frozen_norms |= frozen
                for n in frozen - self.frozen_weights.keys():
                    self.frozen_weights[n] = self.norm_affine(n).clone()
        self._forwards, self._norms_training, self._sampled_inputs, self._other_steps = [], set(), [], []
        self.split_inputs.stepped()
        self.split_rows.stepped()
        self.validation_draws.stepped()
        self.validation_graphs.stepped()

    def _settle_forwards(self) -> None:
        """At an observed step's optimizer step: its training forwards are those a backward reached
        (:mod:`~trainwell.doctor.step_forwards`); what was recorded of the others is dropped."""
        kept, dropped = self.step_forwards.settle()
        for forward in kept:
            self.split_inputs.training(forward.x)
        drop_records(self, dropped, kept)

    def norm_affine(self, name: str) -> torch.Tensor:
        """The weight and bias of the BatchNorm layer ``name``, flattened into one tensor."""
        module = dict(self.norms)[name]
        return torch.cat([module.weight.detach().flatten(), module.bias.detach().flatten()])

    def _frozen_norms(self) -> set[str]:
        """Of the BatchNorm layers this step ran in train mode, those whose weight and bias do not train: they
        do not require a gradient, or no optimizer given to the watch holds them."""
        modules = dict(self.norms)
        affine = {n: (modules[n].weight, modules[n].bias) for n in self._norms_training}
        owned = self.held_now() if any(p.requires_grad for ps in affine.values() for p in ps) else set()
        return {n for n, ps in affine.items() if all(not p.requires_grad or id(p) not in owned for p in ps)}

    def _post_step(self, optimizer, args, kwargs) -> None:
        if self._closure_step:  # what the closure's last pass left in .grad, read now
            self._count_forwards()
            if self._armed:
                self._settle_forwards()
                self.max_lrs = [g.get("max_lr") for g in optimizer.param_groups]
                self.steps.append(read_step(self))
        self.opt_steps += 1
        if self._low_before:
            # an update the size of the gradient (SGD) loses what the unchanged elements' gradients hold; an
            # adaptive one (Adam) moves every element by about the rate, so each unchanged element counts once
            adaptive = isinstance(optimizer, ADAPTIVE)
            total = lost = 0.0
            for p, before in self._low_before:
                g = p.grad.detach().float() if p.grad is not None else torch.zeros(p.shape)
                weight = (g != 0).float() if adaptive else g * g
                total += float(weight.sum())
                lost += float((weight * (p.detach() == before)).sum())
            if total > 0:
                self.low_precision.append((str(self._low_before[0][0].dtype).removeprefix("torch."), lost / total))
            self._low_before = []
        if self._armed and len(self.optimizers) > 1:
            self._trail()
        self._disarm()
        if self._observed(self.opt_steps):
            self._arm()

    def validation_seen(self) -> None:
        """Called by ``Watch.validate``: the forwards since the last step were validation forwards. Those run
        without gradients are the validation's when there are any: a training forward may come before them (the
        epoch's leftover micro-batch under gradient accumulation, whose gradient the next ``zero_grad()`` drops); of
        them, those on a training batch (a training accuracy logged) are not, when others ran
        (:mod:`~trainwell.doctor.training_batches`)."""
        self.validations += 1
        self.validation_steps.append(len(self.lrs))
        self.unseen_validations += not self._forwards  # another model evaluated (an EMA copy), or a stored loss
        # the forwards without gradients, less those on a training batch (a training accuracy logged) when others ran
        # and less those in train mode beside eval-mode ones (a training accuracy on fresh training batches)
        no_grad = switched_to_eval(validation_share([mode for mode, grad, _, _ in self._forwards if not grad],
                                                    [on for _, grad, _, on in self._forwards if not grad]))
        if any(no_grad) and mc_dropout(self._sampled_inputs, [m for _, m in self.norms]):
            self.mc_dropout_validations += 1
        elif any(no_grad or switched_to_eval([mode for mode, _, _, _ in self._forwards])):
            self.train_mode_validations += 1
        self.split_inputs.validated()
        self.split_rows.validated()
        self.validation_draws.validated()
        # the forwards with gradients since the last step that no backward reached were the validation's
        drop_records(self, self.step_forwards.unreached(), self.step_forwards.forwards)
        # the validation's forwards: not a training step's that a backward reached (under ``trainwell watch`` the
        # validation is handed over at the next step, after its training forward)
        self.validation_graphs.validated(sum(not (grad and hit[0]) for _, grad, hit, _ in self._forwards))
        self._forwards, self._norms_training, self._sampled_inputs, self._other_steps = [], set(), [], []


def _cleared(grad: torch.Tensor | None) -> bool:
    """Whether ``.grad`` holds nothing: None (``zero_grad()``'s default) or zeros (``set_to_none=False``)."""
    return grad is None or (not grad.is_sparse and not bool(grad.any()))


def _grad_key(p: torch.Tensor) -> tuple[int, int] | None:
    """Which ``.grad`` tensor ``p`` holds and its version: it changes with any backward or ``zero_grad()``."""
    g = p.grad
    return None if g is None else (id(g), g._version)


def _nonzero(t: torch.Tensor) -> bool:
    return bool((t._values() if t.is_sparse else t).any())
