"""preprocessing: mean centering, normalization, PCA and whitening (the cs231n scatter figure), whitened covariance
~ identity, and the effect of each on how fast plain SGD trains.

cs231n, "Neural Networks Part 2" (data preprocessing) and the lecture's slides: center each dimension, divide it
by its std, rotate onto the principal axes (PCA), divide each principal component by sqrt(eigenvalue + eps)
(whitening; SCIENCE.md: sqrt(lambda + eps), not lambda + eps). LeCun, Bottou, Orr & Mueller 1998, "Efficient
BackProp", section 4.3: inputs with non-zero mean and unequal, correlated variances slow gradient descent.

Three parts: (1) correlated 2-D Gaussian data through :mod:`trainwell.data.preprocess` (the scatter figure);
(2) the covariance of MNIST-1D after PCA whitening and ZCA whitening, fitted on the training split and measured
on the training and test splits; (3) an MLP on scikit-learn's digits (pixels in [0, 1], mean 0.3) trained by the
pipeline with plain SGD and ``preprocess.kind`` none / center / standardize / PCA-whitened (top components).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainwell.data.preprocess import PCA, ZCA, MeanCenter, Standardize
from trainwell.lab import base

NAME = "preprocessing"
CLAIM = "Centering, normalization, PCA and whitening do what the cs231n figure shows; whitened covariance is ~ " \
        "identity; normalized and whitened inputs train faster with plain SGD than raw ones"
PAPER = "cs231n, Neural Networks Part 2 (data preprocessing); LeCun et al. 1998, Efficient BackProp, sec. 4.3"
EXPECTED_S = {"quick": 5, "default": 5}
TRAINING = {"raw": [], "center": ["preprocess.kind=center"], "standardize": ["preprocess.kind=standardize"],
            "pca-whiten": ["preprocess.kind=pca", "preprocess.whiten=true", "preprocess.n_components={k}"]}


@dataclass
class Config:
    points: int = 1000
    hidden: int = 64
    epochs: int = 15
    lr: float = 0.05
    components: int = 40
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(points=300, epochs=5)


def correlated_2d(n: int, seed: int) -> torch.Tensor:
    """A 2-D Gaussian with mean (3, -2), stds about (2.2, 0.9) along a tilted axis: the cs231n example's shape."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g) * torch.tensor([2.0, 0.5])
    angle = torch.tensor(0.5)
    rot = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
    return z @ rot.T + torch.tensor([3.0, -2.0])


def _cov(x: torch.Tensor) -> torch.Tensor:
    return torch.cov(x.reshape(len(x), -1).double().T)


def _off_identity(x: torch.Tensor) -> float:
    c = _cov(x)
    return float((c - torch.eye(len(c), dtype=c.dtype)).abs().max())


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.data import load

    x = correlated_2d(cfg.points, cfg.seed)
    steps = {"original": x, "centered": MeanCenter().fit_transform(x), "normalized": Standardize().fit_transform(x),
             "PCA (decorrelated)": PCA().fit_transform(x), "whitened": PCA(whiten=True).fit_transform(x)}
    scatter = {k: {"points": v[:300].tolist(), "mean": v.mean(0).tolist(), "cov": _cov(v).tolist()}
               for k, v in steps.items()}
    m = load("mnist1d", seed=cfg.seed, val_fraction=0.0)
    xtr, xte = m.train[0], m.test[0]
    whitening = {"raw": {"train": _off_identity(xtr), "test": _off_identity(xte)}}
    for name, pre in (("pca-whiten", PCA(whiten=True)), ("zca", ZCA())):
        pre.fit(xtr)
        whitening[name] = {"train": _off_identity(pre.transform(xtr)), "test": _off_identity(pre.transform(xte))}
    training = {}
    for name, extra in TRAINING.items():
        t = base.train(["data.name=digits", "model.kind=mlp", f"model.hidden=[{cfg.hidden}]", "optim.name=sgd",
                        f"optim.lr={cfg.lr}", f"train.epochs={cfg.epochs}", "train.batch_size=50",
                        f"train.seed={cfg.seed}", *(e.format(k=cfg.components) for e in extra)], workdir, name)
        training[name] = {"curve": [h["train_loss"] for h in t.history],
                          "final_train_loss": t.history[-1]["train_loss"], "val_acc": t.final["val_acc"],
                          "test_acc": t.final["test_acc"]}
    return {"scatter": scatter, "whitening": whitening, "training": training, "components": cfg.components}


def plot(result: dict) -> dict:
    sc = result["scatter"]
    fig, axes = base.new_figure(3.2 * len(sc), 3.4, ncols=len(sc))
    lim = max(max(abs(c) for p in s["points"] for c in p) for s in sc.values())
    for ax, (name, s) in zip(axes[0], sc.items(), strict=True):
        ax.scatter([p[0] for p in s["points"]], [p[1] for p in s["points"]], s=4, alpha=0.6)
        ax.axhline(0, color="gray", lw=0.5)
        ax.axvline(0, color="gray", lw=0.5)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=name)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig2, ax = base.new_figure(6, 4)
    ax = ax[0][0]
    for name, r in result["training"].items():
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], "o-", ms=3, label=f"{name} (test {r['test_acc']:.0%})")
    ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="Digits MLP, plain SGD")
    ax.legend()
    ax.grid(alpha=0.3)
    fig2.tight_layout()
    return {"scatter": fig, "training_speed": fig2}


def verdict(result: dict) -> dict:
    sc, w, tr = result["scatter"], result["whitening"], result["training"]
    centered = all(abs(v) < 1e-4 for k in ("centered", "normalized", "PCA (decorrelated)", "whitened")
                   for v in sc[k]["mean"])
    unit_var = all(abs(sc["normalized"]["cov"][i][i] - 1) < 0.01 for i in range(2))
    pca_cov = sc["PCA (decorrelated)"]["cov"]
    decorrelated = abs(pca_cov[0][1]) < 1e-6 * pca_cov[0][0] and pca_cov[0][0] >= pca_cov[1][1]
    white_2d = max(abs(sc["whitened"]["cov"][i][j] - (i == j)) for i in range(2) for j in range(2)) < 0.01
    white = all(w[k]["train"] < 0.01 for k in ("pca-whiten", "zca")) and w["raw"]["train"] > 0.1
    final = {k: v["final_train_loss"] for k, v in tr.items()}
    faster = final["standardize"] < final["raw"] and final["pca-whiten"] < final["raw"]  # centering: reported
    evidence = {"2-D": {k: {"mean": [round(v, 4) for v in s["mean"]], "cov": [[round(v, 4) for v in row]
                                                                          for row in s["cov"]]}
                        for k, s in sc.items()},
                "MNIST-1D max |cov - I| (fitted on train)": {k: {s: round(v, 4) for s, v in d.items()}
                                                             for k, d in w.items()},
                "digits final train loss (plain SGD)": {k: round(v, 4) for k, v in final.items()},
                "digits test_acc": {k: round(v["test_acc"], 4) for k, v in tr.items()}}
    return base.make_verdict(CLAIM, centered and unit_var and decorrelated and white_2d and white and faster,
                             evidence,
                             "2-D: zero means, unit variances after normalization, diagonal PCA covariance, whitened "
                             "|cov - I| < 0.01; MNIST-1D training split whitened |cov - I| < 0.01 (raw > 0.1); digits: "
                             "standardized and PCA-whitened inputs reach a lower training loss than raw in the same "
                             "epochs (centering alone is reported)")
