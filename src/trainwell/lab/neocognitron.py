"""neocognitron: S-cells grown by Add-if-Silent on digits give features on which a nearest-prototype classifier is
far above chance; the number of cell-planes created grows with the learning threshold.

Fukushima 2019, "Recent advances in the deep CNN neocognitron" (NOLTA): "a new cell is generated and added to the
network if all postsynaptic cells are silent in spite of non-silent presynaptic cells"; the new cell copies the
normalized input patch once and is never updated (no gradient, no repetition). S-cell response
phi[(cos(a, x) - theta) / (1 - theta)]; C-cells blur and subsample (:class:`trainwell.cnn.neocognitron
.AddIfSilentLayer`). Classification as in the neocognitron's last stage, simplified: each class's prototype is
the mean feature vector of its training images, and a test image takes the class of the most similar prototype
(cosine). Baseline: the same classifier on raw pixels. Pure computation, no gradient training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainwell.cnn.neocognitron import AddIfSilentLayer
from trainwell.lab import base

NAME = "neocognitron"
CLAIM = "Add-if-Silent features on digits give nearest-prototype accuracy far above chance; more cell-planes are " \
        "created at higher learning thresholds"
PAPER = "Fukushima 2019, Recent advances in the deep CNN neocognitron (Add-if-Silent)"
EXPECTED_S = {"quick": 1, "default": 1}


@dataclass
class Config:
    learn_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.85])
    threshold: float = 0.5
    kernel: int = 3
    train_images: int = 1437
    seed: int = 0

    @classmethod
    def quick(cls) -> Config:
        return cls(learn_thresholds=[0.5, 0.8], train_images=300)


def nearest_prototype(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor,
                      classes: int) -> float:
    """Accuracy of assigning each test vector to the class whose mean training vector is most cosine-similar."""
    protos = torch.stack([ftr[ytr == c].mean(0) for c in range(classes)])
    protos = protos / protos.norm(dim=1, keepdim=True).clamp_min(1e-12)
    f = fte / fte.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float(((f @ protos.T).argmax(dim=1) == yte).float().mean())


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.data import load

    s = load("digits", seed=cfg.seed, val_fraction=0.0)
    xtr, ytr = s.train[0][: cfg.train_images], s.train[1][: cfg.train_images]
    xte, yte = s.test
    classes = s.meta.num_classes
    rows, planes = [], {}
    for lt in cfg.learn_thresholds:
        layer = AddIfSilentLayer(kernel=cfg.kernel, threshold=min(cfg.threshold, lt), learn_threshold=lt)
        created = layer.learn(xtr)
        with torch.no_grad():
            ftr, fte = layer(xtr).flatten(1), layer(xte).flatten(1)
        rows.append({"learn_threshold": lt, "planes": created, "features": ftr.shape[1],
                     "test_acc": nearest_prototype(ftr, ytr, fte, yte, classes)})
        planes[str(lt)] = layer.planes.reshape(-1, cfg.kernel, cfg.kernel)[:32].tolist()
    raw = nearest_prototype(xtr.flatten(1), ytr, xte.flatten(1), yte, classes)
    return {"rows": rows, "raw_pixels_acc": raw, "chance": 1 / classes, "planes": planes,
            "train_images": len(xtr)}


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(11, 4, ncols=2)
    ax = axes[0][0]
    rows = result["rows"]
    ax.plot([r["planes"] for r in rows], [r["test_acc"] for r in rows], "o-", label="AiS features")
    for r in rows:
        ax.annotate(f"theta_L={r['learn_threshold']}", (r["planes"], r["test_acc"]), fontsize=7)
    ax.axhline(result["raw_pixels_acc"], color="C1", ls="--", label="raw pixels")
    ax.axhline(result["chance"], color="gray", ls=":", label="chance")
    ax.set(xlabel="cell-planes created", ylabel="nearest-prototype test accuracy", ylim=(0, 1),
           title=f"Add-if-Silent on digits ({result['train_images']} training images)")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    key = max(result["planes"], key=lambda k: len(result["planes"][k]))
    planes = result["planes"][key]
    cols = 8
    rows_n = -(-len(planes) // cols)
    k = len(planes[0])
    canvas = torch.full((rows_n * (k + 1), cols * (k + 1)), float("nan"))
    for i, p in enumerate(planes):
        r, c = divmod(i, cols)
        canvas[r * (k + 1): r * (k + 1) + k, c * (k + 1): c * (k + 1) + k] = torch.tensor(p)
    ax.imshow(canvas.tolist(), cmap="viridis")
    ax.set(title=f"first reference patches (theta_L={key})", xticks=[], yticks=[])
    fig.tight_layout()
    return {"neocognitron": fig}


def verdict(result: dict) -> dict:
    rows, chance = result["rows"], result["chance"]
    best = max(r["test_acc"] for r in rows)
    above = best >= 5 * chance
    grows = all(b["planes"] > a["planes"] for a, b in zip(rows, rows[1:], strict=False))
    evidence = {f"theta_L={r['learn_threshold']}": {"planes": r["planes"], "test_acc": round(r["test_acc"], 4)}
                for r in rows}
    evidence.update({"raw pixels nearest prototype": round(result["raw_pixels_acc"], 4), "chance": chance})
    return base.make_verdict(CLAIM, above and grows, evidence,
                             "best nearest-prototype test accuracy >= 5x chance, and the number of cell-planes "
                             "strictly grows with the learning threshold")
