"""A population of plain MLPs computed layer by layer as batched GEMMs, without ``vmap``.

A population of M copies of ``Flatten -> Linear -> act -> ... -> Linear`` (any element-wise activation) computes,
per layer, M products (B x K) @ (K x N). How they are laid out decides how close a step runs to the machine's
matmul peak (``benchmarks/population_layouts.py``, RESULTS section 24):

- members that see the same batch (one data order, no per-member input noise) share the input: the first layer of
  all M members is **one** GEMM (B x K) @ (K x M*N) with the members' weights side by side (``torch.addmm``),
  about as fast per FLOP as a large square ``mm``; its weight gradient is one GEMM too;
- every other layer (and the first one when members see their own batches) is one ``torch.baddbmm`` over members
  (the bias added inside the GEMM), as fast as ``einsum`` (which lowers to the same ``bmm``);
- activations are feature-major, (M, N, B): computing ``W @ h`` keeps every GEMM's output contiguous and the
  next GEMM's input, with no transposed copies. The batch-major alternative ((M, B, N), ``h @ W.T``) leaves the
  wide GEMM's output as a transposed view, and the element-wise ops and copies on that view cost more than the
  GEMMs they feed (profile in RESULTS section 24).

Under cross-entropy the training step's backward is written out (:func:`mlp_cross_entropy_step`): the operators
autograd's graph would run, on the same layouts, so the gradients are bit for bit autograd's, without the graph's
recording and engine (benchmarks/RESULTS.md section 39).

The parameters arrive as (M, out, in) / (M, out) tensors (contiguous per parameter: see
:class:`~trainwell.train.population.PopulationLearner`), so nothing is copied before a GEMM.
"""

from __future__ import annotations

import torch
from torch import nn

# element-wise activations: applying the module to a stacked (M, B, N) or (B, M*N) tensor is what vmap would do
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.LeakyReLU, nn.Identity, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Softplus,
               nn.Hardtanh, nn.ReLU6, nn.Mish, nn.SELU, nn.CELU)


def mlp_plan(model: nn.Module) -> list[tuple[str, str, int, int, nn.Module | None]] | None:
    """``model``'s layers as ``(weight key, bias key, in, out, activation or None)`` when it is a plain MLP
    (an ``nn.Sequential`` of an optional leading ``Flatten``, ``nn.Linear`` layers with bias, and element-wise
    activations, ending in a ``Linear``); None for any other model (it is then vmapped)."""
    if type(model) is not nn.Sequential:
        return None
    plan: list[list] = []
    for i, (name, layer) in enumerate(model.named_children()):
        if type(layer) is nn.Flatten and i == 0 and layer.start_dim == 1 and layer.end_dim == -1:
            continue
        if type(layer) is nn.Linear and layer.bias is not None:
            plan.append([f"{name}.weight", f"{name}.bias", layer.in_features, layer.out_features, None])
        elif isinstance(layer, ELEMENTWISE) and type(layer) in ELEMENTWISE and plan and plan[-1][4] is None:
            plan[-1][4] = layer
        else:
            return None
    if not plan or plan[-1][4] is not None or any(p[4] is None for p in plan[:-1]):
        return None
    return [tuple(p) for p in plan]


def _layers(plan, params: dict[str, torch.Tensor], x: torch.Tensor, shared: bool,
            inputs: list | None = None) -> torch.Tensor:
    """The stacked MLP's feature-major outputs (M, C, B); each GEMM's input (the transposed batch for the first
    layer, else the previous activation's output) appended to ``inputs`` when given (the written-out backward
    reads them)."""
    h = x.flatten(1) if shared else x.flatten(2)
    for i, (wkey, bkey, k, n, act) in enumerate(plan):
        w, b = params[wkey], params[bkey]
        m = w.shape[0]
        if i == 0 and shared:  # one wide GEMM: (M*N, K) @ (K, B), the members' weights stacked
            h = h.t()
            z = torch.addmm(b.reshape(m * n, 1), w.reshape(m * n, k), h)
        elif i == 0:  # each member's own batch: (M, N, K) @ (M, K, B)
            h = h.transpose(1, 2)
            z = torch.baddbmm(b.unsqueeze(2), w, h)
        else:  # (M, N, K) @ (M, K, B), bias added inside the GEMM
            z = torch.baddbmm(b.unsqueeze(2), w, h)
        if inputs is not None:
            inputs.append(h)
        if type(act) is nn.ReLU:  # in place on the GEMM's fresh output (its backward does not read it): one
            z = torch.relu_(z)  # activation tensor per layer instead of two, the step's memory traffic lower
        elif act is not None:
            z = act(z)
        # viewed (M, N, B) only now: an in-place activation on a view would make autograd rebuild the base in the
        # backward (CopySlices: a zeroed copy of the whole output and three more copies, ~40% of a shared step)
        h = z.view(m, n, -1)
    return h


