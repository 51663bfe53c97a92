"""Small synthetic problems from the lecture: spirals, XOR, parity, the 8-3-8 encoder, modular addition, T vs C.

Every generator takes a ``seed`` and returns ``(x_train, y_train, x_test, y_test)``. The enumerative problems
(XOR, parity, encoder8) have no held-out data: their test set *is* the full pattern set.
"""

from __future__ import annotations

import itertools
import math

import torch

from trainwell.errors import DataError


def _need(name: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise DataError(f"{name} = {value!r} is not allowed: use {allowed}")


def spirals(n_per_class: int = 200, arms: int = 3, noise: float = 0.2, seed: int = 0):
    """K interleaved spiral arms in 2-D (the cs231n spiral), ``n_per_class`` points per arm, twice (train/test)."""
    _need("spirals arms", arms, isinstance(arms, int) and arms >= 2, "an integer >= 2")
    _need("spirals n_per_class", n_per_class, isinstance(n_per_class, int) and n_per_class >= 2, "an integer >= 2")
    _need("spirals noise", noise, noise >= 0, "a number >= 0")
    g = torch.Generator().manual_seed(seed)

    def draw():
        xs, ys = [], []
        for k in range(arms):
            r = torch.rand(n_per_class, generator=g)
            t = k * 2 * math.pi / arms + r * 4.0 + noise * torch.randn(n_per_class, generator=g)
            xs.append(torch.stack([r * torch.sin(t), r * torch.cos(t)], dim=1))
            ys.append(torch.full((n_per_class,), k, dtype=torch.int64))
        x, y = torch.cat(xs), torch.cat(ys)
        perm = torch.randperm(len(x), generator=g)
        return x[perm], y[perm]

    xtr, ytr = draw()
    xte, yte = draw()
    return xtr, ytr, xte, yte


def xor(seed: int = 0):
    """The four XOR patterns {0,1}^2 -> a xor b (not linearly separable)."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    return x, y, x.clone(), y.clone()


def parity(bits: int = 4, seed: int = 0):
    """All 2^bits binary patterns, labelled by the parity of their number of ones."""
    _need("parity bits", bits, isinstance(bits, int) and 1 <= bits <= 16, "an integer in [1, 16]")
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=bits)))
    y = x.sum(dim=1).to(torch.int64) % 2
    return x, y, x.clone(), y.clone()


def encoder8(seed: int = 0):
    """The eight one-hot patterns of Mitchell's 8x3x8 encoder; the label is the pattern's index."""
    x = torch.eye(8)
    y = torch.arange(8)
    return x, y, x.clone(), y.clone()


def modular(p: int = 53, train_fraction: float = 0.6, encoding: str = "onehot", seed: int = 0):
    """All pairs (a, b), a, b in [0, p), labelled (a + b) mod p, split at random by ``train_fraction``.

    ``encoding="onehot"`` gives ``(N, 2p)`` float inputs (one-hot a, then one-hot b) for an MLP;
    ``encoding="tokens"`` gives ``(N, 2)`` int64 token pairs for an embedding model.
    """
    _need("modular p", p, isinstance(p, int) and p >= 2, "an integer >= 2")
    _need("modular train_fraction", train_fraction, 0 < train_fraction < 1, "a number in (0, 1)")
    _need("modular encoding", encoding, encoding in ("onehot", "tokens"), "'onehot' or 'tokens'")
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    tokens = torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)
    y = (tokens[:, 0] + tokens[:, 1]) % p
    if encoding == "onehot":
        x = torch.cat([torch.nn.functional.one_hot(tokens[:, 0], p), torch.nn.functional.one_hot(tokens[:, 1], p)], 1)
        x = x.float()
    else:
        x = tokens
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_train = int(round(len(y) * train_fraction))
    tr, te = perm[:n_train], perm[n_train:]
    return x[tr], y[tr], x[te], y[te]


# Hinton's T-C problem: two five-pixel shapes, to be told apart at any position and any of four rotations.
_T = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
_C = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])


def tc(n: int = 1000, grid: int = 8, seed: int = 0):
    """T (label 0) vs C (label 1) at random positions and rotations in a ``grid`` x ``grid`` image."""
    _need("tc grid", grid, isinstance(grid, int) and grid >= 3, "an integer >= 3")
    _need("tc n", n, isinstance(n, int) and n >= 2, "an integer >= 2")
    g = torch.Generator().manual_seed(seed)

    def draw():
        x = torch.zeros(n, 1, grid, grid)
        y = torch.randint(0, 2, (n,), generator=g)
        rot = torch.randint(0, 4, (n,), generator=g)
        pos = torch.randint(0, grid - 2, (n, 2), generator=g)
        for i in range(n):
            shape = torch.rot90(_T if y[i] == 0 else _C, int(rot[i]))
            r, c = int(pos[i, 0]), int(pos[i, 1])
            x[i, 0, r : r + 3, c : c + 3] = shape
        return x, y

    xtr, ytr = draw()
    xte, yte = draw()
    return xtr, ytr, xte, yte
