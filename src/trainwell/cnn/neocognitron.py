"""The Neocognitron's S-cells learned by Add-if-Silent (Fukushima 2019, "Recent advances in the deep CNN
neocognitron"), and its C-cells.

An S-cell-plane holds one reference vector a (a normalized input patch) shared by every position (weight
sharing). Its response to an input patch x is phi[(s - theta) / (1 - theta)] with s = cos(a, x) and
phi = max(0, .): 1 for the very patch it copied, 0 ("silent") when s <= theta.

Add-if-Silent learning: scan the training images; wherever the presynaptic cells are active (the input patch is
not blank) but every S-cell is silent, create a new cell-plane whose reference vector is that normalized patch.
It is copied once and never updated. A higher learning threshold makes cells silent more often, so more planes
are created. C-cells blur and subsample the S-responses (a Gaussian-weighted average pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainwell.nn.pool import GaussianPool


class AddIfSilentLayer(nn.Module):
    """S-cells with cosine response and threshold, grown by Add-if-Silent; then C-cells.

    Args:
        kernel: patch size of each S-cell (square).
        threshold: recognition threshold theta in [0, 1).
        learn_threshold: threshold used while learning (default: ``threshold``); higher -> more planes.
        min_norm: a patch with norm below this is "not active" (blank input) and never creates a plane.
        max_planes: stop growing at this many planes.
        pool, pool_sigma: the C-cells' blur window and its Gaussian sigma (stride = pool).
    """

    def __init__(self, kernel: int = 3, threshold: float = 0.6, learn_threshold: float | None = None,
                 min_norm: float = 1e-3, max_planes: int = 512, pool: int = 2, pool_sigma: float = 1.0):
        super().__init__()
        for name, value in (("threshold", threshold), ("learn_threshold", learn_threshold)):
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name}={value} is not allowed: use a number in [0, 1)")
        self.kernel, self.threshold = kernel, threshold
        self.learn_threshold = threshold if learn_threshold is None else learn_threshold
        self.min_norm, self.max_planes = min_norm, max_planes
        self.register_buffer("planes", torch.zeros(0, kernel * kernel))  # (n_planes, k*k), unit rows
        self.c_cells = GaussianPool(pool, pool, pool_sigma)

    @property
    def n_planes(self) -> int:
        return self.planes.shape[0]

    def _patches(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Unit-norm patches (N, k*k, L), their norms (N, L) and the output grid size."""
        x = images if images.dim() == 4 else images.unsqueeze(1)
        cols = F.unfold(x.float(), self.kernel)  # (N, k*k, L)
        norms = cols.norm(dim=1)
        h, w = x.shape[-2] - self.kernel + 1, x.shape[-1] - self.kernel + 1
        return cols / norms.clamp_min(1e-12).unsqueeze(1), norms, (h, w)

    def similarity(self, images: torch.Tensor) -> torch.Tensor:
        """cos(a_k, x) for every plane k and position: (N, n_planes, L); blank patches give 0."""
        unit, norms, _ = self._patches(images)
        s = torch.einsum("pk,nkl->npl", self.planes, unit)
        return s * (norms > self.min_norm).unsqueeze(1)

    def s_response(self, images: torch.Tensor, threshold: float | None = None) -> torch.Tensor:
        """S-cell outputs phi[(s - theta) / (1 - theta)] as (N, n_planes, H', W')."""
        theta = self.threshold if threshold is None else threshold
        _, _, (h, w) = self._patches(images[:1])
        s = self.similarity(images)
        return torch.relu((s - theta) / (1.0 - theta)).reshape(len(images), self.n_planes, h, w)

    @torch.no_grad()
    def learn(self, images: torch.Tensor) -> int:
        """Add-if-Silent over ``images`` ((N, H, W) or (N, 1, H, W)); returns the number of planes created."""
        created = 0
        for image in images:
            unit, norms, _ = self._patches(image.unsqueeze(0))
            unit, active = unit[0], norms[0] > self.min_norm  # (k*k, L), (L,)
            while self.n_planes < self.max_planes:
                if self.n_planes:
                    silent = (self.planes @ unit <= self.learn_threshold).all(dim=0)
                else:
                    silent = torch.ones_like(active)
                candidates = (silent & active).nonzero().flatten()
                if len(candidates) == 0:
                    break
                # the strongest silent input patch seeds the new plane
                pick = candidates[norms[0, candidates].argmax()]
                self.planes = torch.cat([self.planes, unit[:, pick].unsqueeze(0)])
                created += 1
        return created

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """S-cells then C-cells: (N, n_planes, H'', W'')."""
        return self.c_cells(self.s_response(images))
