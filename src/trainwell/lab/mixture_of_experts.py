"""mixture-of-experts: on data with two regimes, the gating network learns to send each regime to its own expert
(most cases' posterior responsibility > 0.9), and the mixture beats one expert of the same size.

Jacobs, Jordan, Nowlan & Hinton 1991, "Adaptive mixtures of local experts" (Neural Computation): softmax gate
g(x) over experts o_i(x), error E = -ln sum_i g_i exp(-1/2 ||d - o_i||^2), posterior responsibility
h_i = g_i exp(-1/2 ||d - o_i||^2) / sum_j (...). Here: d-dimensional Gaussian inputs, two regimes split by
the sign of the first input, each with its own two classes and its own linear rule; a mixture of two linear experts
(:class:`trainwell.nn.layers.MixtureOfExperts`) against a single linear expert trained with the same error (a
mixture of one). The pipeline builds MLPs and CNNs only, so both are trained by trainwell's one fit loop
(:class:`trainwell.train.trainer.Trainer`) with the mixture's error as the loss: the model outputs, per class c,
ln sum_i g_i exp(-1/2 ||e_c - o_i||^2), so the loss of a case of class y is exactly E with d = e_y (one-hot) and
the prediction is the most likely class under the mixture.

The fair baseline is not one linear expert (it cannot represent a regime-dependent rule and has less than half
the parameters) but a single model with the same total parameter count that can: an MLP with one hidden ReLU layer,
as wide as the mixture's parameter count allows, trained with cross-entropy by the same loop. Verdict: the fraction
of test cases with max responsibility > 0.9 (Wilson interval) above 0.8, the share of cases whose winning expert
serves its own regime (Wilson) above 0.9, and the mixture's test accuracy minus the equal-size MLP's, paired over
the test cases, above 0. Validation (monitoring only) is its own draw, not part of the test set. Control: a
mixture of one expert (the gate has nothing to choose; the component under test removed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trainwell.lab import base
from trainwell.nn.layers import MixtureOfExperts, moe_loss, responsibilities
from trainwell.optim_eager import eager
from trainwell.train.trainer import Trainer

NAME = "mixture-of-experts"
CLAIM = "On two-regime data the gate specializes (most cases' max responsibility > 0.9, regimes split between " \
        "experts) and the mixture beats a single model with the same number of parameters"
PAPER = "Jacobs, Jordan, Nowlan & Hinton 1991, Adaptive mixtures of local experts"
CONTROL = "a mixture of one expert: the gate has nothing to choose between"
EXPECTED_S = {"quick": 4, "default": 4}
LITERATURE = "Jacobs et al. 1991 (vowel discrimination, Peterson-Barney data): mixtures of experts reach the " \
             "training criterion in fewer epochs than backpropagation nets, at similar test accuracy, each expert " \
             "taking a region of the input space; their claim is faster learning and specialization, not higher " \
             "accuracy at equal size"


class MixtureScores(nn.Module):
    """Wrap a :class:`MixtureOfExperts` so that it outputs, for every class c, ln sum_i g_i exp(-1/2||e_c - o_i||^2)
    (N, C): minus the mixture's error for target e_c."""

    def __init__(self, moe: MixtureOfExperts, classes: int):
        super().__init__()
        self.moe = moe
        self.register_buffer("targets", torch.eye(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, gates = self.moe(x)  # (N, E, C), (N, E)
        sq = ((self.targets[None, :, None, :] - outputs[:, None, :, :]) ** 2).sum(-1)  # (N, C, E)
        return torch.logsumexp(torch.log(gates.clamp_min(1e-30))[:, None, :] - 0.5 * sq, dim=2)


def mixture_error(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E for targets one-hot(y): minus the score of the true class, averaged over the batch."""
    return -scores.gather(1, y[:, None]).mean()


def two_regimes(n: int, dim: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs N(0, I); regime r = [x_0 > 0]; each regime has its own classes (half of them) and its own rule: the
    class is the argmax of that regime's random linear map of x_1..x_{d-1}, restricted to the regime's classes."""
    g = torch.Generator().manual_seed(seed)
    half = classes // 2
    rules = torch.randn(2, dim - 1, half, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(n, dim, generator=g)
    regime = (x[:, 0] > 0).long()
    y = torch.einsum("nd,ndc->nc", x[:, 1:], rules[regime]).argmax(dim=1) + half * regime
    return x, y, regime


@dataclass
class Config:
    dim: int = 8
    classes: int = 4
    experts: int = 2
    train: int = 3000
    test: int = 2000
    epochs: int = 60
    lr: float = 0.02
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(train=2000, test=1000, epochs=40)


def _fit(experts: int, cfg: Config, data) -> tuple[MixtureScores, list[dict]]:
    (xtr, ytr), (xva, yva) = data
    torch.manual_seed(cfg.seed)
    model = MixtureScores(MixtureOfExperts(cfg.dim, cfg.classes, experts=experts), cfg.classes)
    trainer = Trainer(model, eager(torch.optim.Adam)(model.parameters(), lr=cfg.lr), mixture_error, epochs=cfg.epochs,
                      batch_size=100, device="cpu", seed=cfg.seed)
    state = trainer.fit((xtr, ytr), (xva, yva))
    return model, state.history


def equal_size_mlp(dim: int, classes: int, params: int) -> nn.Sequential:
    """The widest one-hidden-layer ReLU MLP with at most ``params`` parameters: (dim + 1) h + (h + 1) classes."""
    hidden = max(1, (params - classes) // (dim + 1 + classes))
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, classes))


def _fit_mlp(params: int, cfg: Config, data) -> tuple[nn.Module, list[dict]]:
    (xtr, ytr), (xva, yva) = data
    torch.manual_seed(cfg.seed)
    model = equal_size_mlp(cfg.dim, cfg.classes, params)
    trainer = Trainer(model, eager(torch.optim.Adam)(model.parameters(), lr=cfg.lr), nn.functional.cross_entropy,
                      epochs=cfg.epochs, batch_size=100, device="cpu", seed=cfg.seed)
    return model, trainer.fit((xtr, ytr), (xva, yva)).history


@torch.no_grad()
def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[int]:
    model.eval()
    return (model(x).argmax(dim=1) == y).int().tolist()


def run(cfg: Config, workdir=None) -> dict:
    xtr, ytr, _ = two_regimes(cfg.train, cfg.dim, cfg.classes, cfg.seed)
    xte, yte, regime = two_regimes(cfg.test, cfg.dim, cfg.classes, cfg.seed + 10_000)
    xva, yva, _ = two_regimes(cfg.test // 2, cfg.dim, cfg.classes, cfg.seed + 20_000)
    data = ((xtr, ytr), (xva, yva))
    experts = 1 if cfg.control else cfg.experts
    out, correct = {}, {}
    model, history = _fit(experts, cfg, data)
    with torch.no_grad():
        outputs, gates = model.moe(xte)
        h = responsibilities(outputs, gates, torch.eye(cfg.classes)[yte])
        e = float(moe_loss(outputs, gates, torch.eye(cfg.classes)[yte]))
    winner = h.argmax(dim=1)
    # how cleanly the experts split the regimes: the number of cases whose winning expert wins mostly cases of
    # their own regime (all of them = every expert serves one regime)
    purity = sum(max(int(((winner == i) & (regime == r)).sum()) for r in (0, 1)) for i in range(experts))
    params = sum(p.numel() for p in model.moe.parameters())
    correct["mixture"] = _correct(model, xte, yte)
    out["mixture"] = {"experts": experts, "params": params, "test_acc": sum(correct["mixture"]) / len(yte),
                      "test_error_E": e, "confident_cases": int((h.max(dim=1).values > 0.9).sum()),
                      "confident": float((h.max(dim=1).values > 0.9).float().mean()),
                      "gate_confident": float((gates.max(dim=1).values > 0.9).float().mean()),
                      "regime_cases": purity if experts > 1 else None,
                      "regime_split": purity / len(yte) if experts > 1 else None,
                      "curve": [[r["epoch"], r["train_loss"], r.get("val_acc")] for r in history],
                      "gate_by_x0": _gate_profile(model, cfg)}
    budget = sum(p.numel() for p in MixtureOfExperts(cfg.dim, cfg.classes, cfg.experts).parameters())
    mlp, mlp_history = _fit_mlp(budget, cfg, data)
    correct["mlp"] = _correct(mlp, xte, yte)
    out["equal-size MLP"] = {"params": sum(p.numel() for p in mlp.parameters()), "hidden": mlp[0].out_features,
                             "test_acc": sum(correct["mlp"]) / len(yte),
                             "curve": [[r["epoch"], r["train_loss"], r.get("val_acc")] for r in mlp_history]}
    return {"models": out, "classes": cfg.classes, "dim": cfg.dim, "test": len(yte), "control": cfg.control,
            "paired": base.paired_correct(correct["mixture"], correct["mlp"])}


@torch.no_grad()
def _gate_profile(model: MixtureScores, cfg: Config, points: int = 41) -> list[list[float]]:
    """Mean gate values along x_0 in [-3, 3] (other inputs random): how the gate divides the input space."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for v in torch.linspace(-3, 3, points):
        x = torch.randn(200, cfg.dim, generator=g)
        x[:, 0] = v
        rows.append([float(v), *model.moe(x)[1].mean(0).tolist()])
    return rows


def plot(result: dict) -> dict:
    fig, axes = base.new_figure(12, 4, ncols=2)
    ax = axes[0][0]
    for name, m in result["models"].items():
        ax.plot([c[0] for c in m["curve"]], [c[2] for c in m["curve"]], label=f"{name} ({m['params']} params)")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Two-regime data, 4 classes")
    ax.legend()
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    prof = result["models"]["mixture"]["gate_by_x0"]
    ax.set(title="control: one expert" if result.get("control") else "The gate divides the input space")
    for i in range(1, len(prof[0])):
        ax.plot([p[0] for p in prof], [p[i] for p in prof], label=f"gate of expert {i}")
    ax.axvline(0, color="gray", ls=":", label="regime boundary")
    ax.set(xlabel="x_0", ylabel="mean gate value")
    ax.legend()
    fig.tight_layout()
    return {"mixture": fig}


def _share_above(name: str, k: int | None, n: int, threshold: float) -> dict:
    if k is None:  # one expert: there is nothing to split
        return base.check(name, False, None, f"> {threshold}")
    lo, hi = base.wilson(k, n)
    return base.criterion(name, k / n, lo, hi, threshold, method="Wilson", n=n)


def verdict(result: dict) -> dict:
    mix, n = result["models"]["mixture"], result["test"]
    confident = _share_above("share of test cases with max responsibility > 0.9", mix["confident_cases"], n, 0.8)
    split = _share_above("share of test cases whose winning expert serves their regime", mix["regime_cases"], n, 0.9)
    better = base.criterion("test accuracy: mixture - equal-size MLP (paired)", *base.mean_interval(result["paired"]),
                            0.0, method="paired t over test cases", n=len(result["paired"]))
    evidence = {name: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
                       if k not in ("curve", "gate_by_x0")} for name, m in result["models"].items()}
    evidence["literature"] = LITERATURE
    return base.decide(CLAIM, [confident, split, better], evidence,
                       "95% intervals: share of test cases with max responsibility > 0.9 above 0.8 (Wilson), share "
                       "whose winning expert serves their regime above 0.9 (Wilson), and the mixture's test "
                       "accuracy - the equal-size MLP's > 0 (paired over test cases)")
