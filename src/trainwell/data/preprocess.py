"""Data preprocessing with scikit-learn's API, on tensors: mean centering, standardization, PCA, whitening.

The lecture (cs231n, "Data preprocessing"): center, normalize, decorrelate with PCA, whiten by dividing each
principal component by sqrt(eigenvalue + eps). ZCA whitening (Bell & Sejnowski 1997) rotates the whitened data
back to the input basis, so images stay images. Fit on the training split only, then apply to val/test.

Every estimator is a scikit-learn transformer (``get_params``/``set_params``, ``clone``, ``fit_transform(X, y=None)``,
usable in an ``sklearn.pipeline.Pipeline``): ``__init__`` stores hyperparameters only; ``fit(X, y=None)`` sets
attributes ending in ``_`` (float64 tensors) and returns self; ``transform`` before ``fit`` raises
:class:`NotFittedError`. numpy (or array-like) in gives numpy out, torch in gives torch out (same device), and a
floating dtype is kept. Features are the flattened trailing dims, so (N, C, H, W) images work too.

Example:
    >>> import torch
    >>> X = torch.randn(500, 3) @ torch.tensor([[2.0, 0, 0], [1.0, 1.0, 0], [0, 0, 0.1]])
    >>> Z = PCA(whiten=True).fit_transform(X)
    >>> bool(torch.allclose(torch.cov(Z.T), torch.eye(3), atol=1e-2))
    True
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OneToOneFeatureMixin, TransformerMixin
from sklearn.exceptions import NotFittedError as _SkNotFittedError
from sklearn.utils.validation import check_array, check_is_fitted
from torch.utils.data import DataLoader, Dataset, IterableDataset


class NotFittedError(_SkNotFittedError):
    """``transform`` or ``inverse_transform`` was called before ``fit`` (a ValueError and an AttributeError)."""


class _Preprocessor(TransformerMixin, BaseEstimator):
    """Shared input handling: numpy (or anything array-like) in -> numpy out, torch in -> torch out.

    Computation runs in float64 on the input's device. Floating inputs keep their dtype; integer inputs give
    float64 (numpy, as scikit-learn) or torch's default dtype (torch). Fitted attributes are float64 tensors.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _check_fitted(self) -> None:
        try:
            check_is_fitted(self)
        except _SkNotFittedError:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit(X_train) first") from None

    def _to_tensor(self, X, fitting: bool = False, features: tuple[int, ...] | None = None):
        """Validate ``X`` and return (float64 tensor of shape (N, D), an output function giving X's type back).

        ``features`` is the feature shape expected (default: the fitted one) when not fitting. ``fit`` also takes
        a DataLoader or a Dataset (see :func:`stacked_inputs`); the transforms take one batch's inputs.
        """
        name = type(self).__name__
        if isinstance(X, list) and X and _is_batch_or_item(X[0]):
            X = stacked_inputs(X, f"{name}.{'fit' if fitting else 'transform'}")
        elif isinstance(X, list) and X and getattr(X[0], "ndim", 0) >= 2:
            raise ValueError(f"{name} got a list of {len(X)} arrays of shape {tuple(X[0].shape)}, ...: give one "
                             f"tensor, torch.cat(the_list) for batches or torch.stack(the_list) for single examples "
                             f"(or the DataLoader itself to fit)")
        if isinstance(X, (DataLoader, Dataset)):
            if not fitting:
                raise TypeError(f"{name} transforms a batch's inputs, not a {type(X).__name__}: call it on each "
                                f"batch (x = pre.transform(x) in the loop), or on the whole dataset's tensor")
            X = stacked_inputs(X, f"{name}.fit")
        if isinstance(X, torch.Tensor):
            if X.is_complex() or X.dtype == torch.bool:
                raise ValueError(f"{name} takes real-valued data, got a tensor of dtype {X.dtype}")
            if X.ndim < 2:
                raise ValueError(f"{name} expects X of shape (n_samples, features...), got shape {tuple(X.shape)}: "
                                 f"use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for one sample")
            if X.shape[0] == 0 or X[0].numel() == 0:
                raise ValueError(f"{name} needs at least 1 sample and 1 feature, got shape {tuple(X.shape)}")
            t = X.detach().to(torch.float64)
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} got NaN or infinity in X: remove or impute them first")
            out_dtype = X.dtype if X.is_floating_point() else torch.get_default_dtype()

            def back(Z: torch.Tensor) -> torch.Tensor:
                return Z.to(out_dtype)
        else:
            arr = check_array(X, allow_nd=True, dtype=[np.float64, np.float32], input_name="X")
            t = torch.tensor(arr, dtype=torch.float64)  # a copy: read-only and memory-mapped inputs are fine
            out_np = arr.dtype

            def back(Z: torch.Tensor) -> np.ndarray:
                return Z.detach().cpu().numpy().astype(out_np, copy=False)
        shape = tuple(t.shape[1:])
        if fitting:
            self.feature_shape_ = shape
            self.n_features_in_ = int(np.prod(shape))
        else:
            expected = self.feature_shape_ if features is None else features
            if shape != expected:
                n, m = int(np.prod(shape)), int(np.prod(expected))
                raise ValueError(f"X has {n} features, but {name} is expecting {m} features as input "
                                 f"(it was fitted on features of shape {expected}, got {shape})")
        return t.reshape(len(t), -1), back

    def _param(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, name).to(like.device)


