"""adam-l2-vs-adamw: with Adam, L2 in the gradient (coupled) and decoupled weight decay are different
regularizers (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization", ICLR).

Coupled: g <- g + lambda w, then Adam divides it by sqrt(v), so weights with large gradients are barely decayed.
Decoupled (AdamW): w <- w - lr lambda w beside Adam's step, the same relative shrinkage for every weight. The same
MLP is trained on MNIST-1D with both at each lambda; the weight norm and accuracy of each are reported, and the
better one at each lambda is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainwell.lab import base

NAME = "adam-l2-vs-adamw"
CLAIM = "With Adam, coupled L2 and decoupled weight decay give different weight norms and accuracies on the " \
        "same task"
PAPER = "Loshchilov & Hutter 2019, Decoupled Weight Decay Regularization"
EXPECTED_S = {"quick": 5, "default": 23}


@dataclass
class Config:
    lambdas: list[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0])
    hidden: list[int] | None = None
    epochs: int = 20
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self):
        if self.hidden is None:
            self.hidden = [100, 100]

    @classmethod
    def quick(cls) -> Config:
        return cls(lambdas=[1e-2, 1e-1], epochs=8)


def run(cfg: Config, workdir=None) -> dict:
    common = ["data.name=mnist1d", "model.kind=mlp", f"model.hidden={cfg.hidden}", "optim.name=adam",
              f"optim.lr={cfg.lr}", f"train.epochs={cfg.epochs}", f"train.seed={cfg.seed}"]
    rows = []
    for lam in cfg.lambdas:
        for decay in ("coupled", "decoupled"):
            t = base.train([*common, f"optim.weight_decay={lam}", f"optim.decay={decay}"], workdir,
                           f"{decay}-{lam:g}")
            norm = float(torch.sqrt(sum((w ** 2).sum() for w in base.weights(t.model))))
            rows.append({"lambda": lam, "decay": decay, "weight_norm": norm, "val_acc": t.final["val_acc"],
                         "test_acc": t.final["test_acc"], "train_acc": t.final["train_acc"]})
    return {"lambdas": cfg.lambdas, "rows": rows}


def _pairs(result: dict):
    for lam in result["lambdas"]:
        c = next(r for r in result["rows"] if r["lambda"] == lam and r["decay"] == "coupled")
        d = next(r for r in result["rows"] if r["lambda"] == lam and r["decay"] == "decoupled")
        yield lam, c, d


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(10, 3.8, ncols=2)
    for decay, style in (("coupled", "o-"), ("decoupled", "s--")):
        rows = [r for r in result["rows"] if r["decay"] == decay]
        label = "Adam + L2 (coupled)" if decay == "coupled" else "AdamW (decoupled)"
        axes[0][0].plot([r["lambda"] for r in rows], [r["weight_norm"] for r in rows], style, label=label)
        axes[0][1].plot([r["lambda"] for r in rows], [r["val_acc"] for r in rows], style, label=label)
    axes[0][0].set(xscale="log", yscale="log", xlabel="lambda", ylabel="weight norm", title="Weight norm")
    axes[0][1].set(xscale="log", xlabel="lambda", ylabel="validation accuracy", title="Accuracy")
    for ax in axes[0]:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"norm_and_accuracy": fig}


def verdict(result: dict) -> dict:
    evidence, norm_differs, acc_differs = {}, False, False
    for lam, c, d in _pairs(result):
        ratio = c["weight_norm"] / max(d["weight_norm"], 1e-12)
        diff = d["val_acc"] - c["val_acc"]
        norm_differs |= ratio >= 1.5 or ratio <= 1 / 1.5
        acc_differs |= abs(diff) >= 0.02
        evidence[f"lambda {lam:g}"] = {
            "coupled": {"weight_norm": round(c["weight_norm"], 3), "val_acc": round(c["val_acc"], 4)},
            "decoupled": {"weight_norm": round(d["weight_norm"], 3), "val_acc": round(d["val_acc"], 4)},
            "norm_ratio_coupled_over_decoupled": round(ratio, 3),
            "better": "decoupled" if diff > 0 else "coupled" if diff < 0 else "tie"}
    return base.make_verdict(CLAIM, norm_differs and acc_differs, evidence,
                             "at some lambda the weight norms differ by a factor >= 1.5, and at some lambda the "
                             "validation accuracies differ by >= 2 points")
