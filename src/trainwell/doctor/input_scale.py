"""Inputs far from unit scale, as the first weighted layer (Linear/Conv) receives them, in both directions.

Far above (:data:`FAR`): raw 0..255 pixels, tabular features in their raw units (counts, prices, sensor readings
of std 100s). The scale is the 99th percentile of ``|x|`` over the model's floating-point inputs and over the
first weighted layer's input; both above FAR, what a Gaussian of std 5 gives (5 x 2.576 = 12.9), the first layer's
pre-activations are ~q99 / 2.58 times a standardized input's: tanh/sigmoid units saturate, ReLU units flip on
large offsets, and its weight gradient is as many times too large for the rate the later layers need. Legitimate
inputs stay below it: standardized features, also heavy-tailed ones (their q99 moves little with a few outlying
rows), pixels in [0, 1], one-hot rows; integer ids into ``nn.Embedding`` are not floating point and not read. A
model that normalizes its input before its first weighted layer (a BatchNorm or LayerNorm first) passes: that
layer receives unit scale. ``doctor.watch``'s ``loop: inputs`` reads the same two quantiles against the same FAR.

Far below (:data:`SMALL`): pixels divided by 255
twice (``x / 16 / 255``: std ~0.001), a unit conversion applied twice.

The scale is the 99th percentile of ``|x|`` over the *non-zero* entries of the first weighted layer's input, when
that input is the model's own input (the first Linear/Conv reads ``x`` as it was given, or a view of it).
Non-zero entries only, so that sparse one-hot or bag-of-words features (whose 99th percentile of all entries is 0)
read at the scale of their ones. Below :data:`SMALL`, the entries are more than 100x below a standardized
feature's 99th percentile (2.58): a default-initialized first layer (weights ~ 1/sqrt(fan_in)) then outputs
little more than its bias, its weight gradient (input x upstream gradient) is as many times too small, and the
layer needs a weight ~100x larger than its initialization before the inputs matter. Legitimate small-scale
inputs stay above it: standardized data (2.58), 0/1 and one-hot features (1), audio in [-1, 1] (a quiet
recording's loud 1% still above ~0.05), pixels in [0, 1], L2-normalized rows of a few thousand features (~0.04).
A BatchNorm that normalizes the first layer's output makes small inputs harmless only while that output's variance
is well above the BatchNorm's ``eps`` (1e-5): it divides by sqrt(var + eps), not by the std. Measured on a conv
net whose first convolution feeds a BatchNorm2d (20 images, 150 Adam steps): pixels in [0, 1] reach a loss of
0.016, divided by 255 twice (the BatchNorm's normalized output std 0.19 at init) 0.087, divided once more by 16
(0.012) 1.80 of ln 10 = 2.30; with the BatchNorm later in the net (its input is then the earlier layers' biases
and padding, not the input's signal) /255 twice stays at 1.35 to 1.65, and in eval mode (a frozen backbone) at
1.94. So the verdict is left out only when the first weighted layer's output goes straight into a BatchNorm whose
normalized output has a std of :data:`RESTORED` or more (:func:`batchnorm_restores`): inputs at the bar (99% of
the non-zero |x| at 0.02) give 0.70 there. A LayerNorm or GroupNorm there is read alike, by the std over the
batch of its normalized output (:func:`norm_scale`): after a bias-free first layer it divides the input's scale
out of each example, but after one with a bias it normalizes the bias, the same for every example, and the
input's part stays as small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.forward import _WEIGHTED, hooked_forward
from trainwell.doctor.inputs import Inputs, fields
from trainwell.doctor.step_readings import abs_quantile
from trainwell.doctor.verdict import Verdict

#: the 99th percentile of the non-zero |x| below which inputs are far below unit scale (see the module docstring)
SMALL = 0.02

#: the std of a BatchNorm's normalized output (before its affine) above which it restores the first layer's scale
RESTORED = 0.5

#: the 99th percentile of |x| above which inputs are far above unit scale: a Gaussian of std 5's (see the docstring)
FAR = 5 * 2.576

#: the advice the large-input verdicts give (``doctor.check``'s ``input scale`` and ``doctor.watch``'s ``loop: inputs``)
LARGE_ADVICE = ("standardize the inputs: subtract the mean and divide by the std of each feature, both computed on "
                "the training set (or divide 0..255 pixels by 255): inputs this large saturate the first layer, "
                "and its weight gradients grow with them (the inputs' std times too large)")

#: the advice the small-input verdicts of check and watch give, and the texts of the verdicts that defer to them
ADVICE = ("the inputs are far below unit scale (scaled twice, e.g. divided by 255 after an earlier division?): "
          "standardize them once (x - mean) / std with the training statistics, or scale them to [0, 1] once")


def nonzero_abs_quantile(t: torch.Tensor, q: float = 0.99) -> float | None:
    """The ``q`` quantile of ``|t|`` over its non-zero finite entries (of at most 2**20 evenly strided ones);
    None when there are none."""
    flat = t.detach().reshape(-1)
    if flat.numel() > 2**20:
        flat = flat[:: flat.numel() // 2**20 + 1]
    a = flat.float().abs()
    a = a[(a > 0) & torch.isfinite(a)]
    return float(torch.quantile(a, q)) if a.numel() else None


def is_small(q99: float | None) -> bool:
    return q99 is not None and q99 < SMALL


def batchnorm_scale(norm: nn.Module, x: torch.Tensor) -> float | None:
    """The std of what the BatchNorm ``norm`` makes of its input ``x`` before its affine, sqrt(mean over channels
    of var / (var_used + eps)): 1 when the statistics it divides by are the batch's and its eps is negligible
    against them; None for a tensor it cannot read."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.numel() <= x.shape[1]:
        return None
    per_channel = x.detach().float().transpose(0, 1).reshape(x.shape[1], -1)
    var = per_channel.var(1, unbiased=False)
    batch = norm.training or norm.running_var is None
    used = var if batch else norm.running_var.detach().float()
    return float((var / (used + norm.eps)).mean().sqrt())