def _is_batch_or_item(part) -> bool:
    """An ``(x, y)`` pair of arrays or a dict: what a DataLoader yields as a batch, or a Dataset as an item."""
    return isinstance(part, Mapping) or isinstance(part, (tuple, list)) and len(part) >= 1 and \
        isinstance(part[0], (torch.Tensor, np.ndarray)) and (len(part) >= 2 or part[0].ndim >= 2)


def stacked_inputs(data: DataLoader | Dataset | list, what: str) -> torch.Tensor:
    """The inputs of every batch of a DataLoader (or every item of a Dataset), concatenated: what a model fed by
    that loader sees. A batch or item is an ``(x, y)`` pair, a tensor of inputs alone, or a dict whose input key
    is one trainwell knows (``x``, ``image``, ...; :data:`trainwell.train.batches.INPUT_KEYS`). A list of pairs or
    dicts is read as a loader's batches (``list(loader)``), or as a Dataset's items where their targets are single
    numbers."""
    from trainwell.train.batches import as_tensor, inputs_of, split_batch

    def inputs(part):
        if isinstance(part, (tuple, list)) and len(part) == 1:
            part = part[0]
        return as_tensor(part if isinstance(part, (torch.Tensor, np.ndarray)) else inputs_of(part, what), what)

    if isinstance(data, DataLoader):
        parts = [inputs(batch) for batch in data]
    elif isinstance(data, list):  # a loader's batches, or a dataset's (x, number) items
        parts = []
        for part in data:
            if not _is_batch_or_item(part):
                raise ValueError(f"{what}: a list of (x, y) batches holds a {type(part).__name__}: give every "
                                 f"batch as an (x, y) pair or a dict")
            # inputs alone ([xb], a TensorDataset's batch) are a batch; an item's target is one number
            one = len(part) >= 2 and getattr(split_batch(part, what)[1], "ndim", 0) == 0
            parts.append(inputs(part).unsqueeze(0) if one else inputs(part))
    else:
        items = data if isinstance(data, IterableDataset) else (data[i] for i in range(len(data)))
        parts = [inputs(item).unsqueeze(0) for item in items]
    if not parts:
        raise ValueError(f"{what}: the {type(data).__name__} holds no example")
    return torch.cat(parts)


