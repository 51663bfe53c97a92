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


def mlp_forward(plan, params: dict[str, torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
    """Outputs (M, B, C) of the stacked MLP ``plan`` with parameters ``params`` ((M, out, in) and (M, out)).

    ``x``: (B, ...) shared by every member when ``shared``, else (M, B, ...) (each member's own batch). The
    activations are kept feature-major, (M, N, B) - each layer computes ``W @ h`` - so that every GEMM's output is
    the next one's contiguous input and every element-wise op runs on contiguous memory; only the (M, C, B)
    output is transposed (a view) for the loss."""
    h = x.flatten(1) if shared else x.flatten(2)
    for i, (wkey, bkey, k, n, act) in enumerate(plan):
        w, b = params[wkey], params[bkey]
        m = w.shape[0]
        if i == 0 and shared:  # one wide GEMM: (M*N, K) @ (K, B), the members' weights stacked
            z = torch.addmm(b.reshape(m * n, 1), w.reshape(m * n, k), h.t())
        elif i == 0:  # each member's own batch: (M, N, K) @ (M, K, B)
            z = torch.baddbmm(b.unsqueeze(2), w, h.transpose(1, 2))
        else:  # (M, N, K) @ (M, K, B), bias added inside the GEMM
            z = torch.baddbmm(b.unsqueeze(2), w, h)
        if type(act) is nn.ReLU:  # in place on the GEMM's fresh output (its backward does not read it): one
            z = torch.relu_(z)  # activation tensor per layer instead of two, the step's memory traffic lower
        elif act is not None:
            z = act(z)
        # viewed (M, N, B) only now: an in-place activation on a view would make autograd rebuild the base in the
        # backward (CopySlices: a zeroed copy of the whole output and three more copies, ~40% of a shared step)
        h = z.view(m, n, -1)
    return h.transpose(1, 2)
