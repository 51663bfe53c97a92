"""capacity: more hidden neurons represent more complex functions, and overfit more without regularization.

The cs231n spiral demo (Karpathy, cs231n "Neural Networks 1": "larger networks can represent more complicated
functions", one hidden layer of 3, 6 and 20 neurons on 2-D spirals). The generalization gap is train accuracy
minus accuracy on a large fresh draw of the same distribution, averaged over ``repeats`` data draws, so that it
measures the model and not the luck of a 120-point sample. Every width of every draw trains at once
(:func:`~trainwell.lab.spirals_common.train_members`, the weights a fit gives each). The widest net's extra gap
over the next widest is small beside the draw-to-draw spread (measured on seeds 0-2 with 300 draws: +0.49 to
+0.69 points, a standard deviation of ~3 points over draws), hence 300 draws; 6 draws left it undecided.

Verdict, paired by data draw (every width trains on the same draw): for each step up in width the train accuracy
difference, and the widest net's gap minus the next widest's, each with a Student's t interval over the draws, all
above 0. One draw (the quick size) decides nothing. Control: every width replaced by the narrowest (capacity made
equal to the baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainwell.config import Config as RunConfig
from trainwell.config import load_config
from trainwell.lab import base
from trainwell.lab.spirals_common import boundary_grid, draw_boundary, heldout, spirals_overrides, train_members

NAME = "capacity"
CLAIM = "More hidden neurons represent more complex functions: train accuracy rises with width, and the widest " \
        "net has the largest train-test gap without regularization"
PAPER = "cs231n, Neural Networks Part 1 (spirals with 3/6/20 hidden neurons)"
CONTROL = "every width replaced by the narrowest: capacity made equal to the baseline"
EXPECTED_S = {"quick": 2, "default": 26}
LITERATURE = "cs231n, Neural Networks Part 1 (ConvNetJS spirals demo, 3/6/20 hidden neurons): a figure of decision " \
             "boundaries, no accuracies; the wider net carves a more complex boundary that fits outliers"


@dataclass
class Config:
    widths: list[int] = field(default_factory=lambda: [3, 6, 20])
    n_per_class: int = 40
    noise: float = 0.5
    epochs: int = 400
    lr: float = 0.03
    repeats: int = 300
    heldout_per_class: int = 1000
    seed: int = 0
    control: bool = False

    @classmethod
    def quick(cls) -> Config:
        return cls(epochs=250, repeats=1, heldout_per_class=500)


def _configs(cfg: Config) -> tuple[list[RunConfig], list[tuple[int, int]]]:
    cfgs, keys = [], []
    for r in range(cfg.repeats):
        for w in cfg.widths:
            used = cfg.widths[0] if cfg.control else w
            cfgs.append(load_config(None, [*base.LAB_SETTINGS, *spirals_overrides(
                cfg.n_per_class, cfg.noise, cfg.seed * 1000 + r, cfg.epochs, cfg.lr), f"model.hidden=[{used}]"]))
            keys.append((w, r))
    return cfgs, keys


def run(cfg: Config, workdir=None) -> dict:
    rows, grids, points = [], {}, None
    cfgs, keys = _configs(cfg)
    # every width of every draw trains at once, each on its own draw (spirals_common.train_members)
    trained = dict(zip(keys, train_members(cfgs), strict=True))
    for r in range(cfg.repeats):
        xh, yh = heldout(cfg.heldout_per_class, cfg.noise, cfg.seed * 1000 + r)
        for w in cfg.widths:
            model, splits = trained[(w, r)]
            train, test = base.accuracy(model, *splits.train), base.accuracy(model, xh, yh)
            rows.append({"width": w, "draw": r, "train_acc": train, "test_acc": test, "gap": train - test,
                         "params": sum(p.numel() for p in model.parameters())})
            if r == 0:
                grids[str(w)] = boundary_grid(model)
                points = [splits.train[0].tolist(), splits.train[1].tolist()]
    means = []
    for w in cfg.widths:
        mine = [r for r in rows if r["width"] == w]
        means.append({"width": w, **{k: sum(r[k] for r in mine) / len(mine) for k in ("train_acc", "test_acc", "gap")}})
    return {"widths": cfg.widths, "rows": rows, "means": means, "grids": grids, "points": points,
            "repeats": cfg.repeats, "control": cfg.control}


def plot(result: dict) -> dict:
    ws = result["widths"]
    fig, axes = base.new_figure(4 * len(ws), 4, ncols=len(ws))
    for ax, w, m in zip(axes[0], ws, result["means"], strict=True):
        draw_boundary(ax, result["grids"][str(w)], result["points"],
                      f"{w} hidden: train {m['train_acc']:.0%}, test {m['test_acc']:.0%}")
    fig.tight_layout()
    fig2, ax = base.new_figure(5, 3.5)
    ax = ax[0][0]
    ax.plot(ws, [m["train_acc"] for m in result["means"]], "o-", label="train")
    ax.plot(ws, [m["test_acc"] for m in result["means"]], "s--", label="fresh draw (test)")
    ax.set(xscale="log", xlabel="hidden neurons", ylabel="accuracy", title="Capacity")
    ax.legend()
    ax.grid(alpha=0.3)
    fig2.tight_layout()
    return {"boundaries": fig, "accuracy_vs_width": fig2}


def _per_draw(result: dict, width: int, key: str) -> list[float]:
    return [r[key] for r in sorted((r for r in result["rows"] if r["width"] == width), key=lambda r: r["draw"])]


def verdict(result: dict) -> dict:
    means, ws = result["means"], result["widths"]
    criteria = []
    for a, b in zip(ws, ws[1:], strict=False):
        diffs = [y - x for x, y in zip(_per_draw(result, a, "train_acc"), _per_draw(result, b, "train_acc"),
                                       strict=True)]
        criteria.append(base.criterion(f"train accuracy: width {b} - width {a} (paired by draw)",
                                       *base.mean_interval(diffs), 0.0, method="paired t over data draws",
                                       n=len(diffs)))
    gaps = [y - x for x, y in zip(_per_draw(result, ws[-2], "gap"), _per_draw(result, ws[-1], "gap"), strict=True)]
    criteria.append(base.criterion(f"train-test gap: width {ws[-1]} - width {ws[-2]} (paired by draw)",
                                   *base.mean_interval(gaps), 0.0, method="paired t over data draws", n=len(gaps)))
    evidence = {f"width {m['width']}": {"train_acc": round(m["train_acc"], 4), "test_acc": round(m["test_acc"], 4),
                                        "gap": round(m["gap"], 4)} for m in means}
    evidence.update({"draws": result["repeats"], "literature": LITERATURE})
    return base.decide(CLAIM, criteria, evidence,
                       "95% t intervals over data draws, paired by draw: train accuracy rises at each step up in "
                       "width (> 0), and the widest net's train-test gap minus the next widest's > 0")
