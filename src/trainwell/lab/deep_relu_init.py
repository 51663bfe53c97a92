"""deep-relu-init: He initialization trains a 30-layer plain ReLU net where Xavier stalls; at 22 layers both train,
He earlier.

He, Zhang, Ren & Sun 2015, "Delving deep into rectifiers" (ICCV), figures 2 and 3: a ReLU halves the variance of
its input, so Xavier's Var(w) = 2 / (n_in + n_out) = 1 / n (square layers) loses a factor 2 per layer and the
signal vanishes with depth; He's Var(w) = 2 / n_in keeps it. Here the nets are plain MLPs on MNIST-1D (no
normalization, no skip connections), trained by the pipeline with SGD + momentum (Adam would rescale the vanishing
gradients and rescue Xavier). Measured beside the training: the std of every hidden layer's activations at
initialization (SCIENCE.md: at 30 layers of width 256 the ratio layer30 / layer1 is < 1e-3 with Xavier and within
[0.3, 3] with He).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainwell.lab import base
from trainwell.lab.probes import init_mlp, layer_signals
from trainwell.train.callbacks import StepLosses

NAME = "deep-relu-init"
CLAIM = "A 30-layer plain ReLU net trains with He init and stalls with Xavier (loss stays near ln 10); at 22 " \
        "layers both train, He earlier"
PAPER = "He, Zhang, Ren & Sun 2015, Delving deep into rectifiers, figures 2-3"
EXPECTED_S = {"quick": 7, "default": 25}
SCHEMES = {"he": "he_normal", "xavier": "xavier_normal"}
LN10 = math.log(10)


@dataclass
class Config:
    deep: int = 30
    shallow: int = 22
    width: int = 64
    epochs: int = 20  # Xavier's 22-layer net leaves ln 10 after 185-480 steps (seeds 0-2); its 30-layer net never
    lr: float = 0.02
    val_fraction: float = 0.1
    probe_width: int = 256
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(width=32, epochs=4, val_fraction=0.75, probe_width=128)


def _smooth(values: list[float], window: int) -> list[float]:
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def first_below(losses: list[float], target: float, window: int = 10) -> int | None:
    """The first step (1-based) whose running mean over ``window`` steps is below ``target``; None if never."""
    return next((i + 1 for i, v in enumerate(_smooth(losses, window)) if v < target), None)


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.data import load

    splits = load("mnist1d", seed=cfg.seed, val_fraction=0.0)
    x, y = splits.train[0][:512], splits.train[1][:512]
    probe = {}
    for name, scheme in SCHEMES.items():
        model = init_mlp((1, 40), [cfg.probe_width] * cfg.deep, 10, scheme, seed=cfg.seed)
        probe[name] = layer_signals(model, x, y)["activations"]
    runs = {}
    for depth in (cfg.deep, cfg.shallow):
        for name, scheme in SCHEMES.items():
            steps = StepLosses()
            t = base.train(["data.name=mnist1d", f"data.val_fraction={cfg.val_fraction}", "model.kind=mlp",
                            f"model.hidden={[cfg.width] * depth}", f"init.scheme={scheme}", "optim.name=momentum",
                            f"optim.lr={cfg.lr}", f"train.epochs={cfg.epochs}", "train.batch_size=100",
                            f"train.seed={cfg.seed}", "stop.divergence_factor=none"], workdir,
                           f"{name}-{depth}layers", callbacks=[steps])
            runs[f"{name}-{depth}"] = {"depth": depth, "init": name, "step_losses": steps.losses,
                                       "final_train_loss": t.history[-1]["train_loss"],
                                       "train_acc": t.final["train_acc"], "test_acc": t.final["test_acc"],
                                       "epochs": t.summary["epochs"], "steps": t.summary["steps"]}
    return {"deep": cfg.deep, "shallow": cfg.shallow, "width": cfg.width, "probe_width": cfg.probe_width,
            "probe": probe, "runs": runs, "ln10": LN10}


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(13, 4, ncols=3)
    ax = axes[0][0]
    for name, stds in result["probe"].items():
        ax.semilogy(range(1, len(stds) + 1), stds, "o-", ms=3, label=name)
    ax.set(xlabel="hidden layer", ylabel="activation std at init",
           title=f"{result['deep']} ReLU layers of {result['probe_width']}")
    ax.legend()
    ax.grid(alpha=0.3)
    for ax, depth in zip(axes[0][1:], (result["deep"], result["shallow"]), strict=True):
        for name, color in (("he", "C3"), ("xavier", "C0")):
            r = result["runs"][f"{name}-{depth}"]
            ax.plot(_smooth(r["step_losses"], 10), color=color, label=f"{name} (test {r['test_acc']:.0%})")
        ax.axhline(result["ln10"], color="gray", ls=":", label="ln 10")
        ax.set(xlabel="step", ylabel="training loss (smoothed)", title=f"{depth} layers, SGD + momentum")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return {"deep_relu": fig}


def verdict(result: dict) -> dict:
    ln10, runs = result["ln10"], result["runs"]
    deep, shallow = result["deep"], result["shallow"]

    def final(name, depth):
        return runs[f"{name}-{depth}"]["final_train_loss"]

    trains = 0.85 * ln10  # a net "trains" when its last epoch's mean loss is 15% or more below chance
    stalls = 0.98 * ln10  # it "stalls" when the loss stays within 2% of ln 10
    target = 0.9 * ln10
    he_step = first_below(runs[f"he-{shallow}"]["step_losses"], target)
    xavier_step = first_below(runs[f"xavier-{shallow}"]["step_losses"], target)
    ratio = {n: s[-1] / s[0] for n, s in result["probe"].items()}
    ok = (final("he", deep) < trains and final("xavier", deep) >= stalls
          and final("he", shallow) < trains and final("xavier", shallow) < trains
          and he_step is not None and xavier_step is not None and he_step < xavier_step)
    evidence = {f"{n}, {d} layers": {"final train loss": round(final(n, d), 4),
                                     "test_acc": round(runs[f"{n}-{d}"]["test_acc"], 4)}
                for d in (deep, shallow) for n in ("he", "xavier")}
    evidence.update({f"{shallow} layers, first step with loss < 0.9 ln 10": {"he": he_step, "xavier": xavier_step},
                     "activation std ratio last/first hidden layer at init": {n: float(f"{v:.3g}")
                                                                             for n, v in ratio.items()},
                     "expected ratio (SCIENCE.md)": "xavier < 1e-3, he in [0.3, 3]", "ln 10": round(ln10, 4)})
    return base.make_verdict(CLAIM, ok, evidence,
                             f"{deep} layers: He's final loss < 0.85 ln 10 and Xavier's >= 0.98 ln 10; {shallow} "
                             f"layers: both < 0.85 ln 10 and He's smoothed loss passes 0.9 ln 10 at an earlier step")
