"""The tables and lines the ``trainwell`` command prints (rich), one function per kind of result."""

from __future__ import annotations


def result(summary: dict, run_dir) -> object:
    """``trainwell fit``: loss and accuracy of each split."""
    from rich.table import Table

    table = Table(title=f"{summary['name']}: {summary['dataset']}, {summary['model']}, {summary['params']:,} params",
                  min_width=60)
    table.add_column("split")
    table.add_column("loss", justify="right")
    table.add_column("accuracy", justify="right")
    final = summary["final"]
    for split in ("train", "val", "test"):
        loss, acc = final.get(f"{split}_loss"), final.get(f"{split}_acc")
        table.add_row(split, "-" if loss is None else f"{loss:.4f}", "-" if acc is None else f"{acc:.2%}")
    return table


def result_lines(summary: dict, run_dir, report: bool = True) -> str:
    """``trainwell fit``: epochs, steps, time, why it stopped, where the run is (and its report, when one was
    written: ``report`` is the run's ``report.enabled``)."""
    from rich.markup import escape  # a note quotes the user's labels: text, not console markup

    best = summary["best_epoch"]
    where = f"run dir: {run_dir}  (report: {run_dir}/report.html)" if report else f"run dir: {run_dir}"
    epochs = f"{summary['epochs']} epoch{'s' * (summary['epochs'] != 1)}"
    return (f"{epochs}, {summary['steps']:,} steps, {summary['wall_s']:.1f} s wall\n"
            f"stopped: {summary['stop_reason']} (best epoch by {summary['monitor']}: "
            f"{'-' if best is None else best + 1})\n" + class_names_line(summary.get("class_names")) +
            "".join(f"note: {escape(n)}\n" for n in summary.get("label_notes") or []) + where)


def class_names_line(names: list[str] | None, most: int = 10) -> str:
    """``classes: 0 = setosa, 1 = versicolor, ...`` (a line ending in a newline) for a dataset whose labels were
    names, mapped to class ids in sorted order; empty for one whose labels are ids."""
    if not names:
        return ""
    from rich.markup import escape  # a name like "[b]" is text, not console markup

    shown = ", ".join(f"{i} = {escape(n)}" for i, n in enumerate(names[:most]))
    more = f", ... ({len(names)} in all, listed in summary.json's class_names)" if len(names) > most else ""
    return f"classes: {shown}{more}\n"


def verdicts(rows: list[dict], title: str):
    """The doctor's verdicts (summary.json's ``doctor`` rows) as a report's table: in reading order (fails first, a
    cause before what it explains), one row per finding, what was measured, what was expected and what to do."""
    from trainwell.doctor.report import Report
    from trainwell.doctor.verdict import Verdict

    fields = ("check", "status", "value", "expected", "advice")
    report = Report([Verdict(**{k: v.get(k) for k in fields}) for v in rows], title,
                    [v.get("phase", "") for v in rows])
    table = report.table(full=True, titled=False)
    table.title, table.title_justify = title, "left"
    return table


def watch_footer(script: str, wall_s: float, reports: list, code: int, script_status: int) -> str:
    """``trainwell watch``'s last line (on stderr): how long the script ran watched, that its own output is above
    as it printed it, what the reports found, and the exit status with its reason."""
    from trainwell.doctor.report_order import findings

    counts = {s: sum(findings(r.verdicts, s) for r in reports) for s in ("fail", "warn")}
    found = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no warn or fail"
    loops = f"{len(reports)} training loop{'s' * (len(reports) != 1)} read"
    why = "the script's own status" if script_status else "a check failed" if code else "no check failed"
    return (f"trainwell watch: {script} ran {wall_s:.1f} s under the watch (its own output is above, as it printed "
            f"it); {loops}: {found}; exit {code} ({why})")


def layers(kind: str, shape: tuple[int, ...], rows) -> object:
    """``trainwell summary``: one row per layer (per call of a layer that runs more than once: its later calls'
    parameters in parentheses, counted once in the total), then the totals."""
    from rich.table import Table

    from trainwell.cnn.summary import totals

    again = any(r.call > 1 for r in rows)
    table = Table(title=f"{kind} on input {'x'.join(map(str, shape))}",
                  caption="(n): a layer called again; its parameters are counted once in the total" if again else None)
    for col in ("layer", "type", "output", "neurons", "params", "params (no sharing)", "receptive field",
                "mult-adds"):
        table.add_column(col, justify="left" if col in ("layer", "type", "output") else "right")
    for r in rows:
        name, params = (r.name, f"{r.params:,}") if r.call == 1 else (f"{r.name} (call {r.call})", f"({r.params:,})")
        table.add_row(name, r.kind, "x".join(map(str, r.output_shape)), f"{r.neurons:,}", params,
                      f"{r.params_unshared:,}", "x".join(map(str, r.receptive_field)), f"{r.mult_adds:,}")
    t = totals(rows)
    table.add_row("total", "", "", "", f"{t['params']:,}", f"{t['params_unshared']:,}", "", f"{t['mult_adds']:,}")
    return table


def lottery(rows) -> object:
    """``trainwell prune``: one row per trained network."""
    from rich.table import Table

    table = Table(title="lottery tickets")
    for col in ("round", "kind", "weights left", "test acc", "val acc", "early-stop step"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r.round), r.kind, f"{r.density:.2%}", *("-" if a is None else f"{a:.2%}"
                                                                  for a in (r.test_acc, r.val_acc)),
                      "-" if r.early_stop_step is None else str(r.early_stop_step))
    return table


def failed_members(out, rows: list[dict]) -> list[str]:
    """``trainwell sweep``: a line per member that trained and failed (a non-finite or diverged loss) with the reason
    its ``member-<i>/summary.json`` keeps: the table's ``failed`` column says only "yes"."""
    import json
    from pathlib import Path

    lines = []
    for i, row in enumerate(rows):
        if row.get("failed") is True and "error" not in row:  # a task that failed (Ray) has its error column
            try:
                summary = json.loads((Path(out) / f"member-{i}" / "summary.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):  # the member's folder is its own: the line says what it can
                summary = None
            reason = summary.get("stop_reason") if isinstance(summary, dict) else None
            lines.append(f"failed: member-{i}" + (f" ({reason})" if reason else ""))
    return lines
