"""Spirals helpers shared by the capacity and regularization-strength experiments (cs231n's spiral demo), and
:func:`train_members`, the many-small-MLPs trainer they (and double-descent) use.

:func:`train_members` trains MLPs that may differ in their data draw (``data.seed``), width, learning rate, weight
decay, label noise and seed as one :class:`~trainwell.train.population.PopulationLearner` (the learner of
``trainwell sweep``): each member keeps its own initialization (built and seeded as a fit builds it), its own data
order (a generator seeded with ``train.seed``, as the fit loop draws it) and its own training rows. It writes no run
directory: a fit's per-epoch files cost more than the training of these 120-point nets. Tests check that it gives a
fit's weights.
"""

from __future__ import annotations

import torch

from trainwell.config import Config, config_from_dict
from trainwell.data.synthetic import spirals

ALLOWED = ("train.seed", "data.seed", "optim.lr", "optim.weight_decay", "model.hidden", "data.label_noise",
           "data.corrupt_seed")


def heldout(n_per_class: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A large fresh draw of the same spiral distribution: the generalization estimate behind every gap."""
    x, y, _, _ = spirals(n_per_class=n_per_class, arms=3, noise=noise, seed=10_000 + seed)
    return x, y


def spirals_overrides(n_per_class: int, noise: float, seed: int, epochs: int, lr: float) -> list[str]:
    """Config overrides for a one-hidden-layer MLP on the 3-arm spirals, full-batch Adam, no validation split."""
    return ["data.name=spirals", f"data.options={{n_per_class={n_per_class}, noise={noise}}}", f"data.seed={seed}",
            "data.val_fraction=0.0", "model.kind=mlp", "model.activation=relu", f"train.epochs={epochs}",
            "train.batch_size=100000", f"optim.lr={lr}", "optim.name=adam", f"train.seed={seed}"]


@torch.no_grad()
def boundary_grid(model: torch.nn.Module, lim: float = 1.1, steps: int = 120) -> list[list[int]]:
    """The model's predicted class on a ``steps`` x ``steps`` grid over [-lim, lim]^2 (rows = y, cols = x)."""
    was = model.training
    model.eval()
    dev = next(model.parameters()).device
    ticks = torch.linspace(-lim, lim, steps)
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    pred = model(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).to(dev)).argmax(dim=1).cpu()
    model.train(was)
    return pred.reshape(steps, steps).tolist()


def draw_boundary(ax, grid: list[list[int]], points: list[list], title: str, lim: float = 1.1) -> None:
    """Filled decision regions plus the training points."""
    ax.imshow(grid, origin="lower", extent=(-lim, lim, -lim, lim), cmap="Pastel1", vmin=0, vmax=8, alpha=0.9)
    xs, ys = points
    ax.scatter([p[0] for p in xs], [p[1] for p in xs], c=ys, cmap="Set1", vmin=0, vmax=8, s=10, edgecolors="k",
               linewidths=0.3)
    ax.set(title=title, xticks=[], yticks=[])


def _differing(cfgs: list[Config]) -> str | None:
    from trainwell.pipeline.population import _flatten

    first = _flatten(cfgs[0].to_dict())
    for c in cfgs[1:]:
        flat = _flatten(c.to_dict())
        bad = sorted(k for k in first if flat[k] != first[k] and k not in ALLOWED and k != "name")
        if bad:
            return bad[0]
    return None


def _check_members(cfgs: list[Config]) -> None:
    if not cfgs:
        raise ValueError("train_members: no configs to train")
    bad = _differing(cfgs)
    if bad is not None:
        raise ValueError(f"train_members: config key {bad!r} differs between members (only {', '.join(ALLOWED)} may)")
    c = cfgs[0]
    if c.model.kind != "mlp" or c.optim.schedule != "none" or c.model.norm != "none" or c.model.dropout_keep < 1:
        raise ValueError("train_members trains plain MLPs (no norm, no dropout) at a constant learning rate")


def _member_data(cfgs: list[Config]):
    from trainwell.pipeline import load_data

    splits = []
    for c in cfgs:
        s, pre = load_data(c)
        if pre is not None:
            raise ValueError("train_members: members with a preprocessor are not supported")
        splits.append(s)
    n = len(splits[0].train[1])
    if any(len(s.train[1]) != n for s in splits):
        raise ValueError("train_members: every member's training split must have the same number of rows")
    return splits


def _learner(cfgs: list[Config], splits):
    from trainwell.nn.models import build_model
    from trainwell.pipeline.build import build_initialized
    from trainwell.train.population import PopulationLearner, embed_state

    shape, classes = splits[0].meta.input_shape, splits[0].meta.num_classes
    models = []
    for c in cfgs:
        torch.manual_seed(c.train.seed)
        models.append(build_initialized(c, shape, classes))
    widest = [max(w) for w in zip(*(c.model.hidden for c in cfgs), strict=True)]
    c0 = cfgs[0]
    wide = build_model(config_from_dict({**c0.to_dict(), "model": {**c0.to_dict()["model"], "hidden": widest}})
                       .model, shape, classes)
    n, bs = len(splits[0].train[1]), c0.train.batch_size
    o = c0.optim
    learner = PopulationLearner(wide, [embed_state(m.state_dict(), wide.state_dict()) for m in models],
                                optimizer=o.name, lrs=[c.optim.lr for c in cfgs],
                                weight_decays=[c.optim.weight_decay for c in cfgs], decay=o.decay,
                                momentum=o.momentum if o.name != "sgd" else None,
                                nesterov=o.nesterov and o.name != "sgd", betas=o.betas, eps=o.eps, alpha=o.alpha,
                                rmsprop_momentum=o.rmsprop_momentum, loss_fn=c0.train.loss, epochs=c0.train.epochs,
                                steps_per_epoch=-(-n // bs), own_rows=True)
    return learner, models


def train_members(cfgs: list[Config]) -> list[tuple[torch.nn.Module, object]]:
    """Train every config of ``cfgs`` (plain MLPs, constant learning rate) as one population, through the fit loop
    (:class:`~trainwell.train.trainer.Trainer`, each member on its own rows); returns each member's trained model
    (its own width) and its data splits, in order."""
    from trainwell.train.population import narrow_state
    from trainwell.train.trainer import Trainer

    _check_members(cfgs)
    splits = _member_data(cfgs)
    learner, models = _learner(cfgs, splits)
    x = torch.stack([s.train[0] for s in splits])  # (M, N, features): member i's rows are its own data draw
    y = torch.stack([s.train[1] for s in splits])
    Trainer(learner, epochs=cfgs[0].train.epochs, batch_size=cfgs[0].train.batch_size,
            seed=[c.train.seed for c in cfgs]).fit((x, y))
    for i, model in enumerate(models):
        model.load_state_dict(narrow_state(learner.member_state(i), model.state_dict()))
        model.eval()
    return list(zip(models, splits, strict=True))