def mlp_forward(plan, params: dict[str, torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
    """Outputs (M, B, C) of the stacked MLP ``plan`` with parameters ``params`` ((M, out, in) and (M, out)).

    ``x``: (B, ...) shared by every member when ``shared``, else (M, B, ...) (each member's own batch). The
    activations are kept feature-major, (M, N, B) - each layer computes ``W @ h`` - so that every GEMM's output is
    the next one's contiguous input and every element-wise op runs on contiguous memory; only the (M, C, B)
    output is transposed (a view) for the loss."""
    return _layers(plan, params, x, shared).transpose(1, 2)


# activations whose gradient is computed from their output by the operator autograd's own backward calls, here
# written into the incoming gradient (a fresh GEMM output nothing else reads): 2.4x faster than a new tensor for
# the ReLU of a 16 x 100 x 100 layer (23 against 54 us)
_aten = torch.ops.aten
_FROM_OUTPUT = {nn.ReLU: lambda g, out: _aten.threshold_backward.grad_input(g, out, 0, grad_input=g),
                nn.Tanh: lambda g, out: _aten.tanh_backward.grad_input(g, out, grad_input=g),
                nn.Sigmoid: lambda g, out: _aten.sigmoid_backward.grad_input(g, out, grad_input=g),
                nn.Identity: lambda g, out: g}


def written_backward(plan) -> bool:
    """Whether :func:`mlp_cross_entropy_step` can train ``plan``: every hidden activation's gradient is written
    out (ReLU, tanh, sigmoid, identity)."""
    return plan is not None and all(type(act) in _FROM_OUTPUT for *_, act in plan[:-1])


@torch.no_grad()
def mlp_cross_entropy_step(plan, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                           shared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's mean cross-entropy (M,) and the outputs (M, B, C) of one forward pass, with every
    parameter's ``.grad`` set to the gradient of the members' summed losses - backpropagation written out
    (Rumelhart, Hinton & Williams 1986), without recording an autograd graph.

    Bit for bit what ``F.cross_entropy(out, y, reduction="none").mean(1).sum().backward()`` gives through
    :func:`mlp_forward`: the same operators on the same layouts (the batched GEMMs' transposes, the loss's
    ``log_softmax`` backward, the activations' backward from their outputs), only without the graph, the engine and
    the per-node bookkeeping (~9% of a 16-member step on a CPU; benchmarks/RESULTS.md). ``y``: labels (M, B), or
    (B,) shared by all members; ``plan`` must pass :func:`written_backward`."""
    inputs: list[torch.Tensor] = []
    z = _layers(plan, params, x, shared, inputs)  # (M, C, B)
    m, _, b = z.shape
    y = y.expand(m, b) if y.dim() == 1 else y
    logp = torch.log_softmax(z, dim=1)
    losses = torch.nn.functional.nll_loss(logp, y, reduction="none").mean(1)
    # d(mean over B)/d(logp) = -1/B at each label (the float 1/B rounded to logp's precision, as autograd's mean
    # divides), then the log-softmax's own backward
    g = torch.zeros_like(logp).scatter_(1, y.unsqueeze(1), -1.0 / b)
    dz = torch._log_softmax_backward_data(g, logp, 1, logp.dtype)
    for i in range(len(plan) - 1, -1, -1):
        wkey, bkey, k, n, _ = plan[i]
        h = inputs[i]
        if i == 0 and shared:  # the wide GEMM's gradients: (M*N, B) @ (B, K) and a sum over the batch
            flat = dz.reshape(m * n, b)
            params[bkey].grad = flat.sum(1, keepdim=True).view(m, n)
            params[wkey].grad = flat.mm(h.t()).view(m, n, k)
        else:
            params[bkey].grad = dz.sum(2, keepdim=True).view(m, n)
            params[wkey].grad = dz.bmm(h.transpose(1, 2))
        if i > 0:  # back through layer i's GEMM and layer i-1's activation (its output is layer i's input)
            dz = _FROM_OUTPUT[type(plan[i - 1][4])](params[wkey].transpose(1, 2).bmm(dz), h)
    return losses, z.transpose(1, 2)
