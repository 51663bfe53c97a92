"""Convolution written out, to show what ``conv1d``/``conv2d`` compute (cs231n's NumPy example).

Convolution flips the kernel: (x * w)[n] = sum_k x[k] w[n - k]. Cross-correlation does not: it slides the kernel
as is, and that is what deep-learning "convolution" layers (torch's conv2d) compute. Two implementations of each:

- a plain loop over output positions, written the way the lecture computes one output neuron,
  V[x, y, d] = sum(X[x*S : x*S+F, y*S : y*S+F, :] * W_d) + b_d;
- a fast version that unfolds every receptive field into a column and does one matrix product (im2col).

Both are checked against torch's conv1d/conv2d in the tests.

Example:
    >>> import torch
    >>> x, w = torch.randn(1, 3, 7, 7), torch.randn(4, 3, 3, 3)
    >>> bool(torch.allclose(conv2d_loop(x, w, stride=2, padding=1),
    ...                     torch.nn.functional.conv2d(x, w, stride=2, padding=1), atol=1e-5))
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trainwell.nn.geometry import conv_output_size


def convolve1d(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Full 1-D convolution of two vectors: y[n] = sum_k x[k] w[n - k], length len(x) + len(w) - 1 (np.convolve)."""
    n = len(x) + len(w) - 1
    y = torch.zeros(n, dtype=torch.result_type(x, w))
    for i in range(n):
        for k in range(len(x)):
            if 0 <= i - k < len(w):
                y[i] += x[k] * w[i - k]
    return y


def _prepare(x: torch.Tensor, w: torch.Tensor, flip: bool, dims: int):
    batched = x.dim() == dims + 2
    if not batched:
        x = x.unsqueeze(0)
    if flip:  # true convolution: rotate each filter by 180 degrees
        w = torch.flip(w, dims=list(range(2, 2 + dims)))
    return x, w, batched


def conv2d_loop(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
                padding: int = 0, flip: bool = False) -> torch.Tensor:
    """2-D cross-correlation (``flip=True``: convolution) by a loop over output positions.

    Args:
        x: (N, C, H, W) or (C, H, W). w: (D, C, F, F). b: (D,) or None.
    Returns:
        (N, D, H', W') with H' = (H - F + 2P)/S + 1 (a non-integer size raises GeometryError).
    """
    x, w, batched = _prepare(x, w, flip, 2)
    n, _, h, wd = x.shape
    d, _, fh, fw = w.shape
    oh = conv_output_size(h, fh, stride, padding, where="conv2d")
    ow = conv_output_size(wd, fw, stride, padding, where="conv2d")
    xp = F.pad(x, (padding, padding, padding, padding))
    out = torch.zeros(n, d, oh, ow, dtype=torch.result_type(x, w))
    for i in range(oh):
        for j in range(ow):
            field = xp[:, :, i * stride : i * stride + fh, j * stride : j * stride + fw]  # (N, C, F, F)
            for k in range(d):
                out[:, k, i, j] = (field * w[k]).sum(dim=(1, 2, 3)) + (b[k] if b is not None else 0.0)
    return out if batched else out[0]


def conv2d_unfold(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
                  padding: int = 0, flip: bool = False) -> torch.Tensor:
    """2-D cross-correlation (``flip=True``: convolution) as im2col: unfold receptive fields, one matmul."""
    x, w, batched = _prepare(x, w, flip, 2)
    n, _, h, wd = x.shape
    d, _, fh, fw = w.shape
    oh = conv_output_size(h, fh, stride, padding, where="conv2d")
    ow = conv_output_size(wd, fw, stride, padding, where="conv2d")
    cols = F.unfold(x, (fh, fw), padding=padding, stride=stride)  # (N, C*F*F, oh*ow)
    out = w.reshape(d, -1) @ cols  # (N, D, oh*ow)
    if b is not None:
        out = out + b[:, None]
    out = out.reshape(n, d, oh, ow)
    return out if batched else out[0]


def conv1d_loop(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
                padding: int = 0, flip: bool = False) -> torch.Tensor:
    """1-D cross-correlation (``flip=True``: convolution) by a loop; x (N, C, L) or (C, L), w (D, C, F)."""
    x, w, batched = _prepare(x, w, flip, 1)
    n, _, length = x.shape
    d, _, f = w.shape
    ol = conv_output_size(length, f, stride, padding, where="conv1d")
    xp = F.pad(x, (padding, padding))
    out = torch.zeros(n, d, ol, dtype=torch.result_type(x, w))
    for i in range(ol):
        field = xp[:, :, i * stride : i * stride + f]  # (N, C, F)
        for k in range(d):
            out[:, k, i] = (field * w[k]).sum(dim=(1, 2)) + (b[k] if b is not None else 0.0)
    return out if batched else out[0]


def conv1d_unfold(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, stride: int = 1,
                  padding: int = 0, flip: bool = False) -> torch.Tensor:
    """1-D cross-correlation (``flip=True``: convolution) as im2col with ``Tensor.unfold``."""
    x, w, batched = _prepare(x, w, flip, 1)
    d, _, f = w.shape
    conv_output_size(x.shape[-1], f, stride, padding, where="conv1d")
    cols = F.pad(x, (padding, padding)).unfold(2, f, stride)  # (N, C, L', F)
    out = torch.einsum("nclf,dcf->ndl", cols, w)
    if b is not None:
        out = out + b[:, None]
    return out if batched else out[0]
