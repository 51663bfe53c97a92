"""init-symmetry-and-scale: zero initialization never breaks the symmetry between hidden units, and small random
weights N(0, 0.01^2) make the activations collapse with depth.

cs231n, "Neural Networks Part 2" (weight initialization): with all weights zero, every hidden unit computes the
same output and receives the same update, so after any amount of training all rows of a hidden weight matrix are
still identical; the lecture's alternative, "small random numbers", works for small nets but in a 10-layer tanh
net of 500 units per layer (cs231n's per-layer std figure, unit Gaussian inputs) each layer multiplies the
activation std by about 0.01 * sqrt(500) * tanh'(0) = 0.22, so the last layer's activations are ~1e-6 of the
first's. Standard (LeCun), Xavier and He are measured on the same net for comparison. The zero-init and the
He-init MLPs are trained by the pipeline on MNIST-1D; the per-layer statistics are computed at initialization.

Zero weights *and* zero biases give zero gradients to every hidden weight, so "rows identical" would hold only
because nothing moved. The lecture's ReLU bias 0.01 is used (``init.bias``), and the verdict also asserts that the
zero-initialized hidden weights moved (their largest |w| after training > 0; they move slowly, ~1e-6 after 10
epochs, from a saddle) while the rows stayed identical (spread <= 1e-6 of that movement: exactly 0 here).
These are exact measurements of one deterministic run (no sampling to put an interval on). Control: zero init
replaced by He init and N(0, 0.01^2) by Xavier (the two inits under test replaced by the working ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainwell.lab import base
from trainwell.lab.probes import init_mlp, layer_signals

NAME = "init-symmetry-and-scale"
CLAIM = "Zero init leaves all hidden units identical after training although their weights move; N(0, 0.01^2) " \
        "init collapses the activations of a deep tanh net layer after layer"
PAPER = "cs231n, Neural Networks Part 2 (weight initialization, per-layer activation statistics)"
CONTROL = "zero init replaced by He init and N(0, 0.01^2) by Xavier: the inits under test replaced by working ones"
EXPECTED_S = {"quick": 3, "default": 4}
LITERATURE = "cs231n (Neural Networks Part 2, per-layer activation std figure, 10 tanh layers of 500 units): " \
             "with N(0, 0.01^2) the std falls from ~0.21 at layer 1 to ~2e-6 at layer 10"
BIAS = 0.01  # the lecture's bias for ReLU units: with zero biases too, a zero-initialized net does not move at all
SCALE_SCHEMES = ("small_normal", "standard", "xavier_normal", "he_normal")


@dataclass
class Config:
    depth: int = 10
    width: int = 500
    examples: int = 1000
    hidden: int = 64
    epochs: int = 10
    lr: float = 0.05
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(width=200, examples=300, hidden=32, epochs=3)


def spread(weight: torch.Tensor) -> float:
    """How different the hidden units are: the largest |W[i] - W[0]| over rows i (0 = all units identical)."""
    return float((weight - weight[:1]).abs().max())


def run(cfg: Config, workdir=None) -> dict:
    training = {}
    for scheme in ("zeros", "he_normal"):
        used = "he_normal" if cfg.control else scheme
        t = base.train(["data.name=mnist1d", "model.kind=mlp", f"model.hidden=[{cfg.hidden}, {cfg.hidden}]",
                        f"init.scheme={used}", f"init.bias={BIAS}", "optim.name=momentum", f"optim.lr={cfg.lr}",
                        f"train.epochs={cfg.epochs}", "train.batch_size=100", f"train.seed={cfg.seed}"],
                       workdir, scheme)
        hidden = base.weights(t.model)[:-1]  # the output layer's rows are classes, not hidden units
        training[scheme] = {"spread": [spread(w) for w in hidden], "train_acc": t.final["train_acc"],
                            "test_acc": t.final["test_acc"], "steps": t.summary["steps"],
                            "weight_abs_max": [float(w.abs().max()) for w in hidden]}
    g = torch.Generator().manual_seed(cfg.seed)
    x = torch.randn(cfg.examples, cfg.width, generator=g)
    y = torch.randint(0, 10, (cfg.examples,), generator=g)
    scale, samples = {}, {}
    for scheme in SCALE_SCHEMES:
        used = "xavier_normal" if cfg.control and scheme == "small_normal" else scheme
        model = init_mlp((cfg.width,), [cfg.width] * cfg.depth, 10, used, activation="tanh", seed=cfg.seed,
                         output_layer="same")
        sig = layer_signals(model, x, y, keep=2000 if scheme == "small_normal" else 0)
        scale[scheme] = sig["activations"]
        if scheme == "small_normal":
            samples = sig["samples"]["activations"]
    return {"training": training, "scale": scale, "small_normal_samples": samples, "depth": cfg.depth,
            "width": cfg.width, "bias": BIAS, "control": cfg.control}


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(11, 4, ncols=2)
    ax = axes[0][0]
    for scheme, stds in result["scale"].items():
        ax.semilogy(range(1, len(stds) + 1), stds, "o-", ms=3, label=scheme)
    ax.set(xlabel="hidden layer", ylabel="activation std at init",
           title=f"{result['depth']} tanh layers of {result['width']}, unit Gaussian inputs")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    tr = result["training"]
    names = list(tr)
    layers = len(tr[names[0]]["spread"])
    for i, name in enumerate(names):
        ax.bar([j + 0.4 * i for j in range(layers)], [max(s, 1e-12) for s in tr[name]["spread"]], 0.4,
               label=f"{name} (train acc {tr[name]['train_acc']:.0%})")
        for j, s in enumerate(tr[name]["spread"]):
            if s == 0:
                ax.text(j + 0.4 * i, 1e-12, "0: identical", ha="center", va="bottom", fontsize=7)
    ax.set(yscale="log", xticks=[j + 0.2 for j in range(layers)], xticklabels=[f"layer {j + 1}" for j in range(layers)],
           ylabel="max |W[i] - W[0]| after training", title="Symmetry between hidden units")
    ax.legend()
    fig.tight_layout()
    samples = result["small_normal_samples"]
    fig2, axes2 = base.new_figure(2 * len(samples), 2.4, ncols=len(samples))
    for i, (ax, values) in enumerate(zip(axes2[0], samples, strict=True)):
        ax.hist(values, bins=30)
        ax.set_title(f"layer {i + 1}", fontsize=8)
        ax.tick_params(labelsize=6)
    fig2.suptitle("N(0, 0.01^2) init: activations per layer (cs231n)", fontsize=9)
    fig2.tight_layout()
    return {"scale_and_symmetry": fig, "small_normal_histograms": fig2}


def verdict(result: dict) -> dict:
    tr, scale = result["training"], result["scale"]
    ratio = {s: v[-1] / v[0] for s, v in scale.items()}
    moved = min(tr["zeros"]["weight_abs_max"])
    criteria = [
        base.check("zero init: hidden rows identical after training (spread <= 1e-6 x max |w|)",
                   all(sp <= 1e-6 * w for sp, w in zip(tr["zeros"]["spread"], tr["zeros"]["weight_abs_max"],
                                                        strict=True)), max(tr["zeros"]["spread"]), "<= 1e-6 max |w|"),
        base.check("zero init: hidden weights moved (every layer's max |w| > 0; with zero biases it stays 0)",
                   moved > 0, moved, "> 0"),
        base.check("He init: hidden rows differ (min spread > 1e-2)", min(tr["he_normal"]["spread"]) > 1e-2,
                   min(tr["he_normal"]["spread"]), "> 1e-2"),
        base.check("N(0, 0.01^2): activation std last/first < 1e-4", ratio["small_normal"] < 1e-4,
                   ratio["small_normal"], "< 1e-4"),
        base.check("Xavier: activation std last/first > 0.1", ratio["xavier_normal"] > 0.1, ratio["xavier_normal"],
                   "> 0.1"),
    ]
    evidence = {"zero init: max row spread per hidden layer": tr["zeros"]["spread"],
                "zero init: max |w| per hidden layer after training": tr["zeros"]["weight_abs_max"],
                "he init: max row spread per hidden layer": [round(s, 4) for s in tr["he_normal"]["spread"]],
                "train_acc": {k: round(v["train_acc"], 4) for k, v in tr.items()}, "bias": result.get("bias"),
                "activation std last/first layer at init": {k: float(f"{v:.3g}") for k, v in ratio.items()},
                "small_normal std per layer": [float(f"{v:.3g}") for v in scale["small_normal"]],
                "literature": LITERATURE}
    return base.decide(CLAIM, criteria, evidence,
                       "exact, one deterministic run: after training with bias 0.01, zero init's hidden weights "
                       "moved (max |w| > 0) and its rows differ by <= 1e-6 of that, He's rows by > 1e-2; at init the "
                       "last/first layer activation std ratio is < 1e-4 with N(0, 0.01^2) and > 0.1 with Xavier")
