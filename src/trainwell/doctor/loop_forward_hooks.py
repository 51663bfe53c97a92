"""The forward hooks of :class:`~trainwell.doctor.loop_probe.LoopProbe`: what each forward pass of the watched
model shows (its mode, whether gradients are on, its inputs' scale and rows, the first weighted layer's input, the
module that gives the scores last, the outputs and heads whose gradients an observed step reads)."""

from __future__ import annotations

import math
import weakref

import torch
from torch import nn

from trainwell.doctor import game_players, registration
from trainwell.doctor import outputs as O
from trainwell.doctor.input_scale import first_layer_reads_input, nonzero_abs_quantile, norm_scale, storage_keys
from trainwell.doctor.row_labels import selectors
from trainwell.doctor.sampled_validation import fingerprint
from trainwell.doctor.step_readings import abs_quantile, forward_tensors, input_stats
from trainwell.doctor.validation_rows import example_rows, flat_bags

_HEADS = 3  # the outputs besides the class scores read on an observed forward, at most
#: the forwards' inputs recorded per observed step, at most: a policy called once per environment step makes
#: hundreds of forwards before one optimizer step, and the record is to span the run's observed steps
_INPUTS_PER_STEP = 8


def first_tensor(args, kwargs) -> torch.Tensor | None:
    for value in list(args) + list(kwargs.values()):
        found = O.leaves(value) if not isinstance(value, torch.Tensor) else [value]
        if found:
            return found[0]
    return None


