"""Classic image filters from the lecture, and the sample photograph to try them on.

Box (mean), Gaussian G(x, y; sigma) = exp(-(x^2 + y^2) / 2 sigma^2) / normalizer, sharpen (2 x identity - box)
and the derivative filters [-1 1] and [-1 1]^T. Filters are applied by true convolution (the kernel flipped),
padded so the output has the input's size. Borders: ``"replicate"`` (default: the edge pixel repeated, numpy's
``edge``, scipy's ``nearest``), ``"reflect"`` (mirrored without repeating the edge pixel, numpy's ``reflect``,
scipy's ``mirror``) or ``"zeros"``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from trainwell.cnn.conv import conv2d_unfold


def box(size: int = 3) -> torch.Tensor:
    """The size x size mean filter."""
    if size < 1:
        raise ValueError(f"size={size} is not allowed: use an integer >= 1")
    return torch.full((size, size), 1.0 / size**2)


def gaussian(sigma: float = 1.0, size: int | None = None) -> torch.Tensor:
    """A normalized 2-D Gaussian of standard deviation ``sigma`` (default size 2 ceil(3 sigma) + 1)."""
    if not sigma > 0:
        raise ValueError(f"sigma={sigma} is not allowed: use a number > 0")
    size = size or 2 * math.ceil(3 * sigma) + 1
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def sharpen(size: int = 3) -> torch.Tensor:
    """2 x identity - box: boosts what differs from the local mean."""
    k = -box(size)
    k[size // 2, size // 2] += 2.0
    return k


def derivative_x() -> torch.Tensor:
    """[-1 1]: horizontal differences (responds to vertical edges)."""
    return torch.tensor([[-1.0, 1.0]])


def derivative_y() -> torch.Tensor:
    """[-1 1]^T: vertical differences (responds to horizontal edges)."""
    return derivative_x().T.contiguous()


def bank() -> dict[str, torch.Tensor]:
    """The lecture's filters, by name."""
    return {"box 3x3": box(3), "gaussian s=1": gaussian(1), "gaussian s=2": gaussian(2), "gaussian s=4": gaussian(4),
            "sharpen": sharpen(3), "d/dx [-1 1]": derivative_x(), "d/dy [-1 1]^T": derivative_y()}


BORDERS = {"replicate": "replicate", "reflect": "reflect", "zeros": "constant"}


def apply(image: torch.Tensor, kernel: torch.Tensor, border: str = "replicate") -> torch.Tensor:
    """Convolve a (H, W) image, a (C, H, W) one or a batch (N, C, H, W) with a 2-D kernel, channel by channel,
    keeping the size and a floating dtype (integer pixels give float32).

    Args:
        border: how the image is extended beyond its edges: ``"replicate"`` (repeat the edge pixel),
            ``"reflect"`` (mirror around the edge pixel: ... c b | a b c ...) or ``"zeros"``.

    Raises:
        ValueError: an unknown ``border``, an image of fewer than 2 axes, or ``"reflect"`` with a kernel reaching
            further than the image is wide.
    """
    if border not in BORDERS:
        raise ValueError(f"border={border!r} is not allowed: use one of {', '.join(BORDERS)}")
    if image.dim() < 2:
        raise ValueError(f"filters.apply takes a (H, W), (C, H, W) or (N, C, H, W) image, got shape "
                         f"{tuple(image.shape)}: give the image's rows and columns")
    dtype = image.dtype if image.is_floating_point() else torch.float32
    img = image.reshape(-1, *image.shape[-2:]).to(dtype)  # every channel of every image, one plane each
    kh, kw = kernel.shape
    top, left = (kh - 1) // 2, (kw - 1) // 2
    pads = (left, kw - 1 - left, top, kh - 1 - top)
    if border == "reflect" and (max(pads[:2]) >= img.shape[-1] or max(pads[2:]) >= img.shape[-2]):
        raise ValueError(f"border='reflect' cannot pad a {tuple(img.shape[-2:])} image for a {kh}x{kw} kernel: "
                         f"use border='replicate' or a smaller kernel")
    padded = F.pad(img.unsqueeze(1), pads, mode=BORDERS[border])
    out = conv2d_unfold(padded, kernel[None, None].to(dtype), flip=True)[:, 0]
    return out.reshape(image.shape)


def sample_photo(size: int = 128) -> torch.Tensor:
    """matplotlib's bundled Grace Hopper photograph as a (size, size) grayscale image in [0, 1]."""
    import matplotlib.cbook as cbook
    import matplotlib.image as mpimg

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = torch.tensor(mpimg.imread(f), dtype=torch.float32) / 255.0
    gray = rgb[..., :3].mul(torch.tensor([0.299, 0.587, 0.114])).sum(-1)
    return F.interpolate(gray[None, None], size=(size, size), mode="area")[0, 0]


def figure(images: dict[str, torch.Tensor], path) -> None:
    """Draw every image through every filter of :func:`bank` and save a PNG grid."""
    from trainwell.viz.plots import new_figure, save

    filters = bank()
    fig, axes = new_figure(len(images), len(filters) + 1, figsize=(2 * (len(filters) + 1), 2.2 * len(images)),
                           squeeze=False)
    for row, (name, img) in enumerate(images.items()):
        axes[row, 0].imshow(img.numpy(), cmap="gray")
        axes[row, 0].set_title(name, fontsize=8)
        for col, (fname, k) in enumerate(filters.items(), start=1):
            axes[row, col].imshow(apply(img, k).numpy(), cmap="gray")
            axes[row, col].set_title(fname, fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    save(fig, path, dpi=90)