#: the normalizations fed the first weighted layer's output that may restore the scale of small inputs
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def norm_scale(norm: nn.Module, x: torch.Tensor) -> float | None:
    """What the normalization ``norm`` leaves of the scale of its input ``x`` across the examples: a BatchNorm's
    :func:`batchnorm_scale`; for a LayerNorm or GroupNorm the std over the batch of its normalized output (before
    its affine), averaged over the elements: near 1 when each example's own part dominates and its eps is
    negligible, near 0 when every example normalizes to the same values (a bias that dominates the input's part).
    None for a tensor it cannot read."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return batchnorm_scale(norm, x)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or len(x) < 2:
        return None
    xd = x.detach().float()
    if isinstance(norm, nn.LayerNorm):
        z = F.layer_norm(xd, norm.normalized_shape, eps=norm.eps)
    elif isinstance(norm, nn.GroupNorm):
        z = F.group_norm(xd, norm.num_groups, eps=norm.eps)
    else:
        return None
    return float(z.var(0, unbiased=False).mean().sqrt())


def _key(t: torch.Tensor) -> tuple:
    return ("at", t.data_ptr(), t.numel())


def _value_key(t: torch.Tensor) -> tuple:
    d = t.detach().contiguous().double()  # one memory order, so that a channels-last copy sums alike
    return ("values", tuple(t.shape), t.dtype, float(d.sum()), float(d.square().sum()))


def storage_keys(tensors: list[torch.Tensor]) -> set[tuple]:
    """Where every floating-point tensor lies (the same for a view of it) and what it holds (the same for a copy of
    it in another memory format, such as ``x.contiguous(memory_format=torch.channels_last)``)."""
    floating = [t for t in tensors if t.is_floating_point()]
    return {_key(t) for t in floating} | {_value_key(t) for t in floating}


def first_layer_reads_input(layer_input: torch.Tensor, inputs: set[tuple]) -> bool:
    """Whether the first weighted layer's input is one of the model's inputs as given (a view of it, or a copy in
    another memory format): ``inputs`` holds their :func:`storage_keys`."""
    return _key(layer_input) in inputs or _value_key(layer_input) in inputs


def batchnorm_restores(model: nn.Module, x: torch.Tensor | Inputs) -> bool:
    """Whether the first weighted layer's output goes straight into a BatchNorm, LayerNorm or GroupNorm whose
    normalized output has a std of :data:`RESTORED` or more in one forward (see the module docstring)."""
    norms = NORMS
    seen: list = []
    hooked_forward(model, x, _WEIGHTED + norms, lambda name, inp, out: seen.append((model.get_submodule(name), inp,
                                                                                   out)))
    first = next((k for k, (m, _, _) in enumerate(seen) if isinstance(m, _WEIGHTED)), None)
    if first is None or not isinstance(seen[first][2], torch.Tensor):
        return False
    fed = _key(seen[first][2])
    scale = next((norm_scale(m, inp) for m, inp, _ in seen[first + 1:]
                  if isinstance(m, norms) and isinstance(inp, torch.Tensor) and _key(inp) == fed), None)
    return scale is not None and scale >= RESTORED


def first_layer_input_scale(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[float, float] | None:
    """(std, non-zero 99th percentile of |x|) of what the first weighted layer receives in one forward, when it
    receives the model's own floating-point input; None otherwise."""
    given = storage_keys([t for _, t in fields(x)])
    seen: list = []

    def record(name, inp, out):
        if not seen:
            seen.append(inp)

    hooked_forward(model, x, _WEIGHTED, record)
    if not seen or not isinstance(seen[0], torch.Tensor) or not first_layer_reads_input(seen[0], given):
        return None
    q = nonzero_abs_quantile(seen[0])
    return None if q is None else (float(seen[0].detach().float().std()), q)


