"""Spirals helpers shared by the capacity and regularization-strength experiments (cs231n's spiral demo)."""

from __future__ import annotations

import torch

from trainwell.data.synthetic import spirals


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
