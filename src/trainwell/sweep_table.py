"""The table ``trainwell sweep`` prints: one row per member, formatted as ``trainwell fit`` formats its results
(accuracies as percentages, losses to 4 decimals, epochs 1-based), with short headers that never fold on a
120-column terminal. ``results.csv`` keeps every column and every digit."""

from __future__ import annotations

METRICS = {"train_acc": "train acc", "val_acc": "val acc", "test_acc": "test acc", "val_loss": "val loss"}
HIDDEN = ("train_loss", "test_loss", "epochs", "stop_epoch", "failed", "error", "history")


def cell(value, kind: str = "setting") -> str:
    """One cell: ``kind`` is "percent" (0.958 -> 95.80%), "loss" (4 decimals) or "setting" (shortest form); a
    missing value is "-", a boolean "yes"/"no"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if kind == "percent":
            return f"{value:.2%}"
        if kind == "loss":
            return f"{value:.4f}"
        return f"{value:g}"
    return str(value)


def sweep_table(rows: list[dict], title: str):
    """A rich Table of a sweep's ``rows`` (its results.json): each member's settings, train/val/test accuracy,
    validation loss and epochs; "stopped" (the 1-based epoch a member stopped early), "failed" and "error" only
    when some member has one."""
    from rich.table import Table

    settings = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in (*METRICS, *HIDDEN)]
    columns = [(k, k, "setting") for k in settings]
    columns += [(k, name, "loss" if "loss" in k else "percent") for k, name in METRICS.items()]
    columns.append(("epochs", "epochs", "setting"))
    if any(r.get("stop_epoch") is not None for r in rows):
        columns.append(("stop_epoch", "stopped", "setting"))
    if any(r.get("failed") for r in rows):
        columns.append(("failed", "failed", "setting"))
    if any(r.get("error") for r in rows):
        columns.append(("error", "error", "setting"))
    table = Table(title=title)
    for key, name, _ in columns:
        table.add_column(name, justify="left" if key == "error" else "right", min_width=len(name),
                         overflow="fold", no_wrap=key != "error")
    for r in rows:
        values = {**r, "stop_epoch": None if r.get("stop_epoch") is None else f"epoch {r['stop_epoch'] + 1}"}
        table.add_row(*[cell(values.get(key), kind) for key, _, kind in columns])
    return table
