"""Data preprocessing with scikit-learn's API, on tensors: mean centering, standardization, PCA, whitening.

The lecture (cs231n, "Data preprocessing"): center, normalize, decorrelate with PCA, whiten by dividing each
principal component by sqrt(eigenvalue + eps). ZCA whitening (Bell & Sejnowski 1997) rotates the whitened data
back to the input basis, so images stay images. Fit on the training split only, then apply to val/test.

Every estimator stores hyperparameters in ``__init__``; ``fit(X)`` sets attributes ending in ``_`` and returns
self; ``transform`` before ``fit`` raises :class:`NotFittedError`. Features are the flattened trailing dims.

Example:
    >>> import torch
    >>> X = torch.randn(500, 3) @ torch.tensor([[2.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0.1]])
    >>> Z = PCA(whiten=True).fit_transform(X)
    >>> bool(torch.allclose(torch.cov(Z.T), torch.eye(3), atol=1e-2))
    True
"""

from __future__ import annotations

import torch


class NotFittedError(ValueError, AttributeError):
    """``transform`` or ``inverse_transform`` was called before ``fit``."""


class _Preprocessor:
    def fit(self, X: torch.Tensor):  # pragma: no cover - abstract
        raise NotImplementedError

    def transform(self, X: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_transform(self, X: torch.Tensor) -> torch.Tensor:
        return self.fit(X).transform(X)

    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(X_train) before transform")

    def _flat(self, X: torch.Tensor, fitting: bool = False) -> torch.Tensor:
        if X.ndim < 2:
            raise ValueError(f"{type(self).__name__} expects (N, features...) data, got shape {tuple(X.shape)}")
        if fitting:
            self.feature_shape_ = tuple(X.shape[1:])
        elif tuple(X.shape[1:]) != self.feature_shape_:
            raise ValueError(
                f"{type(self).__name__} was fitted on features of shape {self.feature_shape_}, got {tuple(X.shape[1:])}"
            )
        return X.reshape(len(X), -1).to(torch.float64)

    def _unflat(self, Z: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return Z.reshape(len(Z), *self.feature_shape_).to(like.dtype if like.is_floating_point() else torch.float32)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


class MeanCenter(_Preprocessor):
    """Subtract the per-feature training mean."""

    def fit(self, X):
        self.mean_ = self._flat(X, fitting=True).mean(dim=0)
        return self

    def transform(self, X):
        self._check_fitted()
        return self._unflat(self._flat(X) - self.mean_, X)

    def inverse_transform(self, Z):
        self._check_fitted()
        return self._unflat(self._flat(Z) + self.mean_, Z)


class Standardize(_Preprocessor):
    """Center each feature and divide it by its (biased) training std, as sklearn's StandardScaler.

    Constant features get scale 1, so they are centered but not blown up.
    """

    def fit(self, X):
        flat = self._flat(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        std = flat.std(dim=0, unbiased=False)
        self.scale_ = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def transform(self, X):
        self._check_fitted()
        return self._unflat((self._flat(X) - self.mean_) / self.scale_, X)

    def inverse_transform(self, Z):
        self._check_fitted()
        return self._unflat(self._flat(Z) * self.scale_ + self.mean_, Z)


def _eigen(centered: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal axes (rows) and variances (unbiased, as sklearn) of centered data, largest first."""
    n = centered.shape[0]
    _, s, vt = torch.linalg.svd(centered, full_matrices=False)
    variance = s**2 / max(n - 1, 1)
    # Fix each axis's sign so that its largest-magnitude loading is positive: deterministic output.
    idx = vt.abs().argmax(dim=1)
    signs = torch.sign(vt[torch.arange(len(vt)), idx])
    signs[signs == 0] = 1
    return vt * signs[:, None], variance


class PCA(_Preprocessor):
    """Project onto the top ``n_components`` principal axes; optionally whiten by 1/sqrt(variance + eps).

    Args:
        n_components: number of axes kept (default: all, ``min(N, D)``).
        whiten: divide each component by ``sqrt(explained_variance_ + eps)``.
        eps: keeps the division finite for near-zero variances (the lecture's epsilon).

    Output shape is ``(N, n_components)``; ``inverse_transform`` maps back to the input's feature shape.
    """

    def __init__(self, n_components: int | None = None, whiten: bool = False, eps: float = 1e-5):
        self.n_components = n_components
        self.whiten = whiten
        self.eps = eps

    def fit(self, X):
        flat = self._flat(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        components, variance = _eigen(flat - self.mean_)
        k = self.n_components or len(components)
        if not 1 <= k <= len(components):
            raise ValueError(f"PCA n_components = {k} is not allowed: use 1..{len(components)} for this data")
        self.components_ = components[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = variance[:k] / variance.sum()
        return self

    def transform(self, X):
        self._check_fitted()
        Z = (self._flat(X) - self.mean_) @ self.components_.T
        if self.whiten:
            Z = Z / torch.sqrt(self.explained_variance_ + self.eps)
        return Z.to(X.dtype if X.is_floating_point() else torch.float32)

    def inverse_transform(self, Z):
        self._check_fitted()
        Z = Z.to(torch.float64)
        if self.whiten:
            Z = Z * torch.sqrt(self.explained_variance_ + self.eps)
        return self._unflat(Z @ self.components_ + self.mean_, Z.float())


class ZCA(_Preprocessor):
    """ZCA whitening: W = U diag(1/sqrt(lambda + eps)) U^T, so whitened data stays in the input basis."""

    def __init__(self, eps: float = 1e-5):
        self.eps = eps

    def fit(self, X):
        flat = self._flat(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        components, variance = _eigen(flat - self.mean_)
        if len(components) < flat.shape[1]:
            # fewer samples than features: the missing axes carry zero variance
            full = torch.linalg.qr(torch.cat([components.T, torch.eye(flat.shape[1], dtype=flat.dtype)], 1))[0]
            components = full[:, : flat.shape[1]].T
            variance = torch.cat([variance, variance.new_zeros(flat.shape[1] - len(variance))])
        self.components_ = components
        self.explained_variance_ = variance
        scale = torch.sqrt(variance + self.eps)
        self.whitening_ = components.T @ torch.diag(1.0 / scale) @ components
        self.coloring_ = components.T @ torch.diag(scale) @ components
        return self

    def transform(self, X):
        self._check_fitted()
        return self._unflat((self._flat(X) - self.mean_) @ self.whitening_, X)

    def inverse_transform(self, Z):
        self._check_fitted()
        return self._unflat(self._flat(Z) @ self.coloring_ + self.mean_, Z)


def build(kind: str, n_components: int | None = None, whiten: bool = False, eps: float = 1e-5):
    """Return the preprocessor named by ``preprocess.kind`` (None for ``"none"``)."""
    if kind == "none":
        return None
    if kind == "center":
        return MeanCenter()
    if kind == "standardize":
        return Standardize()
    if kind == "pca":
        return PCA(n_components=n_components, whiten=whiten, eps=eps)
    if kind == "zca":
        return ZCA(eps=eps)
    raise ValueError(f"unknown preprocess.kind {kind!r}: allowed are none, center, standardize, pca, zca")
