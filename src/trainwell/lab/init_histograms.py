"""init-histograms: Glorot & Bengio's figures 6 and 7 — with the "standard" initialization the activations shrink
from layer to layer and the back-propagated gradients shrink toward the input; with the normalized (Xavier)
initialization both stay roughly level.

Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks" (AISTATS),
section 4.2, figures 6-7: five tanh hidden layers, standard init U[-1/sqrt(n), 1/sqrt(n)] (n Var(w) = 1/3, so in
tanh's linear regime each layer multiplies the activation variance by 1/3, section 4.2.1) against normalized init
U[+-sqrt(6 / (n_in + n_out))]. Measured here at initialization on MNIST-1D inputs (one forward and backward pass of
the cross-entropy loss, no training): the std of every hidden layer's activations and of the loss gradient with
respect to its pre-activations. The paper's figures are normalized histograms, not stds: the numbers it gives are
the analysis's factor 1/3 per layer, which we compare with.

Verdict over ``draws`` independent initializations (each its own weights and its own random batch of examples):
for each ratio a Student's t interval of its logarithm over the draws (a geometric mean and its interval). Standard
init passes when the activation std falls by more than a factor 2 from the first hidden layer to the last and the
gradient std by more than a factor 2 from the last to the first (the intervals of both shrink factors above 2);
normalized init passes when both ratios lie within [1/2, 2] (each interval inside). Control: the standard arm
initialized with the normalized scheme (the scheme under test made equal to the baseline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainwell.lab import base
from trainwell.lab.probes import init_mlp, layer_signals

NAME = "init-histograms"
CLAIM = "With standard init, activation and back-propagated gradient spreads shrink with depth (gradients toward " \
        "the input); with normalized (Xavier) init both stay roughly level"
PAPER = "Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural networks, figs 6-7"
CONTROL = "the standard arm initialized with the normalized (Xavier) scheme: the scheme under test made equal to " \
          "the baseline"
EXPECTED_S = {"quick": 2, "default": 5}
SCHEMES = {"standard": "standard", "normalized": "xavier_uniform"}
# the standard-init activation stds per hidden layer measured on MNIST-1D when the lab was calibrated (SCIENCE.md):
# our own earlier measurement, not numbers from the paper (Glorot & Bengio's figures 6-7 are histograms)
EARLIER_STANDARD = [0.45, 0.24, 0.14, 0.08, 0.05]
LITERATURE = "Glorot & Bengio 2010, figs 6-7 (Shapeset-3x2, 5 tanh layers of 1000 units): normalized histograms, " \
             "no stds; with standard init the activation histograms narrow layer by layer and the gradients' peak " \
             "at 0 grows toward the input, with normalized init both keep their spread. The paper's number is its " \
             "linear-regime analysis (sec. 4.2.1: n Var(W) = 1/3, the variance x1/3 per layer), a std ratio " \
             "last/first of 3^-2 = 0.11 over 4 layer steps; ours on MNIST-1D (width 1000) is 0.10 for activations " \
             "(tanh is near-linear at these scales) and 0.084 for gradients first/last"


@dataclass
class Config:
    layers: int = 5
    width: int = 1000
    examples: int = 1000
    draws: int = 5
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(width=300, examples=300, draws=3)


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.data import load

    if cfg.draws < 2:
        raise ValueError(f"draws={cfg.draws} is not allowed: use at least 2 (an interval needs two draws)")
    splits = load("mnist1d", seed=cfg.seed, val_fraction=0.0)
    xs, ys = splits.train
    schemes = {**SCHEMES, "standard": SCHEMES["normalized"]} if cfg.control else SCHEMES
    out = {name: {"activation_std": [], "gradient_std": [], "loss": []} for name in schemes}
    for d in range(cfg.draws):
        seed = cfg.seed * 1000 + d
        pick = torch.randperm(len(xs), generator=torch.Generator().manual_seed(seed))[: cfg.examples]
        for name, scheme in schemes.items():
            model = init_mlp((1, 40), [cfg.width] * cfg.layers, 10, scheme, activation="tanh", seed=seed,
                             output_layer="same")
            sig = layer_signals(model, xs[pick], ys[pick], keep=3000 if d == 0 else 0)
            out[name]["activation_std"].append(sig["activations"])
            out[name]["gradient_std"].append(sig["gradients"])
            out[name]["loss"].append(sig["loss"])
            if d == 0:
                out[name]["samples"] = sig["samples"]
    return {"schemes": out, "layers": cfg.layers, "width": cfg.width, "draws": cfg.draws, "control": cfg.control,
            "used": schemes, "earlier_standard": EARLIER_STANDARD}


def _mean_per_layer(draws: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*draws, strict=True)]


def plot(result: dict) -> dict:
    figs = {}
    for kind, title in (("activations", "Activation values (fig. 6)"),
                        ("gradients", "Back-propagated gradients (fig. 7)")):
        fig, axes = base.new_figure(10, 6, nrows=2)
        for ax, (name, s) in zip(axes[:, 0], result["schemes"].items(), strict=True):
            values = s["samples"][kind]
            lim = max(max(abs(v) for v in layer) for layer in values) or 1.0
            for i, layer in enumerate(values):
                ax.hist(layer, bins=60, range=(-lim, lim), histtype="step", density=True, label=f"layer {i + 1}")
            ax.set(title=f"{title}: {name} arm ({result['used'][name]} init)", ylabel="density")
            ax.legend(fontsize=7)
        fig.tight_layout()
        figs[kind] = fig
    fig, axes = base.new_figure(10, 3.5, ncols=2)
    layers = range(1, result["layers"] + 1)
    for ax, key, label in ((axes[0][0], "activation_std", "activation std"),
                           (axes[0][1], "gradient_std", "gradient std (w.r.t. pre-activation)")):
        for name, s in result["schemes"].items():
            ax.semilogy(layers, _mean_per_layer(s[key]), "o-", label=f"{name} arm ({result['used'][name]})")
        if key == "activation_std":
            first = _mean_per_layer(result["schemes"]["standard"][key])[0]
            ax.semilogy(layers, [first * 3 ** (-k / 2) for k in range(result["layers"])], "k--", lw=0.8,
                        label="x 3^-1/2 per layer (paper's sec. 4.2.1)")
            ax.semilogy(layers, result["earlier_standard"], "k:", label="standard, our earlier measurement")
        ax.set(xlabel="hidden layer", ylabel=label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    figs["std_per_layer"] = fig
    return figs


def ratio_interval(ratios: list[float]) -> tuple[float, float, float]:
    """``(geometric mean, lo, hi)`` of positive ratios: Student's t interval of their logarithms, exponentiated."""
    if any(not (r > 0 and math.isfinite(r)) for r in ratios):
        return math.nan, math.nan, math.nan
    m, lo, hi = base.mean_interval([math.log(r) for r in ratios])
    return math.exp(m), math.exp(lo), math.exp(hi)


