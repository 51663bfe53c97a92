"""Figures of a run, drawn on ``matplotlib.figure.Figure`` objects.

A ``Figure`` made directly (not through pyplot) needs no backend and is not registered with pyplot, so nothing
here selects or changes the user's backend (``matplotlib.use`` at import would break a notebook's inline
figures) and no figure window or pyplot state is left behind.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator, NullLocator, PercentFormatter

from trainwell.manifest import record
from trainwell.viz.first_layer import first_layer_units
from trainwell.viz.signature import metadata


def new_figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (6, 4), **kwargs):
    """Return ``(fig, axes)`` like ``plt.subplots`` but without pyplot: no backend, no global figure state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, **kwargs)


def save(fig: Figure, path: str | Path, dpi: int, layout: bool = True) -> Path:
    """Lay out (``tight_layout``, unless ``layout=False``: the figure placed its axes itself) and write a figure
    (format from the suffix; marked as trainwell's where the format has metadata, :mod:`trainwell.viz.signature`);
    the folder is created if needed."""
    if layout:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata=metadata(path))
    record(path)
    return path



def _recorded(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """The 1-based epochs whose record holds a finite ``key``, and its values (a loop may validate only some
    epochs; a regression records a NaN accuracy)."""
    pairs = [(r["epoch"] + 1, r[key]) for r in history
             if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def learning_curves(history: list[dict], path: str | Path, best_epoch: int | None = None) -> Path:
    """Plot train/val loss and accuracy per epoch (the lecture's loss-curve reading) and the learning rate, and
    save a PNG. Epochs are drawn 1-based, as users count them; ``best_epoch`` (0-based, as in summary.json) is
    marked. A metric is drawn at the epochs that record it (a validation every few epochs shows as dots on a
    line); a panel whose metric no epoch records says so."""
    epochs = [r["epoch"] + 1 for r in history]
    fig, (ax_loss, ax_acc, ax_lr) = new_figure(1, 3, figsize=(13, 3.8))
    for split, style in (("train", "-"), ("val", "--")):
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            xs, ys = _recorded(history, f"{split}_{metric}")
            if xs:
                ax.plot(xs, ys, style, marker="." if len(xs) < len(history) else None, label=split)
    # titles at a fixed height: placing them automatically measures every tick label (a third of the drawing)
    ax_loss.set(xlabel="epoch", ylabel="loss")
    ax_loss.set_title("Loss", y=1.0)
    ax_acc.set(xlabel="epoch", ylabel="accuracy")
    ax_acc.set_title("Accuracy", y=1.0)
    ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0))
    if history and all(r.get("train_loss", 0) and r["train_loss"] > 0 for r in history):
        ax_loss.set_yscale("log")
        # plain numbers ("1.4", "0.01") for the same ticks: the default "1.4 x 10^0" labels are mathtext, whose
        # layout was most of this figure's drawing
        ax_loss.yaxis.set_major_formatter(LogFormatter())
        ax_loss.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    xs, ys = _recorded(history, "lr")
    if xs:
        ax_lr.plot(xs, ys, color="C2")
    for ax, what in ((ax_acc, "accuracy"), (ax_lr, "learning rate")):
        if not ax.lines:  # a regression (NaN accuracy) or a hand-written loop's history without the metric
            ax.text(0.5, 0.5, f"no {what} recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
            ax.set_xlim(min(epochs, default=1) - 0.5, max(epochs, default=1) + 0.5)
    ax_lr.set(xlabel="epoch", ylabel="learning rate")
    ax_lr.set_title("Learning rate (start of epoch)", y=1.0)
    ax_lr.grid(alpha=0.3)
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at epoch 1.5
    for ax in (ax_loss, ax_acc):
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="0.4", ls=":", lw=1, label=f"best epoch {best_epoch + 1}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.91, wspace=0.3)  # fixed: tight_layout is slow
    return save(fig, path, dpi=100, layout=False)


def learning_rate(history: list[dict], path: str | Path) -> Path:
    """Plot the learning rate at the start of each epoch (1-based)."""
    fig, ax = new_figure(figsize=(5, 3))
    ax.plot([r["epoch"] + 1 for r in history], [r["lr"] for r in history])
    ax.set(xlabel="epoch", ylabel="learning rate", title="Learning rate")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    return save(fig, path, dpi=100)


def first_layer_weights(model, input_shape: tuple[int, ...], path: str | Path, max_units: int = 32) -> Path | None:
    """Save :func:`first_layer_figure` as a PNG; None if the model has no Linear/Conv layer."""
    units = first_layer_units(model, input_shape, max_units)
    return None if units is None else save_first_layer(units, path)


def save_first_layer(units: dict, path: str | Path) -> Path:
    """Draw :func:`first_layer_units`' result (:func:`draw_first_layer`) and save it as a PNG (no torch needed:
    a separate drawing process runs this, :mod:`trainwell.viz.figure_process`)."""
    fig = draw_first_layer(**units)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    record(path)
    return path


def first_layer_figure(model, input_shape: tuple[int, ...], max_units: int = 32) -> Figure | None:
    """Draw the first layer's units comparably, on one symmetric scale: 2-D filters (conv filters, or dense
    rows reshaped to the input image) as images with a colour bar; 1-D ones (a 1-D CNN's kernels, dense rows of
    a signal) as curves over a zero line. Returns None if the model has no Linear/Conv layer."""
    units = first_layer_units(model, input_shape, max_units)
    return None if units is None else draw_first_layer(**units)


def draw_first_layer(units, limit: float, title: str, xlabel: str) -> Figure:
    """The figure of :func:`first_layer_units`' data: 2-D units as images, 1-D ones as curves."""
    if units.ndim >= 3:
        return _filter_images(units, limit, title)
    return _filter_curves(units, limit, title, xlabel)


def _filter_images(units, limit: float, title: str) -> Figure:
    """2-D filters as images, 8 to a row, on one colour scale with a colour bar."""
    cols = min(8, len(units))
    rows = -(-len(units) // cols)
    fig, axes = new_figure(rows, cols, figsize=(1.5 * cols + 0.9, 1.4 * rows + 0.5), squeeze=False)
    image = None
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, unit) in enumerate(zip(axes.flat, units, strict=False)):
        ax.axis("on")
        ax.set_title(f"unit {i}", fontsize=7)
        image = ax.imshow(unit, cmap="coolwarm", vmin=-limit, vmax=limit)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    # fixed margins in inches (any grid size looks alike); tight_layout over 32 axes costs about a second
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.2 / width, right=1 - 1.0 / width, bottom=0.2 / height, top=1 - 0.55 / height,
                        wspace=0.2, hspace=0.45)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="weight")
    return fig


