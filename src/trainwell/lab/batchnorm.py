"""batchnorm: BatchNorm speeds training and makes a deep net robust to a bad initialization; training only its
gamma and beta learns far above chance (and above as many random parameters); dropout before BatchNorm shifts
the variance, and both fixes reduce the shift.

- Ioffe & Szegedy 2015, "Batch normalization" (ICML): BN before the nonlinearity; faster training, less
  sensitivity to initialization. Here: a 6-hidden-layer ReLU MLP on MNIST-1D trained with SGD + momentum, with
  and without BN, from He init and from the "small random numbers" init N(0, 0.01^2) that collapses the signal.
- Frankle, Schwab & Morcos 2021, "Training BatchNorm and only BatchNorm" (ICLR): every weight frozen at its random
  init except the BN gammas and betas (``train.trainable = "norm"``). Control: the same net with BN's gamma/beta
  frozen and the same number of randomly chosen weights and biases trained instead (a constraint callback puts
  every other entry back after each optimizer step, so only the chosen entries move).
- Li, Chen, Hu & Yang 2019, "Understanding the disharmony between dropout and batch normalization by variance
  shift" (CVPR): inverted dropout (keep p) before a BN layer makes its running variance the training variance,
  larger than the variance it sees at test time (ratio p for zero-mean inputs). The pipeline measures the ratio
  eval-time input variance / running variance per BN layer (``summary["variance_shift"]``); the fixes are
  dropout only after the last BN (``model.dropout_where = "last"``) and Uout noise (``model.dropout_mode = "uout"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainwell.lab import base
from trainwell.nn.norm import norm_parameters
from trainwell.train.callbacks import Callback, State

NAME = "batchnorm"
CLAIM = "BatchNorm speeds training and rescues a bad init; training only BN's gamma/beta is far above chance and " \
        "above as many random parameters; dropout before BN shifts the variance and both fixes reduce the shift"
PAPER = "Ioffe & Szegedy 2015; Frankle et al. 2021 (BN only); Li et al. 2019 (dropout-BN variance shift)"
EXPECTED_S = {"quick": 10, "default": 12}


class TrainRandomSubset(Callback):
    """Train only ``count`` randomly chosen entries of the non-normalization parameters: after every optimizer step
    every other entry is put back to its value at the start of training (an elementwise optimizer then behaves as
    if only the chosen entries were parameters)."""

    def __init__(self, count: int, seed: int = 0):
        self.count, self.seed = count, seed
        self.params: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]] = []

    def on_fit_start(self, state: State) -> None:
        norm = {id(p) for p in norm_parameters(state.model)}
        params = [p for p in state.model.parameters() if id(p) not in norm]
        sizes = [p.numel() for p in params]
        g = torch.Generator().manual_seed(self.seed)
        chosen = torch.randperm(sum(sizes), generator=g)[: self.count]
        flat = torch.zeros(sum(sizes), dtype=torch.bool)
        flat[chosen] = True
        self.params = []
        for p, mask in zip(params, flat.split(sizes), strict=True):
            self.params.append((p, p.detach().clone(), mask.reshape(p.shape).to(p.device)))
        # gamma and beta stay at their init (1, 0): the control trains no normalization parameter
        self.norm = [(p, p.detach().clone()) for p in norm_parameters(state.model)]

    @torch.no_grad()
    def on_batch_end(self, state: State) -> None:
        for p, p0, mask in self.params:
            p.copy_(torch.where(mask, p, p0))
        for p, p0 in self.norm:
            p.copy_(p0)


@dataclass
class Config:
    depth: int = 6
    width: int = 128
    epochs: int = 8
    lr: float = 0.02
    subset_lr: float = 0.01
    subset_epochs: int = 8
    keep: float = 0.5
    val_fraction: float = 0.1
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(width=48, epochs=3, subset_epochs=3, val_fraction=0.75)


def run(cfg: Config, workdir=None) -> dict:
    common = ["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
              f"model.hidden={[cfg.width] * cfg.depth}", "train.batch_size=100", f"train.seed={cfg.seed}",
              "stop.divergence_factor=none"]
    sgd = ["optim.name=momentum", f"optim.lr={cfg.lr}", f"train.epochs={cfg.epochs}"]
    speed = {}
    for init in ("he_normal", "small_normal"):
        for norm in ("none", "batch"):
            t = base.train([*common, *sgd, f"init.scheme={init}", f"model.norm={norm}"], workdir, f"{init}-{norm}")
            speed[f"{init}/{norm}"] = {"init": init, "norm": norm, "curve": [h["train_loss"] for h in t.history],
                                       "final_train_loss": t.history[-1]["train_loss"],
                                       "train_acc": t.final["train_acc"], "test_acc": t.final["test_acc"]}
    adam = ["optim.name=adam", f"optim.lr={cfg.subset_lr}", f"train.epochs={cfg.subset_epochs}", "model.norm=batch"]
    # the learning rate decays to 0, so the running statistics settle on the final weights: what is left of the
    # eval/running variance ratio is the shift, not the lag of a moving average behind moving weights
    settle = ["optim.schedule=cosine"]
    only = base.train([*common, *adam, "train.trainable=norm"], workdir, "bn-only")
    count = only.summary["trainable_params"]
    rand = base.train([*common, *adam], workdir, "random-subset", callbacks=[TrainRandomSubset(count, cfg.seed)])
    subset = {"bn_only": {"trainable": count, "test_acc": only.final["test_acc"], "train_acc": only.final["train_acc"]},
              "random": {"trainable": count, "test_acc": rand.final["test_acc"], "train_acc": rand.final["train_acc"]},
              "total_params": only.summary["params"]}
    shift = {}
    for name, extra in (("dropout before BN", []), ("dropout after the last BN", ["model.dropout_where=last"]),
                        ("uout", ["model.dropout_mode=uout"])):
        t = base.train([*common, *adam, *settle, f"model.dropout_keep={cfg.keep}", *extra], workdir,
                       name.replace(" ", "-"))
        layers = t.summary["variance_shift"]
        shift[name] = {"ratios": [round(r["ratio"], 4) for r in layers],
                       "worst": max((abs(1 - r["ratio"]) for r in layers[1:]), default=0.0),
                       "test_acc": t.final["test_acc"]}
    return {"speed": speed, "subset": subset, "shift": shift, "keep": cfg.keep, "depth": cfg.depth,
            "chance": 0.1}


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(14, 4, ncols=3)
    ax = axes[0][0]
    for key, r in result["speed"].items():
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], "o-" if r["norm"] == "batch" else "s--", label=key)
    ax.set(xlabel="epoch", ylabel="training loss", title=f"{result['depth']}-layer ReLU MLP, SGD + momentum")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    s = result["subset"]
    ax.bar(["BN gamma/beta only", "random params"], [s["bn_only"]["test_acc"], s["random"]["test_acc"]])
    ax.axhline(result["chance"], color="gray", ls=":", label="chance")
    ax.set(ylabel="test accuracy", title=f"{s['bn_only']['trainable']} of {s['total_params']} parameters trained")
    ax.legend()
    ax = axes[0][2]
    for name, r in result["shift"].items():
        ax.plot(range(1, len(r["ratios"]) + 1), r["ratios"], "o-", label=name)
    ax.axhline(1.0, color="gray", ls=":")
    ax.set(xlabel="BN layer", ylabel="eval variance / running variance",
           title=f"Variance shift, dropout keep {result['keep']}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"batchnorm": fig}


def verdict(result: dict) -> dict:
    sp, s, sh = result["speed"], result["subset"], result["shift"]
    faster = sp["he_normal/batch"]["final_train_loss"] < sp["he_normal/none"]["final_train_loss"]
    rescued = (sp["small_normal/none"]["final_train_loss"] > 0.95 * 2.302585
               and sp["small_normal/batch"]["final_train_loss"] < 0.8 * 2.302585)
    chance = result["chance"]
    bn_only = s["bn_only"]["test_acc"] >= 2 * chance and s["bn_only"]["test_acc"] > s["random"]["test_acc"]
    base_shift = sh["dropout before BN"]["worst"]
    fixed = base_shift >= 0.15 and all(sh[k]["worst"] <= 0.5 * base_shift
                                       for k in ("dropout after the last BN", "uout"))
    evidence = {"final train loss": {k: round(v["final_train_loss"], 4) for k, v in sp.items()},
                "test_acc": {k: round(v["test_acc"], 4) for k, v in sp.items()},
                "bn only vs random subset (test acc)": {"bn_only": round(s["bn_only"]["test_acc"], 4),
                                                        "random": round(s["random"]["test_acc"], 4),
                                                        "trainable": s["bn_only"]["trainable"],
                                                        "total": s["total_params"]},
                "variance shift |1 - ratio| (worst BN layer after the first)": {k: round(v["worst"], 4)
                                                                                 for k, v in sh.items()},
                "variance ratios per BN layer": {k: v["ratios"] for k, v in sh.items()},
                "expected ratio with dropout before BN": result["keep"]}
    return base.make_verdict(CLAIM, faster and rescued and bn_only and fixed, evidence,
                             "He init: BN's final train loss < plain; N(0, 0.01^2) init: plain stays > 0.95 ln 10, BN "
                             "< 0.8 ln 10; BN-only test acc >= 2x chance and > the random subset's; dropout before BN "
                             "shifts some BN layer's variance ratio by >= 0.15 and each fix at most halves it")
