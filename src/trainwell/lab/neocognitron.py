"""neocognitron: S-cells grown by Add-if-Silent on digits give features on which a nearest-prototype classifier is
far above chance; the number of cell-planes created grows with the learning threshold.

Fukushima 2019, "Recent advances in the deep CNN neocognitron" (NOLTA): "a new cell is generated and added to the
network if all postsynaptic cells are silent in spite of non-silent presynaptic cells"; the new cell copies the
normalized input patch once and is never updated (no gradient, no repetition). S-cell response
phi[(cos(a, x) - theta) / (1 - theta)]; C-cells blur and subsample (:class:`trainwell.cnn.neocognitron
.AddIfSilentLayer`). Classification as in the neocognitron's last stage, simplified: each class's prototype is
the mean feature vector of its training images, and a test image takes the class of the most similar prototype
(cosine). Baseline: the same classifier on raw pixels. Pure computation, no gradient training.

Raw pixels already give ~90% with this classifier, so "far above chance" says nothing about the features. The
claim tested is that the Add-if-Silent layer adds to the pixels: the nearest-prototype test accuracy on its
features (at the largest learning threshold, declared before the run: no choice made on the test set) minus the
accuracy on raw pixels, paired over the test images, has a 95% interval above 0. Control: the layer replaced by
the identity (its features are the raw pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from trainwell.cnn.neocognitron import AddIfSilentLayer
from trainwell.lab import base

NAME = "neocognitron"
CLAIM = "Add-if-Silent features on digits give a higher nearest-prototype test accuracy than the raw pixels; more " \
        "cell-planes are created at higher learning thresholds"
PAPER = "Fukushima 2019, Recent advances in the deep CNN neocognitron (Add-if-Silent)"
CONTROL = "the Add-if-Silent layer replaced by the identity: its features are the raw pixels"
EXPECTED_S = {"quick": 1, "default": 1}
LITERATURE = "Fukushima 2019 evaluates the full network (several S/C stages, an interpolating-vector classifier) " \
             "on MNIST; its error rate is for that network and not comparable with one S/C stage and a " \
             "nearest-prototype classifier on sklearn's 8x8 digits, where only the comparison with raw pixels on " \
             "the same classifier is meaningful"

@dataclass
class Config:
    learn_thresholds: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.85])
    threshold: float = 0.5
    kernel: int = 3
    train_images: int = 1437
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        # every training image: with 300 the features are decided worse than pixels on some seeds (size, not claim)
        return cls(learn_thresholds=[0.5, 0.85])


def prototype_correct(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor,
                      classes: int) -> list[int]:
    """Per test vector, 1 if the class whose mean training vector is most cosine-similar is its label, else 0."""
    protos = torch.stack([ftr[ytr == c].mean(0) for c in range(classes)])
    protos = protos / protos.norm(dim=1, keepdim=True).clamp_min(1e-12)
    f = fte / fte.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return ((f @ protos.T).argmax(dim=1) == yte).int().tolist()


def nearest_prototype(ftr: torch.Tensor, ytr: torch.Tensor, fte: torch.Tensor, yte: torch.Tensor,
                      classes: int) -> float:
    """Accuracy of assigning each test vector to the class whose mean training vector is most cosine-similar."""
    c = prototype_correct(ftr, ytr, fte, yte, classes)
    return sum(c) / len(c)


def run(cfg: Config, workdir=None) -> dict:
    from trainwell.data import load

    s = load("digits", seed=cfg.seed, val_fraction=0.0)
    xtr, ytr = s.train[0][: cfg.train_images], s.train[1][: cfg.train_images]
    xte, yte = s.test
    classes = s.meta.num_classes
    rows, planes, correct = [], {}, {}
    raw = prototype_correct(xtr.flatten(1), ytr, xte.flatten(1), yte, classes)
    for lt in cfg.learn_thresholds:
        if cfg.control:  # the layer under test replaced by the identity
            ftr, fte, created, kernels = xtr.flatten(1), xte.flatten(1), 0, []
        else:
            layer = AddIfSilentLayer(kernel=cfg.kernel, threshold=min(cfg.threshold, lt), learn_threshold=lt)
            created = layer.learn(xtr)
            with torch.no_grad():
                ftr, fte = layer(xtr).flatten(1), layer(xte).flatten(1)
            kernels = layer.planes.reshape(-1, cfg.kernel, cfg.kernel)[:32].tolist()
        correct[str(lt)] = prototype_correct(ftr, ytr, fte, yte, classes)
        rows.append({"learn_threshold": lt, "planes": created, "features": ftr.shape[1],
                     "test_acc": sum(correct[str(lt)]) / len(yte)})
        planes[str(lt)] = kernels
    main = str(cfg.learn_thresholds[-1])
    return {"rows": rows, "raw_pixels_acc": sum(raw) / len(raw), "chance": 1 / classes, "planes": planes,
            "train_images": len(xtr), "control": cfg.control, "main_threshold": cfg.learn_thresholds[-1],
            "paired": base.paired_correct(correct[main], raw)}


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
    if not planes:  # the control: no layer, no reference patches
        ax.set_axis_off()
        ax.set(title="control: no Add-if-Silent layer")
        fig.tight_layout()
        return {"neocognitron": fig}
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
    rows = result["rows"]
    gain = base.criterion(f"test accuracy: AiS features (theta_L={result['main_threshold']}) - raw pixels (paired)",
                          *base.mean_interval(result["paired"]), 0.0, method="paired t over test images",
                          n=len(result["paired"]))
    grows = base.check("cell-planes strictly grow with the learning threshold",
                       len(rows) > 1 and all(b["planes"] > a["planes"] for a, b in zip(rows, rows[1:], strict=False)),
                       [r["planes"] for r in rows], "strictly increasing")
    evidence = {f"theta_L={r['learn_threshold']}": {"planes": r["planes"], "test_acc": round(r["test_acc"], 4)}
                for r in rows}
    evidence.update({"raw pixels nearest prototype": round(result["raw_pixels_acc"], 4), "chance": result["chance"],
                     "literature": LITERATURE})
    return base.decide(CLAIM, [gain, grows], evidence,
                       "95% interval of (nearest-prototype test accuracy on the features at the largest learning "
                       "threshold) - (on raw pixels), paired over test images, > 0; the number of cell-planes "
                       "strictly grows with the learning threshold")