class MeanCenter(OneToOneFeatureMixin, _Preprocessor):
    """Subtract the per-feature training mean.

    Example:
        >>> import numpy as np
        >>> MeanCenter().fit_transform(np.array([[1.0, 2.0], [3.0, 6.0]])).tolist()
        [[-1.0, -2.0], [1.0, 2.0]]
    """

    def fit(self, X, y=None):
        """Learn ``mean_`` from X (the training split); returns self."""
        flat, _ = self._to_tensor(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        return self

    def transform(self, X):
        """Return X minus the training mean, same type, shape and (floating) dtype as X."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        return back((flat - self._param("mean_", flat)).reshape(len(flat), *self.feature_shape_))

    def inverse_transform(self, X):
        """Add the training mean back."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        return back((flat + self._param("mean_", flat)).reshape(len(flat), *self.feature_shape_))


class Standardize(OneToOneFeatureMixin, _Preprocessor):
    """Center each feature and divide it by its (biased) training std, as sklearn's StandardScaler.

    Constant features get scale 1, so they are centered but not blown up.
    """

    def fit(self, X, y=None):
        """Learn ``mean_`` and ``scale_`` from X (the training split); returns self."""
        flat, _ = self._to_tensor(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        std = flat.std(dim=0, correction=0)
        self.scale_ = torch.where(std > 0, std, torch.ones_like(std))
        return self

    def transform(self, X):
        """Return (X - mean_) / scale_, same type, shape and (floating) dtype as X."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        Z = (flat - self._param("mean_", flat)) / self._param("scale_", flat)
        return back(Z.reshape(len(flat), *self.feature_shape_))

    def inverse_transform(self, X):
        """Return X * scale_ + mean_."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        Z = flat * self._param("scale_", flat) + self._param("mean_", flat)
        return back(Z.reshape(len(flat), *self.feature_shape_))


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


class PCA(ClassNamePrefixFeaturesOutMixin, _Preprocessor):
    """Project onto the top ``n_components`` principal axes; optionally whiten by 1/sqrt(variance + eps).

    Args:
        n_components: number of axes kept (default: all, ``min(N, D)``); a float in (0, 1) keeps the fewest axes
            whose explained variance ratios add up to more than that fraction (scikit-learn's rule:
            ``PCA(n_components=0.95)`` keeps 95% of the variance). The number kept is ``n_components_``.
        whiten: divide each component by ``sqrt(explained_variance_ + eps)``.
        eps: keeps the division finite for near-zero variances (the lecture's epsilon).

    Output shape is ``(N, n_components_)``; ``inverse_transform`` maps back to the input's feature shape.

    Raises:
        ValueError: at ``fit``, an integer ``n_components`` outside 1..min(N, D), or a float outside (0, 1).
        TypeError: at ``fit``, an ``n_components`` that is neither.
    """

    def __init__(self, n_components: int | float | None = None, whiten: bool = False, eps: float = 1e-5):
        self.n_components = n_components
        self.whiten = whiten
        self.eps = eps

    def fit(self, X, y=None):
        """Learn ``mean_``, ``components_``, ``explained_variance_(ratio_)`` from X; returns self."""
        flat, _ = self._to_tensor(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        components, variance = _eigen(flat - self.mean_)
        total = variance.sum()
        k = self._kept(len(components), variance / total if total > 0 else torch.zeros_like(variance), flat.shape)
        self.components_ = components[:k]
        self.explained_variance_ = variance[:k]
        self.explained_variance_ratio_ = variance[:k] / total if total > 0 else torch.zeros_like(variance[:k])
        self.n_components_ = k
        self._n_features_out = k
        return self

    def _kept(self, available: int, ratios: torch.Tensor, shape: tuple[int, ...]) -> int:
        """The number of axes ``n_components`` asks for, out of ``available`` with variance ratios ``ratios``."""
        n = self.n_components
        allowed = (f"use an integer 1..{available} (the axes kept) or a float in (0, 1) (the fraction of the "
                   f"variance kept)")
        if n is None:
            return available
        if isinstance(n, bool) or not isinstance(n, (numbers.Real, np.number)):
            raise TypeError(f"PCA(n_components={n!r}) is not allowed: {allowed}")
        if isinstance(n, (numbers.Integral, np.integer)):
            if not 1 <= n <= available:
                raise ValueError(f"PCA(n_components={n}) is not allowed for {shape[0]} samples of {shape[1]} "
                                 f"features: {allowed}")
            return int(n)
        if not 0 < n < 1:
            raise ValueError(f"PCA(n_components={n}) is not allowed: {allowed}")
        # scikit-learn's rule: the first k whose cumulative ratio exceeds n
        cumulative = torch.cumsum(ratios, 0).cpu().numpy()
        return min(int(np.searchsorted(cumulative, n, side="right")) + 1, available)

    def transform(self, X):
        """Return the (whitened) projections, shape (N, n_components_), same type and floating dtype as X."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        Z = (flat - self._param("mean_", flat)) @ self._param("components_", flat).T
        if self.whiten:
            Z = Z / torch.sqrt(self._param("explained_variance_", flat) + self.eps)
        return back(Z)

    def inverse_transform(self, X):
        """Map (N, n_components_) projections back to the input's feature shape; dtype follows X."""
        self._check_fitted()
        Z, back = self._to_tensor(X, features=(self.n_components_,))
        if self.whiten:
            Z = Z * torch.sqrt(self._param("explained_variance_", Z) + self.eps)
        flat = Z @ self._param("components_", Z) + self._param("mean_", Z)
        return back(flat.reshape(len(flat), *self.feature_shape_))


class ZCA(OneToOneFeatureMixin, _Preprocessor):
    """ZCA whitening: W = U diag(1/sqrt(lambda + eps)) U^T, so whitened data stays in the input basis."""

    def __init__(self, eps: float = 1e-5):
        self.eps = eps

    def fit(self, X, y=None):
        """Learn ``mean_``, ``components_``, ``explained_variance_``, ``whitening_``, ``coloring_``; returns self."""
        flat, _ = self._to_tensor(X, fitting=True)
        self.mean_ = flat.mean(dim=0)
        components, variance = _eigen(flat - self.mean_)
        if len(components) < flat.shape[1]:
            # fewer samples than features: the missing axes carry zero variance
            full = torch.linalg.qr(torch.cat([components.T, torch.eye(flat.shape[1], dtype=flat.dtype,
                                                                      device=flat.device)], 1))[0]
            components = full[:, : flat.shape[1]].T
            variance = torch.cat([variance, variance.new_zeros(flat.shape[1] - len(variance))])
        self.components_ = components
        self.explained_variance_ = variance
        scale = torch.sqrt(variance + self.eps)
        self.whitening_ = components.T @ torch.diag(1.0 / scale) @ components
        self.coloring_ = components.T @ torch.diag(scale) @ components
        return self

    def transform(self, X):
        """Return (X - mean_) W, same type, shape and floating dtype as X."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        Z = (flat - self._param("mean_", flat)) @ self._param("whitening_", flat)
        return back(Z.reshape(len(flat), *self.feature_shape_))

    def inverse_transform(self, X):
        """Undo the whitening: X W^-1 + mean_."""
        self._check_fitted()
        flat, back = self._to_tensor(X)
        Z = flat @ self._param("coloring_", flat) + self._param("mean_", flat)
        return back(Z.reshape(len(flat), *self.feature_shape_))


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