class ForwardHooks:
    """The forward pre-hook and hook on the watched model and the layer hooks of an observed step; the state
    they read and write is :class:`~trainwell.doctor.loop_probe.LoopProbe`'s."""

    def _first_layer_input(self, module, args, out) -> None:
        if torch.is_grad_enabled() and not self.reading:
            self.step_forwards.first_layer(out)
        entry = self.inputs[-1] if self.inputs else None
        if entry is None or "layer_std" in entry or entry["step"] != self.opt_steps or not torch.is_grad_enabled():
            return
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        entry["layer_std"] = None  # the first weighted layer of this forward has been seen
        self._first_out = weakref.ref(out) if isinstance(out, torch.Tensor) else None
        if x is not None and x.is_floating_point() and x.numel() > 1:
            xd = x.detach().float()
            entry["layer_std"], entry["layer_q99"] = float(xd.std()), abs_quantile(xd)
            if first_layer_reads_input(x, self._forward_inputs):  # the model's own input, as it was given
                entry["layer_nz_q99"] = nonzero_abs_quantile(xd)

    def _first_layer_normalized(self, module, args) -> None:
        """The std a BatchNorm, LayerNorm or GroupNorm fed the first weighted layer's output makes of it across the
        examples (``norm_scale``)."""
        entry = self.inputs[-1] if self.inputs else None
        first = self._first_out() if self._first_out is not None else None
        if entry is None or first is None or "norm_scale" in entry or not args or args[0] is not first:
            return
        entry["norm_scale"] = norm_scale(module, first)

    def _pre_forward(self, module, args, kwargs):
        self.validation_losses.paused()  # the loss calls after a validation forward end with the next forward
        if self.reading:
            return
        grad = torch.is_grad_enabled()
        x = first_tensor(args, kwargs)
        self._input_rows = len(x) if isinstance(x, torch.Tensor) and x.dim() else None  # a validation's sequences
        on_training = not grad and self.training_batches.holds(x)  # a training batch's accuracy, logged
        self._forwards.append((module.training, grad, [False], on_training))
        if self.validation_losses.in_forward and not (grad and module.training):
            self.validation_losses.began(module.training, self._input_rows, on_training)
        if grad:
            self._norms_training.update(n for n, m in self.norms if m.training)
            self._tick += 1
            self._last_forward = self._tick
        if not grad:
            self.split_inputs.no_grad(x, on_training)
            self.split_rows.no_grad(example_rows(args, kwargs, x), on_training)
            self.validation_draws.no_grad(x, on_training, module.training)
            if module.training and not on_training:
                self._sampled_inputs.append(fingerprint(x))
            return
        self.training_batches.trained_on(x)
        if module.training:
            self.eval_runs.train_forward(x)
        self.split_rows.with_grad(example_rows(args, kwargs, x), flat_bags(args, kwargs, x))
        self.row_labels.forward(x, selectors(args, kwargs))
        self.random_states.forward_started(module, x)
        if not module.training:
            self.split_inputs.eval_with_grad(x)
            self.validation_draws.eval_with_grad(x)
            self.eval_runs.forward(x)
        forward = self.step_forwards.opened((args, kwargs), x, self._tick) if self._armed else None
        if x is None:
            return
        if self._armed:
            self.step_forward = forward.call if forward is not None else (args, kwargs)
        if self.batchnorm and module.training and x.dim() > 1 and len(x) == 1:
            self.single_example_forwards += 1
        # every training batch on a CPU (one pass over it, no device wait): NaN in a few rows of the data
        if self.nonfinite_input_step is None and x.device.type == "cpu" and x.is_floating_point() and \
                nonfinite(x.detach()):
            self.nonfinite_input_step = self.opt_steps
        self._read_game_input(x)
        if self._armed:
            self._record_observed(args, kwargs, forward)

    def _read_game_input(self, x: torch.Tensor) -> None:
        """Whether a training forward's input is another model's output (a GAN's generator's samples)."""
        # an input computed by trainable tensors (rare outside a GAN): its graph is read a few times at most
        if self.game is None and x.grad_fn is not None and self._game_reads < 8:
            self._game_reads += 1
            self._fed_by_another_model(x)
        if self.game is None and x.grad_fn is None:
            other = game_players.producer(self, x)
            if other is not None:
                self.game = (f"its inputs are the outputs of {other}, watched in another doctor.watch (a GAN's "
                             "generator's samples): it reads one player of a two-player game")

    def _record_observed(self, args, kwargs, forward) -> None:
        """An observed step's forward with gradients: its inputs' readings (kept with ``forward``, dropped if no
        backward reaches it) and, for the first one, the batch sampled for the mode."""
        if len(self.inputs) < 64 and \
                sum(e["step"] == self.opt_steps for e in self.inputs[-_INPUTS_PER_STEP:]) < _INPUTS_PER_STEP:
            self._forward_inputs = storage_keys(forward_tensors(args, kwargs))
            self.inputs.append(input_stats(forward_tensors(args, kwargs), self.opt_steps))
            if forward is not None:
                forward.entry = self.inputs[-1]
            if self.opt_steps == 0:
                self.input_leaves += [t for t in forward_tensors(args, kwargs) if t.requires_grad and t.grad_fn is None]
        if not self.mode_sensitive and self.mode_sample is None:
            self.mode_sample = self.step_forward  # the batch's tensors themselves (4 of their rows read at the report)

    def _fed_by_another_model(self, x: torch.Tensor) -> None:
        """An input computed by another module's parameters that no given optimizer steps: the watched model is
        a GAN's discriminator, fed the generator's samples."""
        leaves = registration.graph_leaves(x, limit=20_000)
        self.upstream |= {id(t) for t in leaves}
        if registration.other_models_parameters(self.model, leaves, self.held_now()):
            self.game = ("its inputs come from another model that no optimizer given to doctor.watch steps (a GAN's "
                         "generator; or pass a backbone's optimizer too)")

    def _last_output(self, name: str):
        def record(module, args, out) -> None:
            # the tensor kept till the forward ends (its id is not reused); a forward without gradients is not read
            if isinstance(out, torch.Tensor) and torch.is_grad_enabled():
                self._last_outs[id(out)] = (out, name, module)
        return record

    def _post_forward(self, module, args, out):
        """The end of a forward: its outputs read; after one without gradients or in eval mode, the loss calls that
        follow are read (a validation's). One hook, not two: each is a graph break in a compiled forward."""
        self._read_output(module, args, out)
        if not self.reading and not (module.training and torch.is_grad_enabled()):
            self.validation_losses.forwarded(module.training, self._input_rows,
                                             self._forwards[-1][2] if self._forwards else None,
                                             bool(self._forwards and self._forwards[-1][3]), out)

    def _read_output(self, module, args, out) -> None:
        if torch.is_grad_enabled() and not self.reading:
            game_players.produced(self, out)
            if not module.training:
                self.validation_graphs.forwarded(out)
            else:
                self.kept_outputs.forwarded(O.logits(out))
                self.validation_losses.training_output(out)
            if self._forwards:
                _on_backward(out, self._forwards[-1][2])
            self.split_rows.outputs(out)
        if not (self._armed and torch.is_grad_enabled()) or self.reading:
            return
        forward = self.step_forwards.latest()
        self.step_forwards.reach(forward, [out] if isinstance(out, torch.Tensor) else O.leaves(out))
        z = O.logits(out)
        self._output_shapes(out)
        if not isinstance(out, torch.Tensor) and not self.multi_output:  # heads besides the class scores
            self.multi_output = sum(t.is_floating_point() and t.requires_grad for t in O.leaves(out)) > 1
        kept = self._last_outs.get(id(z)) if isinstance(z, torch.Tensor) else None
        if kept is not None and kept[0] is z:
            if isinstance(kept[2], nn.Sigmoid):
                self.scores_sigmoid = kept[1]
            elif isinstance(kept[2], nn.modules.batchnorm._BatchNorm):
                if kept[2].training:  # in eval mode it is a fixed affine map of each score
                    self.scores_batchnorm = (kept[1], type(kept[2]).__name__)
            else:
                self.scores_dropout = kept[1]
        self._last_outs = {}
        if isinstance(z, torch.Tensor) and z.is_floating_point() and z.requires_grad:
            x = first_tensor(args, {})
            kept = self._outs.watch(z, single=x is not None and (x.dim() <= 1 or x.shape[0] == 1))
            if forward is not None and kept is not None:
                forward.outputs.append(kept)
        if not isinstance(out, torch.Tensor):  # another head's class scores (a second task's) are read too
            heads = [(name, t) for name, t in O.named_leaves(out) if t is not z and t.is_floating_point()
                     and t.requires_grad and t.dim() >= 2 and t.shape[-1] >= 2]
            for name, t in heads[:_HEADS]:
                kept = self._outs.watch(t, name)
                if forward is not None and kept is not None:
                    forward.outputs.append(kept)


    def _output_shapes(self, out) -> None:
        """A dict output's fields' shapes by key (``['shape']``): each task's head, matched to its labels in a dict
        ``y=`` of the same keys."""
        if isinstance(out, dict) and len(self.output_shapes) < 64:
            self.output_shapes.update((path[3:], tuple(t.shape)) for path, t in O.named_leaves(out)
                                      if t.is_floating_point() and t.dim() >= 2)


def _on_backward(out, reached: list[bool]) -> None:
    """Set ``reached[0]`` when a backward pass reaches ``out`` (its first output that requires a gradient)."""
    first = next((t for t in ([out] if isinstance(out, torch.Tensor) else O.leaves(out)) if t.requires_grad), None)
    if first is not None:
        def hook(grad) -> None:
            reached[0] = True
        first.register_hook(hook)


def nonfinite(x: torch.Tensor) -> bool:
    """Whether ``x`` holds NaN or Inf: one sum in its own precision (NaN and Inf carry through it; 4-5x faster than
    in float64 for a batch of images on a CPU: 13 against 57 us for 128 x 28 x 28), confirmed in float64 when it is
    not finite (a sum of large finite values that overflows the dtype, float16's 65504 first)."""
    return not math.isfinite(float(x.sum())) and not math.isfinite(float(x.sum(dtype=torch.float64)))

