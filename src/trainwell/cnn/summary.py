"""A per-layer table of any model: output shape, neurons, parameters with and without weight sharing,
receptive field and mult-adds (cs231n, "Convolutional Neural Networks": the AlexNet conv1 example).

Receptive fields follow Araujo et al. 2019 ("Computing receptive fields of convolutional neural networks"):
each layer with kernel k, stride s and dilation d maps (r, j) -> (r + (k - 1) d j, j s), where r is the receptive
field and j the distance between adjacent outputs, in input pixels. A dense layer sees the whole input. The
receptive field assumes a chain: layers are composed in the order they run, so parallel branches (``a(x) + b(x)``,
an Inception block) are composed as if one fed the other, and their fields read too large.

A module that runs more than once in a forward pass (weight sharing across depth: one ``nn.Conv2d`` applied
twice) has one row per call (``call`` = 1, 2, ...), since each call has its own output and cost; its parameters
are counted once in :func:`totals`.

Example:
    >>> from torch import nn
    >>> rows = summarize(nn.Conv2d(3, 96, 11, stride=4), (3, 227, 227))
    >>> rows[0].neurons, rows[0].params, rows[0].params_unshared
    (290400, 34944, 105705600)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainwell.nn.modes import kept_modes

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_POOL = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.LPPool1d, nn.LPPool2d)
_ADAPTIVE = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
             nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)
_INDEX_INPUT = (nn.Embedding, nn.EmbeddingBag)  # layers that take integer indices


def _adaptive_window(size: int, out: int) -> tuple[int, float]:
    """The widest window and the stride of an adaptive pooling from ``size`` to ``out`` positions: torch's window
    ``i`` spans ``[floor(i size / out), ceil((i + 1) size / out))``, so the stride is ``size / out`` (fractional
    when ``out`` does not divide ``size``) and an output of 1 sees the whole input."""
    widest = max(-((-(i + 1) * size) // out) - (i * size) // out for i in range(out))
    return widest, size / out


def _first_tensor(output):
    """A layer's output tensor: the tensor itself, or the first tensor of a tuple (``nn.LSTM``'s ``(out, (h, c))``)."""
    while isinstance(output, (tuple, list)) and output:
        output = output[0]
    return output if isinstance(output, torch.Tensor) else None


def _probe_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The zero example ``summarize`` runs: integer indices for a model that embeds them, else the dtype of the
    model's floating-point parameters (a float64 model gets float64 zeros), on their device."""
    params = [p for p in model.parameters() if p.is_floating_point()]
    device = params[0].device if params else torch.device("cpu")
    if any(isinstance(m, _INDEX_INPUT) for m in model.modules()):
        return torch.zeros(1, *input_shape, dtype=torch.long, device=device)
    return torch.zeros(1, *input_shape, dtype=params[0].dtype if params else torch.float32, device=device)


@dataclass
class LayerRow:
    """One layer's geometry and cost."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    neurons: int
    params: int
    params_unshared: int
    receptive_field: tuple[int, ...]
    mult_adds: int
    unseen: tuple[int, ...] = ()  # per axis: trailing input rows/columns the layer's windows never reach
    call: int = 1  # which call of this module the row describes (a module run twice: 1, then 2)

    def as_dict(self) -> dict:
        return asdict(self)


def _tuple(v, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def _unseen(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
            padding: tuple[int, ...]) -> tuple[int, ...]:
    """Real input rows/columns torch's floor drops, per axis (cs231n: "invalid" geometry): the padded input's last
    (W - F + 2P) mod S rows are never covered by a window, and the last P of them are zero padding, not input, so
    max(0, (W - F + 2P) mod S - P) rows of the input are never seen (the ResNet stem, 7x7 stride 2 padding 3 on
    224, drops one padded row and no input row)."""
    if len(size) != len(kernel):
        return ()
    return tuple(max(0, max(w - f + 2 * p, 0) % st - p)
                 for w, f, st, p in zip(size, kernel, stride, padding, strict=True))


def floored_layers(rows: list[LayerRow]) -> list[str]:
    """One line per layer whose windows do not tile its input, naming the rows/columns never seen."""
    out = []
    for r in rows:
        if any(r.unseen):
            axes = ", ".join(f"{n} along axis {i}" for i, n in enumerate(r.unseen) if n)
            out.append(f"{r.name} ({r.kind}): the last {axes} of its input never seen")
    return out


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _recurrent_mult_adds(module: nn.RNNBase, x: torch.Tensor) -> int:
    """Mult-adds of one example through a recurrent layer: at every time step, each layer and direction computes
    its gates (1 for an RNN, 3 for a GRU, 4 for an LSTM) from the input and the previous hidden state,
    gates x hidden x (inputs + outputs), plus an LSTM's projection (hidden x proj_size)."""
    steps = x.shape[1 if module.batch_first else 0] if x.dim() == 3 else x.shape[0]
    directions = 2 if module.bidirectional else 1
    out = module.proj_size or module.hidden_size
    per_step = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else out * directions
        per_step += directions * (_GATES[module.mode] * module.hidden_size * (inputs + out)
                                  + module.hidden_size * module.proj_size)
    return steps * per_step


