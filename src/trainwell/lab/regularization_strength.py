"""regularization-strength: an L2 sweep on the widest spirals net; validation accuracy peaks at a middle lambda.

cs231n "Neural Networks 1" (the same 20-neuron spiral net at lambda = 0.001, 0.01, 0.1): too little L2 lets the
net follow the noise, too much underfits (the training accuracy itself falls). The penalty is ``1/2 lambda
sum w^2`` on weights only (:mod:`trainwell.regularize`), added to the mean data loss. Validation accuracy is
measured on a large fresh draw of the spirals (clean labels), averaged over ``repeats`` data draws. The penalty is
applied as coupled weight decay (``optim.weight_decay``, weights only: ``g <- g + lambda w``, the gradient of the
same penalty), so that every lambda of every draw trains at once (``spirals_common.train_members``; a test checks
it against a fit with ``regularize.l2``). The middle lambda's gain over no penalty is
~2 points with a draw-to-draw spread of ~2.5 points (measured on seeds 0-2 with 20 draws: +1.6 to +3.2), hence 60
draws; 5 left it undecided.

A quarter of the training labels are resampled (``data.label_noise``): without wrong labels to memorize, the
spiral nets do not overfit and L2 cannot help. Measured while calibrating (angular noise 0.5, clean labels): 20
and 100x100 hidden units reach 99-100% train and 91-94% fresh-draw accuracy at lambda = 0, and every lambda up to
3e-3 is within a point of that.

Verdict, paired by data draw (every lambda trains on the same draw and is measured on the same fresh draw): the
best middle lambda is chosen on one half of the fresh draw (the selection half, averaged over draws) and measured on
the other half, so the choice does not inflate its own score. Three 95% t intervals over the draws: validation
accuracy of the chosen middle lambda - lambda's smallest > 0, - the largest lambda's > 0, and train accuracy at the
smallest lambda - at the largest > 0 (too much L2 underfits). One draw decides nothing (the quick size). Control:
every lambda set to 0 (the penalty removed): every arm is the same net.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainwell.config import Config as RunConfig
from trainwell.config import load_config
from trainwell.lab import base
from trainwell.lab.spirals_common import boundary_grid, draw_boundary, heldout, spirals_overrides, train_members

NAME = "regularization-strength"
CLAIM = "Regularization strength controls overfitting: validation accuracy vs L2 lambda peaks in the middle, " \
        "and too large a lambda underfits (train accuracy falls)"
PAPER = "cs231n, Neural Networks Part 1 (L2 strength on the 20-neuron spiral net)"
CONTROL = "every lambda set to 0: the L2 penalty removed, every arm the unregularized net"
EXPECTED_S = {"quick": 2, "default": 8}
QUICK_DECIDES = False  # one data draw: no interval over draws
LITERATURE = "cs231n, Neural Networks Part 1 (ConvNetJS spirals, 20 hidden neurons, lambda 0.001/0.01/0.1): a " \
             "figure of decision boundaries that smooth as lambda grows, no accuracies. Ours adds 25% wrong " \
             "labels (the clean spirals do not overfit at this size) and measures accuracy on a fresh draw"


@dataclass
class Config:
    lambdas: list[float] = field(default_factory=lambda: [0.0, 1e-3, 3e-3, 1e-2])
    width: int = 20
    n_per_class: int = 40
    noise: float = 0.2
    label_noise: float = 0.25
    epochs: int = 400
    lr: float = 0.03
    repeats: int = 60
    heldout_per_class: int = 1000
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(lambdas=[0.0, 1e-3, 1e-2], epochs=250, repeats=1, heldout_per_class=500)


def _configs(cfg: Config) -> tuple[list[RunConfig], list[tuple[float, int]]]:
    cfgs, keys = [], []
    for r in range(cfg.repeats):
        seed = cfg.seed * 1000 + r
        over = [*base.LAB_SETTINGS, *spirals_overrides(cfg.n_per_class, cfg.noise, seed, cfg.epochs, cfg.lr),
                f"data.label_noise={cfg.label_noise}", f"data.corrupt_seed={seed + 1}", f"model.hidden=[{cfg.width}]"]
        for lam in cfg.lambdas:
            # coupled weight decay on the weights only: the gradient of regularize.l2's 1/2 lambda sum w^2
            cfgs.append(load_config(None, [*over, f"optim.weight_decay={0.0 if cfg.control else lam}"]))
            keys.append((lam, r))
    return cfgs, keys


def run(cfg: Config, workdir=None) -> dict:
    rows, grids, points = [], {}, None
    cfgs, keys = _configs(cfg)
    # every lambda of every draw trains at once, each on its own draw (spirals_common.train_members)
    trained = dict(zip(keys, train_members(cfgs), strict=True))
    for r in range(cfg.repeats):
        xh, yh = heldout(cfg.heldout_per_class, cfg.noise, cfg.seed * 1000 + r)
        for lam in cfg.lambdas:
            model, splits = trained[(lam, r)]
            # even points of the fresh draw choose the middle lambda, odd points measure it
            rows.append({"lambda": lam, "draw": r, "train_acc": base.accuracy(model, *splits.train),
                         "select_acc": base.accuracy(model, xh[0::2], yh[0::2]),
                         "val_acc": base.accuracy(model, xh[1::2], yh[1::2])})
            if r == 0:
                grids[f"{lam:g}"] = boundary_grid(model)
                points = [splits.train[0].tolist(), splits.train[1].tolist()]
    means = []
    for lam in cfg.lambdas:
        mine = [r for r in rows if r["lambda"] == lam]
        means.append({"lambda": lam, **{k: sum(r[k] for r in mine) / len(mine)
                                            for k in ("train_acc", "select_acc", "val_acc")}})
    return {"lambdas": cfg.lambdas, "width": cfg.width, "rows": rows, "means": means, "grids": grids,
            "points": points, "repeats": cfg.repeats, "control": cfg.control}


def plot(result: dict) -> dict:
    lams = result["lambdas"]
    fig, axes = base.new_figure(3.3 * len(lams), 3.5, ncols=len(lams))
    for ax, lam, m in zip(axes[0], lams, result["means"], strict=True):
        draw_boundary(ax, result["grids"][f"{lam:g}"], result["points"],
                      f"λ={lam:g}: train {m['train_acc']:.0%}, val {m['val_acc']:.0%}")
    fig.tight_layout()
    fig2, ax = base.new_figure(5, 3.5)
    ax = ax[0][0]
    xs = list(range(len(lams)))
    ax.plot(xs, [m["train_acc"] for m in result["means"]], "o-", label="train")
    ax.plot(xs, [m["val_acc"] for m in result["means"]], "s--", label="validation (fresh draw)")
    ax.set_xticks(xs, [f"{lam:g}" for lam in lams])
    ax.set(xlabel="L2 lambda", ylabel="accuracy", title=f"L2 strength, {result['width']} hidden neurons")
    ax.legend()
    ax.grid(alpha=0.3)
    fig2.tight_layout()
    return {"boundaries": fig, "accuracy_vs_lambda": fig2}


def _per_draw(result: dict, lam: float, key: str) -> list[float]:
    return [r[key] for r in sorted((r for r in result["rows"] if r["lambda"] == lam), key=lambda r: r["draw"])]


def chosen_lambda(result: dict) -> float:
    """The middle lambda (neither the smallest nor the largest) with the best mean selection-half accuracy."""
    middle = [m for m in result["means"] if m["lambda"] not in (result["lambdas"][0], result["lambdas"][-1])]
    return max(middle, key=lambda m: m.get("select_acc", m["val_acc"]))["lambda"]


def verdict(result: dict) -> dict:
    means, lams = result["means"], result["lambdas"]
    evidence = {f"lambda {m['lambda']:g}": {"train_acc": round(m["train_acc"], 4), "val_acc": round(m["val_acc"], 4)}
                for m in means}
    threshold = ("95% t intervals over data draws, paired by draw: validation accuracy (held-out half of the fresh "
                 "draw) of the best middle lambda (chosen on the other half) - the smallest lambda's > 0 and - the "
                 "largest lambda's > 0; train accuracy at the smallest lambda - at the largest > 0")
    if len(lams) < 3:
        crit = base.check("at least three lambdas", False, len(lams), ">= 3")
        crit["status"] = "inconclusive"
        return base.decide(CLAIM, [crit], evidence, threshold)
    best = chosen_lambda(result)
    val_best = _per_draw(result, best, "val_acc")

    def diffs(a, b):
        return [x - y for x, y in zip(a, b, strict=True)]

    method, n = "paired t over data draws", result["repeats"]
    criteria = [
        base.criterion(f"validation accuracy: lambda {best:g} - lambda {lams[0]:g}",
                       *base.mean_interval(diffs(val_best, _per_draw(result, lams[0], "val_acc"))), 0.0,
                       method=method, n=n),
        base.criterion(f"validation accuracy: lambda {best:g} - lambda {lams[-1]:g}",
                       *base.mean_interval(diffs(val_best, _per_draw(result, lams[-1], "val_acc"))), 0.0,
                       method=method, n=n),
        base.criterion(f"train accuracy: lambda {lams[0]:g} - lambda {lams[-1]:g} (underfitting)",
                       *base.mean_interval(diffs(_per_draw(result, lams[0], "train_acc"),
                                                 _per_draw(result, lams[-1], "train_acc"))), 0.0,
                       method=method, n=n)]
    evidence.update(chosen_lambda=best, draws=result["repeats"], literature=LITERATURE)
    return base.decide(CLAIM, criteria, evidence, threshold)
