"""Figures of a run, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def learning_curves(history: list[dict], path: str | Path) -> Path:
    """Plot train/val loss and accuracy per epoch (the lecture's loss-curve reading) and save a PNG."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for split, style in (("train", "-"), ("val", "--")):
        if history and f"{split}_loss" in history[0]:
            ax_loss.plot(epochs, [r.get(f"{split}_loss") for r in history], style, label=split)
            ax_acc.plot(epochs, [r.get(f"{split}_acc") for r in history], style, label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    if history and all(r.get("train_loss", 0) and r["train_loss"] > 0 for r in history):
        ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def learning_rate(history: list[dict], path: str | Path) -> Path:
    """Plot the learning rate at the start of each epoch."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([r["epoch"] for r in history], [r["lr"] for r in history])
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