def _pooling(module: nn.Module, in_spatial: tuple[int, ...], output: torch.Tensor, spatial_dims: int, rf: list,
             jump: list) -> tuple[int, ...] | None:
    """The input positions a pooling layer leaves unseen, composing its window and stride into the receptive
    field; None for a layer that is not a pooling layer (nothing composed)."""
    if isinstance(module, _POOL):
        k = _tuple(module.kernel_size, spatial_dims)
        s = _tuple(module.stride or module.kernel_size, spatial_dims)
        unseen = _unseen(in_spatial, k, s, _tuple(getattr(module, "padding", 0), spatial_dims))
    elif isinstance(module, _ADAPTIVE) and len(in_spatial) == spatial_dims:
        windows = [_adaptive_window(in_spatial[i], output.shape[2 + i]) for i in range(spatial_dims)]
        k, s, unseen = tuple(w[0] for w in windows), tuple(w[1] for w in windows), ()
    elif hasattr(module, "geometry"):  # trainwell pooling layers describe themselves
        kernel, stride = module.geometry()
        unseen = _unseen(in_spatial, (kernel,) * len(in_spatial), (stride,) * len(in_spatial),
                         (0,) * len(in_spatial))
        k, s = (kernel,) * spatial_dims, (stride,) * spatial_dims
    else:
        return None
    for i in range(spatial_dims):
        rf[i] += (k[i] - 1) * jump[i]
        jump[i] *= s[i]
    return unseen


def _transposed_conv(module: nn.Module, x: torch.Tensor, neurons: int, rf: list, jump: list) -> tuple[int, int]:
    """(parameters without sharing, mult-adds) of a transposed convolution, composing its receptive field.

    Every input position is multiplied by the whole filter bank and scattered onto the output (in_positions x
    in_channels x out_channels / groups x prod(kernel) mult-adds, as torch's FlopCounterMode counts them); without
    sharing, each output neuron would own one weight per connection, plus its bias. An output sees the inputs whose
    taps land on it: along an axis with kernel k, dilation d and stride s, those of the taps t with
    t d = o (mod s), the widest such set spanning (max t - min t) d / s + 1 inputs; outputs lie s times closer
    together than inputs, so the jump divides by s."""
    k, s, d = module.kernel_size, module.stride, module.dilation
    mult_adds = math.prod(x.shape[2:]) * module.in_channels * module.out_channels // module.groups * math.prod(k)
    for i in range(min(len(k), len(rf))):
        spans = []
        for o in range(s[i]):
            taps = [t for t in range(k[i]) if (o - t * d[i]) % s[i] == 0]
            spans.append((max(taps) - min(taps)) * d[i] // s[i] + 1 if taps else 1)
        rf[i] += (max(spans) - 1) * jump[i]
        jump[i] /= s[i]
    return mult_adds + (neurons if module.bias is not None else 0), mult_adds


def _recurrent_field(module: nn.Module, args: tuple, input_shape: tuple[int, ...], state: dict) -> None:
    """A recurrent layer's last step has read every step before it (a bidirectional one's outputs every step), so
    from it on the field is the whole input, as after a dense layer. Run on the (T, F) input itself with
    ``batch_first=True``, its positions are the input's T steps (axis 0 of ``input_shape``), not its F features."""
    if not isinstance(module, nn.RNNBase):
        return
    state["dense"] = True
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is not None and module.batch_first and len(input_shape) == 2 and tuple(x.shape[1:]) == tuple(input_shape):
        state["full"] = (input_shape[0],)


def _matrix_costs(module: nn.Module, args: tuple, neurons: int, params: int) -> tuple[int, int]:
    """(parameters without sharing, mult-adds) of a Linear (applied at every position of (T, F) inputs, one matrix
    shared by the T positions) or a recurrent layer (its matrices shared across time steps: counted once)."""
    if isinstance(module, nn.Linear):
        bias = 1 if module.bias is not None else 0
        return neurons * (module.in_features + bias), neurons * module.in_features
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None  # not a PackedSequence
    return params, 0 if x is None else _recurrent_mult_adds(module, x)


def _own_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def summarize(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerRow]:
    """Run one zero input of ``input_shape`` (no batch axis) through ``model`` and describe every leaf layer, one
    row per call in the order the layers run.

    Weight sharing: a conv layer's ``params`` are its filters; ``params_unshared`` is what the same neurons would
    need with a private filter each (neurons x (fan_in + 1)). For dense layers the two are equal, except for a
    ``Linear`` applied at every position of (T, F) inputs, which shares its matrix across the T positions (and
    costs T x in x out mult-adds). A layer called
    twice has two rows, each with its parameters and ``call`` 1 and 2; :func:`totals` counts them once.

    Receptive fields compose the layers as a chain, in the order they run (see the module docstring): right for
    sequential models, too large for parallel branches. An adaptive pooling layer counts its widest window and its
    stride ``in / out`` (an output of 1 position sees the whole input; exact when ``out`` divides the input, else
    up to one stride too large).

    The zero input has the dtype and device of the model's parameters, or holds integer indices (int64) when the
    model has an ``nn.Embedding``. A layer that returns a tuple (``nn.LSTM``) is described by its first tensor.

    Raises:
        ValueError: the model fails on an input of ``input_shape`` (the message shows the shape tried and
            torch's reason).
    """
    spatial_dims = len(input_shape) - 1
    rf = [1] * max(spatial_dims, 1)
    jump = [1] * max(spatial_dims, 1)
    full = tuple(input_shape[1:]) if spatial_dims else (math.prod(input_shape),)
    state = {"dense": spatial_dims == 0, "full": full}
    rows: list[LayerRow] = []
    calls: dict[int, int] = {}  # id(module) -> how many times it has run
    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]

    def hook(name):
        def record(module, args, output):
            calls[id(module)] = calls.get(id(module), 0) + 1
            output = _first_tensor(output)
            if output is None:  # a layer that returns no tensor describes nothing
                return
            out_shape = tuple(output.shape[1:])
            unseen: tuple[int, ...] = ()
            in_spatial = tuple(args[0].shape[2:]) if args and isinstance(args[0], torch.Tensor) else ()
            neurons = math.prod(out_shape)
            params = _own_params(module)
            unshared, mult_adds = params, 0
            if isinstance(module, _CONV):
                k = _tuple(module.kernel_size, spatial_dims)
                s, d = _tuple(module.stride, spatial_dims), _tuple(module.dilation, spatial_dims)
                fan_in = module.in_channels // module.groups * math.prod(k)
                unshared = neurons * (fan_in + (1 if module.bias is not None else 0))
                mult_adds = neurons * fan_in
                for i in range(spatial_dims):
                    rf[i] += (k[i] - 1) * d[i] * jump[i]
                    jump[i] *= s[i]
                pad = _tuple(module.padding, spatial_dims) if not isinstance(module.padding, str) else (0,) * len(k)
                unseen = _unseen(in_spatial, tuple((ki - 1) * di + 1 for ki, di in zip(k, d, strict=True)), s, pad)
            elif (pooled := _pooling(module, in_spatial, output, spatial_dims, rf, jump)) is not None:
                unseen = pooled
            elif isinstance(module, _TRANSPOSED):
                unshared, mult_adds = _transposed_conv(module, args[0], neurons, rf, jump)
            elif isinstance(module, (nn.Linear, nn.RNNBase)):
                unshared, mult_adds = _matrix_costs(module, args, neurons, params)
                state["dense"] = state["dense"] or isinstance(module, nn.Linear)
                _recurrent_field(module, args, input_shape, state)
            field = state["full"] if state["dense"] else tuple(
                math.ceil(min(r, f)) for r, f in zip(rf, state["full"], strict=False))
            rows.append(LayerRow(name or type(module).__name__, type(module).__name__, out_shape, neurons, params,
                                 unshared, field, mult_adds, unseen, calls[id(module)]))
        return record

    example = _probe_input(model, input_shape)
    started: list[str] = []  # the leaf layers that began to run, in order
    handles = [m.register_forward_hook(hook(name)) for name, m in leaves]
    handles += [m.register_forward_pre_hook(lambda module, args, name=name: started.append(name))
                for name, m in leaves]
    try:
        with kept_modes(model), torch.no_grad():  # each module's own mode (a frozen BatchNorm stays)
            model.eval()
            try:
                model(example)
            except (RuntimeError, ValueError, TypeError, IndexError) as e:
                raise ValueError(_failure(model, example, input_shape, started, e)) from e
    finally:
        for h in handles:
            h.remove()
    return rows