def large_input_scale(model: nn.Module, x: torch.Tensor | Inputs) -> tuple[float, float] | None:
    """(std, 99th percentile of |x|) of the largest floating-point model input, when it and the first weighted
    layer's input in one forward are both above :data:`FAR`; None otherwise (also when the model normalizes its
    input before that layer, or no layer is reached)."""
    given = [t for _, t in fields(x) if t.is_floating_point() and t.numel() > 1]
    if not given:
        return None
    widest = max(given, key=abs_quantile)
    if abs_quantile(widest) <= FAR:
        return None
    seen: list = []
    hooked_forward(model, x, _WEIGHTED, lambda name, inp, out: seen.append(inp) if not seen else None)
    if not seen or not isinstance(seen[0], torch.Tensor) or not seen[0].is_floating_point() or \
            seen[0].numel() < 2 or abs_quantile(seen[0]) <= FAR:
        return None
    return float(widest.detach().float().std()), abs_quantile(widest)


def input_scale_verdict(model: nn.Module, x: torch.Tensor | Inputs) -> Verdict | None:
    """The pre-flight's warning for inputs far above or far below unit scale; None when they are not (or cannot be
    read)."""
    large = large_input_scale(model, x)
    if large is not None:
        std, q = large
        return Verdict("input scale", "warn", f"inputs far above unit scale: std {std:.3g}, 99% of |x| below {q:.3g}",
                       f"std ~ 1 (99% of |x| below {FAR:.3g})", LARGE_ADVICE)
    scale = first_layer_input_scale(model, x)
    if scale is None or not is_small(scale[1]) or batchnorm_restores(model, x):
        return None
    std, q = scale
    return Verdict("input scale", "warn", f"inputs far below unit scale: std {std:.3g}, 99% of the non-zero |x| "
                   f"below {q:.3g}", "std ~ 1 (99% of |x| above 0.02)", ADVICE)
