"""dropout: vanilla and inverted dropout have the same test-time expectation; dropout narrows the train-validation
gap on a small training set; Drop-Activation and the stochastic delta rule are compared on the same task.

Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov 2014, "Dropout: a simple way to prevent neural networks
from overfitting" (JMLR); Liang et al. 2018, "Drop-Activation"; Frazier-Logue & Hanson 2018, "Dropout is a special
case of the stochastic delta rule". Keep probabilities follow the lecture (p = probability of keeping).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainwell.lab import base
from trainwell.nn.dropout import Dropout

NAME = "dropout"
CLAIM = "Vanilla and inverted dropout give the same test-time expectation, and dropout narrows the train-val gap " \
        "on a small training set"
PAPER = "Srivastava et al. 2014 (dropout); Liang et al. 2018 (Drop-Activation); Frazier-Logue & Hanson 2018 (SDR)"
EXPECTED_S = {"quick": 5, "default": 26}

VARIANTS = {
    "none": [],
    "dropout": ["model.dropout_keep={keep}"],
    "drop-activation": ["model.activation=drop_activation", "model.drop_activation_keep=0.8"],
    "sdr": ["model.sdr=true"],
}


@dataclass
class Config:
    keep: float = 0.5
    val_fraction: float = 0.75  # a small training set: 1000 of MNIST-1D's 4000 training signals
    hidden: int = 256
    epochs: int = 60
    lr: float = 2e-3
    passes: int = 2000
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(hidden=128, epochs=15, passes=1000)


def expectation(keep: float, passes: int, seed: int) -> dict:
    """Mean of ``passes`` training-mode outputs vs the test-mode output, for both dropout modes."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4096, generator=g) + 0.5
    out = {}
    for mode in ("vanilla", "inverted"):
        layer = Dropout(keep, mode)
        torch.manual_seed(seed)
        train_mean = torch.stack([layer.train()(x) for _ in range(passes)]).mean(0)
        test = layer.eval()(x)
        # vanilla scales at test time by keep; inverted scales at training time: each against its own test pass
        out[mode] = {"train_mean": float(train_mean.mean()), "test": float(test.mean()),
                     "rel_error": float((train_mean.mean() - test.mean()).abs() / test.mean())}
    return out


def run(cfg: Config, workdir=None) -> dict:
    common = ["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
              f"model.hidden=[{cfg.hidden}, {cfg.hidden}]", "optim.name=adam", f"optim.lr={cfg.lr}",
              f"train.epochs={cfg.epochs}", "train.batch_size=100", f"train.seed={cfg.seed}"]
    variants = {}
    for name, extra in VARIANTS.items():
        t = base.train([*common, *(e.format(keep=cfg.keep) for e in extra)], workdir, name)
        f = t.final
        variants[name] = {"train_acc": f["train_acc"], "val_acc": f["val_acc"], "test_acc": f["test_acc"],
                          "gap": f["train_acc"] - f["val_acc"], "train_size": t.summary["sizes"]["train"],
                          "curve": [[h["epoch"], h["train_acc"], h.get("val_acc")] for h in t.history]}
    return {"expectation": expectation(cfg.keep, cfg.passes, cfg.seed), "variants": variants, "keep": cfg.keep}


def plot(result: dict) -> dict:
    fig, ax = base.new_figure(7, 4)
    ax = ax[0][0]
    for (name, v), color in zip(result["variants"].items(), ("C0", "C1", "C2", "C3"), strict=False):
        ax.plot([c[0] for c in v["curve"]], [c[1] for c in v["curve"]], "-", color=color, label=f"{name} train")
        ax.plot([c[0] for c in v["curve"]], [c[2] for c in v["curve"]], "--", color=color, label=f"{name} val")
    ax.set(xlabel="epoch", ylabel="accuracy", title="Small training set (MNIST-1D): train vs validation")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"curves": fig}


def verdict(result: dict) -> dict:
    e, v = result["expectation"], result["variants"]
    same = all(m["rel_error"] <= 0.01 for m in e.values())
    narrower = v["dropout"]["gap"] <= v["none"]["gap"] - 0.02
    evidence = {"expectation": e, **{name: {k: round(x[k], 4) for k in ("train_acc", "val_acc", "test_acc", "gap")}
                                     for name, x in v.items()}, "train_size": v["none"]["train_size"]}
    return base.make_verdict(CLAIM, same and narrower, evidence,
                             "train-mode mean within 1% of the test-mode mean for both modes; the dropout net's "
                             "train-val gap >= 2 points smaller than without dropout (Drop-Activation and SDR are "
                             "reported)")