def _failure(model: nn.Module, example: torch.Tensor, input_shape: tuple[int, ...], started: list[str],
             error: Exception) -> str:
    """The one-line message for a model that failed on the zero example: where it failed (in a layer, or in its
    own code before any layer ran, where a forward that reads a dict or several inputs fails on one tensor)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    tried = (f"a zero input of shape {tuple(example.shape)} ({example.dtype}), built from "
             f"input_shape={tuple(input_shape)} with a batch of 1 in front")
    if not started:
        return (f"summarize: {type(model).__name__} failed in its own forward before any layer ran, on {tried} "
                f"({first}): summarize calls the model with that one tensor, so a forward that reads a dict, a tuple "
                f"or several inputs cannot run (summarize the submodule that takes a tensor); otherwise give one "
                f"example's shape without the batch axis, e.g. (C, H, W)")
    return (f"summarize: {type(model).__name__} failed on {tried}, in its layer {started[-1]!r}: give one "
            f"example's shape without the batch axis, e.g. (C, H, W) ({first})")


def totals(rows: list[LayerRow]) -> dict[str, int]:
    """The model's parameters (each module's once: a layer called twice shares its weights across its calls, so
    its later rows add none), the parameters it would have without weight sharing, and the mult-adds of one
    forward pass (every call computes).

    ``params_unshared`` undoes every sharing, that across positions and that across calls: a layer called twice
    would need its weights twice."""
    return {"params": sum(r.params for r in rows if r.call == 1),
            "params_unshared": sum(r.params_unshared for r in rows), "mult_adds": sum(r.mult_adds for r in rows)}
