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

Verdict: the filters' effects on this photograph and the convolution's shift-equivariance (to float precision) are
deterministic facts, checked exactly. Pooling's local invariance and the absence of rotation-equivariance are
estimated over ``probes`` random convolutions (independent draws of the filters): for each shift smaller than the
pooling window, conv's relative output change minus conv+pool's, and each rotation-equivariance error minus 0.1,
with a Student's t interval over the probes above 0. Control: every filter and every random convolution replaced
by the identity kernel and the pooling window by 1x1 (the operations under test made the identity).
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
CONTROL = "every filter and every random convolution replaced by the identity kernel, pooling by a 1x1 window: " \
          "the operations under test made the identity"
EXPECTED_S = {"quick": 1, "default": 1}
LITERATURE = "Goodfellow et al. 2016, sec. 9.3-9.4 and the lecture's slides state the properties without numbers " \
             "(convolution commutes with translation; pooling makes a representation approximately invariant " \
             "to small translations; neither handles rotation); ours measures them on one photograph: shift " \
             "error 0 away from the borders, rotation errors 0.39-0.51 (relative), and 4x4 max-pooling lowering " \
             "the relative change under 1-3 pixel shifts by 0.13-0.15"


@dataclass
class Config:
    size: int = 128
    channels: int = 8
    kernel: int = 5
    pool: int = 4
    shifts: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 8])
    probes: int = 8
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(size=64, shifts=[1, 2, 4], probes=5)


def total_variation(img: torch.Tensor) -> float:
    """Mean absolute difference between horizontally and vertically neighbouring pixels."""
    return float(((img[..., 1:, :] - img[..., :-1, :]).abs().mean() + (img[..., :, 1:] - img[..., :, :-1]).abs()
                  .mean()) / 2)


def run(cfg: Config, workdir=None) -> dict:
    if cfg.probes < 2:
        raise ValueError(f"probes={cfg.probes} is not allowed: use at least 2 (an interval needs two probes)")
    photo = filters.sample_photo(cfg.size)
    tv0 = total_variation(photo)
    bank = {name: torch.ones(1, 1) if cfg.control else k for name, k in filters.bank().items()}
    filtered = {name: filters.apply(photo, k) for name, k in bank.items()}
    pool = 1 if cfg.control else cfg.pool
    tv = {name: total_variation(img) / tv0 for name, img in filtered.items()}
    x = photo[None, None]
    probes = []
    for k in range(cfg.probes):
        torch.manual_seed(cfg.seed * 100 + k)
        conv = nn.Conv2d(1, cfg.channels, cfg.kernel, padding=cfg.kernel // 2, bias=False)
        if cfg.control:
            with torch.no_grad():
                conv.weight.zero_()
                conv.weight[:, :, cfg.kernel // 2, cfg.kernel // 2] = 1.0
        pooled = nn.Sequential(conv, nn.MaxPool2d(pool))
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
    per_probe = {key: [p[key] for p in probes] for key in probes[0]}
    small = {name: img[:: max(1, cfg.size // 64), :: max(1, cfg.size // 64)].tolist() for name, img in
             {"photo": photo, **filtered}.items()}
    return {"tv_ratio": tv, "probes": mean, "per_probe": per_probe, "shifts": cfg.shifts, "pool": pool,
            "images": small, "control": cfg.control}


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
    tv, p, per = result["tv_ratio"], result["probes"], result["per_probe"]
    n, method = len(per["conv shift equivariance error"]), "t interval over random convolutions"
    criteria = [
        base.check("box 3x3 lowers the variation (TV ratio < 1)", tv["box 3x3"] < 1, round(tv["box 3x3"], 4), "< 1"),
        base.check("Gaussian: the wider, the smoother (TV ratio s=1 > s=2 > s=4)",
                   tv["gaussian s=1"] > tv["gaussian s=2"] > tv["gaussian s=4"],
                   [round(tv[f"gaussian s={k}"], 4) for k in (1, 2, 4)], "decreasing"),
        base.check("sharpen raises the variation (TV ratio > 1)", tv["sharpen"] > 1, round(tv["sharpen"], 4), "> 1"),
        base.check("convolution is shift-equivariant (every probe's error < 1e-5)",
                   max(per["conv shift equivariance error"]) < 1e-5,
                   float(f"{max(per['conv shift equivariance error']):.3g}"), "< 1e-5"),
    ]
    small = [i for i, s in enumerate(result["shifts"]) if s < result["pool"]]
    for i in small:
        diffs = [a[i] - b[i] for a, b in zip(per["conv change by shift"], per["conv+pool change by shift"],
                                             strict=True)]
        criteria.append(base.criterion(f"{result['shifts'][i]}px shift: conv change - conv+pool change",
                                       *base.mean_interval(diffs), 0.0, method=method, n=n))
    if not small:  # a pooling window of 1 has no shift smaller than itself: nothing is invariant
        criteria.append(base.check("a shift smaller than the pooling window exists", False, result["pool"], "> 1"))
    for key in ("conv rotation equivariance error", "conv+pool rotation equivariance error"):
        criteria.append(base.criterion(key, *base.mean_interval(per[key]), 0.1, method=method, n=n))
    conv_shift, pool_shift = p["conv change by shift"], p["conv+pool change by shift"]
    evidence = {"total variation / original's": {k: round(v, 4) for k, v in tv.items()},
                "conv shift equivariance error": float(f"{p['conv shift equivariance error']:.3g}"),
                "relative output change by shift": {f"{s}px": {"conv": round(a, 4), "conv+pool": round(b, 4)}
                                                    for s, a, b in zip(result["shifts"], conv_shift, pool_shift,
                                                                       strict=True)},
                "rotation equivariance error": {"conv": round(p["conv rotation equivariance error"], 4),
                                                "conv+pool": round(p["conv+pool rotation equivariance error"], 4)},
                "probes": n, "pool": result["pool"], "literature": LITERATURE}
    return base.decide(CLAIM, criteria, evidence,
                       "exact: TV ratio box < 1, Gaussian decreasing with sigma, sharpen > 1, conv shift-equivariance "
                       "error < 1e-5 on every probe; 95% t intervals over random convolutions: for every shift "
                       "smaller than the pooling window conv's change minus conv+pool's > 0, and both "
                       "rotation-equivariance errors > 0.1")