def _ratios(draws: list[list[float]], top: int, bottom: int) -> list[float]:
    return [layers[top] / layers[bottom] if layers[bottom] > 0 else math.inf for layers in draws]


def verdict(result: dict) -> dict:
    s, n = result["schemes"], result["draws"]
    method = "t interval of log ratios over independent initializations"
    criteria = []
    for what, key, top, bottom in (("activation std first/last", "activation_std", 0, -1),
                                   ("gradient std last/first", "gradient_std", -1, 0)):
        shrink = ratio_interval(_ratios(s["standard"][key], top, bottom))
        criteria.append(base.criterion(f"standard: {what} (shrink factor)", *shrink, 2.0, method=method, n=n))
    for what, key in (("activation std", "activation_std"), ("gradient std", "gradient_std")):
        r, lo, hi = ratio_interval(_ratios(s["normalized"][key], -1, 0))
        criteria.append(base.criterion(f"normalized: {what} last/first", r, lo, hi, 0.5, method=method, n=n))
        criteria.append(base.criterion(f"normalized: {what} first/last", 1 / r, 1 / hi, 1 / lo, 0.5, method=method,
                                       n=n))
    evidence = {name: {"init": result["used"][name],
                       "activation std per layer (mean of draws)": [round(v, 4)
                                                                    for v in _mean_per_layer(x["activation_std"])],
                       "gradient std per layer (mean of draws)": [float(f"{v:.3g}")
                                                                  for v in _mean_per_layer(x["gradient_std"])]}
                for name, x in s.items()}
    evidence["draws"] = n
    evidence["standard-init activation stds measured earlier on MNIST-1D (ours, not the paper's)"] = \
        result["earlier_standard"]
    evidence["literature"] = LITERATURE
    return base.decide(CLAIM, criteria, evidence,
                       "95% t intervals over initializations (log scale): standard init's activation std shrinks "
                       "first -> last hidden layer and its gradient std last -> first by more than a factor 2 "
                       "(intervals above 2); normalized init's ratios last/first within [1/2, 2] (both intervals "
                       "inside)")
