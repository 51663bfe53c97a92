"""filters-and-equivariance: the lecture's classic filters on a photograph, and three measured facts about
convolution and pooling — convolution is shift-equivariant, pooling adds local shift invariance, and neither is
rotation-equivariant.

The lecture's CNN slides ("Equivariance vs. invariance": "pooling provides invariance, convolution provides
equivariance"; "not equivariant to scale or rotation"), Goodfellow, Bengio & Courville 2016, "Deep Learning",
sections 9.2-9.3. Filters (box, Gaussian sigma 1/2/4, sharpen = 2 identity - box, derivatives [-1 1] and its
transpose) from :mod:`trainwell.cnn.filters`, applied by true convolution to matplotlib's Grace Hopper photograph.
Their effect is measured as the image's total variation (mean |difference| between neighbouring pixels): smoothing
lowers it, the more the wider the Gaussian; sharpening raises it. The probes of :mod:`trainwell.cnn.equivariance`
run random convolutions (and convolution + max-pooling) on the same photo; pure computation, no training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from trainwell.cnn import equivariance, filters
from trainwell.lab import base

NAME = "filters-and-equivariance"
CLAIM = "Smoothing filters lower an image's variation and sharpening raises it; convolution is shift-equivariant, " \
        "pooling adds local shift invariance, and neither is rotation-equivariant"
PAPER = "The lecture's CNN slides (equivariance vs. invariance); Goodfellow et al. 2016, Deep Learning, sec. 9.2-9.3"
EXPECTED_S = {"quick": 1, "default": 1}


@dataclass
class Config:
    size: int = 128
    channels: int = 8
    kernel: int = 5
    pool: int = 4
    shifts: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 8])
    probes: int = 3
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(size=64, shifts=[1, 2, 4], probes=1)


def total_variation(img: torch.Tensor) -> float:
    """Mean absolute difference between horizontally and vertically neighbouring pixels."""
    return float(((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs()
                  .mean()) / 2)


def run(cfg: Config, workdir=None) -> dict:
    photo = filters.sample_photo(cfg.size)
    tv0 = total_variation(photo)
    filtered = {name: filters.apply(photo, k) for name, k in filters.bank().items()}
    tv = {name: total_variation(img) / tv0 for name, img in filtered.items()}
    x = photo[None, None]
    probes = []
    for k in range(cfg.probes):
        torch.manual_seed(cfg.seed * 100 + k)
        conv = nn.Conv2d(1, cfg.channels, cfg.kernel, padding=cfg.kernel // 2, bias=False)
        pooled = nn.Sequential(conv, nn.MaxPool2d(cfg.pool))
        probes.append({
            "conv shift equivariance error": equivariance.shift_equivariance(conv, x),
            "conv rotation equivariance error": equivariance.rotation_equivariance(conv, x),
            "conv+pool rotation equivariance error": equivariance.rotation_equivariance(pooled, x),
            "conv change by shift": [equivariance.shift_sensitivity(conv, x, s) for s in cfg.shifts],
            "conv+pool change by shift": [equivariance.shift_sensitivity(pooled, x, s) for s in cfg.shifts],
        })
    mean = {key: (sum(p[key] for p in probes) / len(probes) if not isinstance(probes[0][key], list)
                  else [sum(p[key][i] for p in probes) / len(probes) for i in range(len(cfg.shifts))])
            for key in probes[0]}
    small = {name: img[:: max(1, cfg.size // 64), :: max(1, cfg.size // 64)].tolist() for name, img in
             {"photo": photo, **filtered}.items()}
    return {"tv_ratio": tv, "probes": mean, "shifts": cfg.shifts, "pool": cfg.pool, "images": small}


def plot(result: dict) -> dict:
    imgs = result["images"]
    fig, axes = base.new_figure(2.1 * len(imgs), 2.6, ncols=len(imgs))
    for ax, (name, img) in zip(axes[0], imgs.items(), strict=True):
        ax.imshow(img, cmap="gray")
        ratio = result["tv_ratio"].get(name)
        ax.set_title(name if ratio is None else f"{name}\nTV x{ratio:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    p = result["probes"]
    fig2, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    ax.plot(result["shifts"], p["conv change by shift"], "o-", label="convolution")
    pool = result["pool"]
    ax.plot(result["shifts"], p["conv+pool change by shift"], "s-", label=f"convolution + {pool}x{pool} max-pool")
    ax.set(xlabel="input shift (pixels)", ylabel="relative change of the output",
           title=f"Shift: conv equivariance error {p['conv shift equivariance error']:.1e}; rotation error "
                 f"{p['conv rotation equivariance error']:.2f}")
    ax.title.set_fontsize(8)
    ax.legend()
    ax.grid(alpha=0.3)
    fig2.tight_layout()
    return {"filters": fig, "equivariance": fig2}


def verdict(result: dict) -> dict:
    tv, p = result["tv_ratio"], result["probes"]
    smoothing = tv["box 3x3"] < 1 and tv["gaussian s=1"] > tv["gaussian s=2"] > tv["gaussian s=4"] and tv["sharpen"] > 1
    equivariant = p["conv shift equivariance error"] < 1e-5
    conv_shift, pool_shift = p["conv change by shift"], p["conv+pool change by shift"]
    local = all(b < a for a, b in zip(conv_shift, pool_shift, strict=True)
                if result["shifts"][conv_shift.index(a)] < result["pool"])
    not_rot = p["conv rotation equivariance error"] > 0.1 and p["conv+pool rotation equivariance error"] > 0.1
    evidence = {"total variation / original's": {k: round(v, 4) for k, v in tv.items()},
                "conv shift equivariance error": float(f"{p['conv shift equivariance error']:.3g}"),
                "relative output change by shift": {f"{s}px": {"conv": round(a, 4), "conv+pool": round(b, 4)}
                                                    for s, a, b in zip(result["shifts"], conv_shift, pool_shift,
                                                                       strict=True)},
                "rotation equivariance error": {"conv": round(p["conv rotation equivariance error"], 4),
                                                "conv+pool": round(p["conv+pool rotation equivariance error"], 4)}}
    return base.make_verdict(CLAIM, smoothing and equivariant and local and not_rot, evidence,
                             "TV ratio: box < 1, Gaussian decreasing with sigma, sharpen > 1; conv shift-equivariance "
                             "error < 1e-5; for shifts smaller than the pooling window conv+pool changes less than "
                             "conv; rotation-equivariance errors > 0.1 for both")