def _filter_curves(units, limit: float, title: str, xlabel: str) -> Figure:
    """1-D filters as curves stacked 8 to a column (a ridge plot): each over its own zero line, all on one
    vertical scale, so their signs, shapes and sizes compare at a glance."""
    per_col = 8
    cols = -(-len(units) // per_col)
    gap = 2.4 * limit
    fig, axes = new_figure(1, cols, figsize=(2.2 * cols + 0.6, 0.55 * min(per_col, len(units)) + 1.2),
                           squeeze=False)
    taps = range(units.shape[1])
    for c, ax in enumerate(axes.flat):
        chunk = range(c * per_col, min((c + 1) * per_col, len(units)))
        for row, i in enumerate(chunk):
            offset = -row * gap
            ax.axhline(offset, color="0.6", lw=0.6)  # the unit's zero line
            ax.plot(taps, units[i] + offset, color=f"C{i % 10}", marker="." if len(taps) <= 16 else None)
        ax.set_yticks([-row * gap for row in range(len(chunk))], [f"unit {i}" for i in chunk], fontsize=7)
        ax.set_ylim(-(per_col - 1) * gap - 1.3 * limit, 1.3 * limit)
        ax.set_xlabel(xlabel, fontsize=8)
        if len(taps) <= 16:
            ax.set_xticks(list(taps))
        ax.tick_params(axis="x", labelsize=7)
    axes.flat[0].set_ylabel(f"weight: one row per unit over its zero line (grey); largest |w| {limit:.3g}",
                            fontsize=7)
    fig.suptitle(f"{title}; one scale for all units", fontsize=9)
    width, _ = fig.get_size_inches()
    fig.subplots_adjust(left=1.0 / width, right=1 - 0.15 / width, wspace=0.45)
    return fig


def monitor_histograms(records: list[dict], path: str | Path, titles: dict[str, str] | None = None) -> Path | None:
    """Glorot & Bengio style: one row per activation layer, its activation histogram and its back-propagated
    gradient histogram, from the last monitor snapshot. Layers are named by module name (``titles`` maps a name
    to a longer label, e.g. ``"3 (ReLU) after 2 (Conv1d)"``)."""
    titles = titles or {}
    if not records or not records[-1]["activations"]:
        return None
    last = records[-1]
    layers = list(last["activations"].items())
    fig, axes = new_figure(len(layers), 2, figsize=(8, 1.9 * len(layers) + 0.8), squeeze=False)
    for row, (name, a) in enumerate(layers):
        title = titles.get(name, f"{name} ({a['kind']})")
        for col, key, label in ((0, "hist", "activation"), (1, "grad_hist", "gradient")):
            ax = axes[row, col]
            h = a.get(key)
            if h is None or not h["counts"]:
                ax.axis("off")
                if h is not None:  # every value was NaN or inf (a diverged run): nothing to bin
                    ax.text(0.5, 0.5, f"{title} {label}: no finite values", ha="center", va="center",
                            transform=ax.transAxes, fontsize=8)
                continue
            counts = h["counts"]
            width = (h["hi"] - h["lo"]) / len(counts)
            # one artist per histogram (ax.bar would make a patch per bin: several times slower to draw)
            ax.stairs(counts, [h["lo"] + i * width for i in range(len(counts) + 1)], fill=True)
            ax.set_yscale("log")  # the tails carry the story: saturation, dead units, exploding gradients
            # decades only: a log axis's minor ticks were most of this figure's drawing time (0.69 -> 0.3 s)
            ax.yaxis.set_minor_locator(NullLocator())
            ax.ticklabel_format(style="sci", axis="x", scilimits=(-2, 3))
            extra = f", dead {a['dead']:.0%}" if "dead" in a else (
                f", saturated {a['saturated']:.0%}" if "saturated" in a else "")
            ax.set_title(f"{title} {label}"
                         f"{extra if col == 0 else ''}", fontsize=8)
            ax.set_xlabel(label, fontsize=7)
            ax.set_ylabel("count", fontsize=7)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"activations and back-propagated gradients at step {last['step']}", fontsize=9)
    width, height = fig.get_size_inches()  # fixed margins: tight_layout over many axes is slow
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.5 / height, top=1 - 0.6 / height,
                        wspace=0.3, hspace=1.1)
    return save(fig, path, dpi=90, layout=False)
