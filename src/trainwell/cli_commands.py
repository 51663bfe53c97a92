"""The ``trainwell`` command line's commands: each ``cmd_*`` takes the parsed arguments, calls the library and
renders its tables; it returns the exit code (see :mod:`trainwell.cli` for the codes and the errors' handling)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

from trainwell import cli_tables
from trainwell.errors import TrainwellError
from trainwell.viz import figure_process


def _console(stderr: bool = False):
    """A rich console; when the stream is not a terminal (a pipe, a file, CI logs) it is as wide as the content:
    tables are printed whole, no number is cut or folded, and each plain line stays one line."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=10_000, soft_wrap=True, color_system=None)


def _output_file(text: str, force: bool = False) -> Path:
    """An output file's path, checked before any work: its folder must exist (as with ``cp`` or
    ``matplotlib.savefig``, no folder is created), the path must not be a folder, and an existing file is replaced
    only if trainwell drew it (:func:`trainwell.viz.signature.drawn_by_trainwell`) or ``force`` is set."""
    from trainwell.viz.signature import drawn_by_trainwell

    path = Path(text)
    parent = path.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise TrainwellError(f"--out {text!r}: the folder {str(parent)!r} {what}: create it first or choose another "
                             f"path (trainwell does not create folders for an output file)")
    if path.is_dir():
        raise TrainwellError(f"--out {text!r} is a folder: give a file name, e.g. {str(path / 'plot.png')!r}")
    if (path.exists() or path.is_symlink()) and not force and not drawn_by_trainwell(path):
        raise TrainwellError(f"--out {text!r} already exists and was not written by trainwell: choose another file, "
                             f"or pass --force to replace it")
    return path


def _import_pipeline() -> None:
    """Import :mod:`trainwell.pipeline` (torch and the rest) without the cyclic garbage collector, then freeze what
    the import made (``gc.freeze``) and turn the collector back on.

    An import makes hundreds of thousands of objects that live as long as the process; the collector scanned them
    again and again as they piled up: 0.12-0.15 s of ``import torch, trainwell.pipeline`` (~1.05 s here, RESULTS
    section 37). Frozen, they are never scanned again, during training either. The fit, doctor and prune commands
    call it after the config has been checked, so that a config mistake is still reported before torch is imported
    (``sweep`` checks its arguments inside :func:`trainwell.sweep.sweep`, which then imports torch itself)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        import trainwell.pipeline  # noqa: F401
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def cmd_fit(args) -> int:
    if not args.quiet and sys.stderr.isatty():  # within a second, before torch is imported (errors stay one line
        print("trainwell fit: loading the config, data and model...", file=sys.stderr, flush=True)  # in logs)

    from trainwell.config import load_config

    if args.resume:
        if args.config:
            raise TrainwellError("--resume takes its config from the run directory: drop the CONFIG argument")
        if args.out:
            raise TrainwellError("--resume continues RUN_DIR in place: drop --out (to branch off, copy the run "
                                 "directory first)")
        from trainwell.rundir import require_run_config

        require_run_config(args.resume)  # before torch is imported
        _import_pipeline()
        from trainwell.pipeline import config_of_run

        cfg = config_of_run(args.resume, args.overrides)
        before = _finished_epochs(args.resume)
    else:
        cfg = load_config(args.config, args.overrides)  # a config error is reported before torch is imported
        from trainwell.config_reads import unread_notes
        from trainwell.data.registry import spec_of

        for line in [] if args.quiet else unread_notes(cfg, args.config, args.overrides):
            print(f"trainwell fit: note: {line}", file=sys.stderr, flush=True)
        spec_of(cfg.data.name)  # so is an unknown dataset
    if cfg.report.enabled or args.figures:
        figure_process.start()  # imports matplotlib on another core while this process imports torch and trains
    if not args.resume:  # (a resumed run imported it to read its config)
        _import_pipeline()
    from trainwell.pipeline import fit

    result = fit(cfg, out=args.out, resume=args.resume, force=args.force, quiet=args.quiet, figures=args.figures)
    if result.rank:  # under torchrun only rank 0 reports; every rank exits as rank 0 does
        return 1 if result.summary["failed"] else 0
    if args.resume and before is not None and result.summary.get("epochs") == before[0] and not args.quiet:
        more = (f"start a new run to train longer (its {cfg.optim.schedule} schedule was planned over its epochs)"
                if cfg.optim.schedule in ("onecycle", "cosine") else
                f"--resume {args.resume} --set train.epochs=N with N > {before[0]} trains on")
        print(f"trainwell fit: note: {args.resume} had already finished ({before[1]}): no epoch was left to train; "
              f"{more}", file=sys.stderr, flush=True)
    console = _console(stderr=args.json)
    console.print(cli_tables.result(result.summary, result.run_dir))
    console.print(cli_tables.result_lines(result.summary, result.run_dir, report=cfg.report.enabled),
                  highlight=False)
    flagged = [v for v in result.summary["doctor"] if v["status"] in ("warn", "fail")]
    if flagged:
        console.print(cli_tables.verdicts(flagged, "doctor: warnings and failures (all verdicts are in summary.json)"))
    failures = sum(v["status"] == "fail" for v in result.summary["doctor"])
    if failures:
        console.print(f"doctor: {failures} failure{'s' if failures > 1 else ''}"
                      f"{' (--strict: exit 1)' if args.strict else ''}", highlight=False)
    if args.json:
        from trainwell.rundir import to_json

        print(to_json(result.summary))
    # the doctor's verdicts are shown and saved; the exit code reports whether training itself failed, and with
    # --strict also whether any check failed
    return 1 if result.summary["failed"] or (args.strict and failures) else 0


def _finished_epochs(run_dir) -> tuple[int, str] | None:
    """(epochs, stop reason) of a run whose summary.json says it finished, else None (interrupted, or unread)."""
    import json

    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    epochs, reason = (summary.get("epochs"), summary.get("stop_reason")) if isinstance(summary, dict) else (0, 0)
    if not isinstance(epochs, int) or not isinstance(reason, str) or reason.startswith("interrupted"):
        return None
    return epochs, reason


def _parse_shape(text: str) -> tuple[int, ...]:
    from trainwell.cli_parser import INTEGER

    parts = text.split(",")
    shape = tuple(int(v) for v in parts) if all(INTEGER.fullmatch(v) for v in parts) else ()
    if not shape or any(v < 1 for v in shape):
        raise TrainwellError(f"--input-shape {text!r} is not allowed: use positive integers like 3,227,227 or 1,40")
    return shape


def cmd_summary(args) -> int:
    from trainwell.cnn.summary import totals
    from trainwell.config import load_config
    from trainwell.pipeline import summarize

    cfg = load_config(args.config, args.overrides)
    shape = None
    if args.input_shape:
        from trainwell.nn.size import check_input_fits

        shape = _parse_shape(args.input_shape)
        check_input_fits(shape, "--input-shape")
    shape, rows = summarize(cfg, shape, args.classes)
    if args.json:
        import json

        print(json.dumps({"input_shape": shape, "layers": [r.as_dict() for r in rows], "totals": totals(rows)},
                         indent=2))
        return 0
    table = cli_tables.layers(cfg.model.kind, shape, rows)
    console = _console()
    console.print(table)
    from trainwell.cnn.summary import floored_layers

    for line in floored_layers(rows):  # torch floors (W-F+2P)/S+1; model.geometry = 'strict' refuses it
        console.print(f"warning: {line} ((W-F+2P)/S+1 is not an integer; model.geometry = 'strict' refuses this)",
                      highlight=False, soft_wrap=True)
    return 0


def cmd_filters(args) -> int:
    import torch
    from matplotlib.figure import Figure
    from sklearn.datasets import load_digits

    from trainwell.cnn import filters

    formats = Figure().canvas.get_supported_filetypes()
    suffix = Path(args.out).suffix.lower().lstrip(".")
    if suffix not in formats:
        raise TrainwellError(f"--out {args.out!r}: the extension must name an image format: "
                             f"{', '.join(sorted(formats))}")
    _output_file(args.out, args.force)
    digit = torch.tensor(load_digits().images[0], dtype=torch.float32) / 16.0
    filters.figure({"photo (Grace Hopper)": filters.sample_photo(128), "digit 0": digit}, args.out)
    print(args.out)
    return 0


def cmd_prune(args) -> int:
    from trainwell.config import load_config

    cfg = load_config(args.config, args.overrides)  # a config error is reported before torch is imported
    if cfg.report.enabled:
        figure_process.start()  # every round's run draws its figures there
    _import_pipeline()
    from trainwell.lottery import lottery

    rows = lottery(cfg, args.rounds, rate=args.rate, rewind=args.rewind, control=args.control, out=args.out,
                   scope=args.scope, force=args.force, quiet=False)  # progress on stderr, as fit
    table = cli_tables.lottery(rows)
    _console().print(table)
    base = Path(rows[0].run_dir).parent
    report = f", report: {base / 'report.html'}" if cfg.report.enabled else ""
    print(f"results: {base}/results.csv, accuracy_vs_density.png{report}")
    return 0


def cmd_sweep(args) -> int:
    from trainwell.config import load_config
    from trainwell.sweep import parse_grid, resume_sweep, sweep

    # progress goes to stderr, so `--json` keeps stdout for the JSON alone
    if args.resume:
        given = [flag for flag, on in (("CONFIG", args.config), ("--set", args.overrides), ("--grid", args.grid),
                                       ("--seeds", args.seeds != 1), ("--sequential", args.sequential),
                                       ("--out", args.out), ("--force", args.force)) if on]
        if given:  # the sweep's members are fixed when it starts: each would be silently ignored
            raise TrainwellError(f"--resume continues the sweep in SWEEP_DIR with the members it started with: drop "
                                 f"{', '.join(given)} (to change them, start a new sweep)")
        if args.backend != "ray":  # (Ray's tasks draw their members' figures where they train)
            figure_process.start()
        result = resume_sweep(args.resume, quiet=False, backend=args.backend, address=args.address)
    else:
        kind_varies = any(item.split("=", 1)[0].strip() == "model.kind" for item in args.grid or [])
        cfg = load_config(args.config, args.overrides, kind_varies=kind_varies)
        from trainwell.config_reads import unread_notes

        grid_keys = {item.split("=", 1)[0].strip() for item in args.grid or []}
        for line in unread_notes(cfg, args.config, args.overrides, varied=grid_keys):
            print(f"trainwell sweep: note: {line}", file=sys.stderr, flush=True)
        if cfg.report.enabled and args.backend != "ray":
            figure_process.start()
        result = sweep(cfg, parse_grid(args.grid), seeds=args.seeds, out=args.out, sequential=args.sequential,
                       quiet=False, force=args.force, backend=args.backend, address=args.address)
    failed = sum("error" in r for r in result.rows)  # members whose task failed (Ray backend, after a retry)
    if args.json:
        import json

        print(json.dumps(result.rows, indent=2))
        return 1 if failed else 0
    from trainwell.sweep_labels import shared_labels
    from trainwell.sweep_table import sweep_table

    _console().print(sweep_table(result.rows, f"sweep: {len(result.rows)} members, {result.mode}, "
                                              f"{result.wall_s:.1f} s"))
    _print_labels(shared_labels(result.out, len(result.rows)))
    for check in result.skipped:
        print(f"skipped (population): {check}")
    print(f"results: {result.out}/results.csv{f', report: {result.report}' if result.report else ''}")
    for line in cli_tables.failed_members(result.out, result.rows):
        print(line)
    if failed:
        print(f"{failed} member{'s' if failed > 1 else ''} failed (see the error column)", file=sys.stderr)
    return 1 if failed else 0


def _print_labels(labels: dict) -> None:
    """The class names and label notes the members share, as ``fit`` prints a run's."""
    from rich.markup import escape

    from trainwell.cli_tables import class_names_line

    _console().print(class_names_line(labels["class_names"]) + "".join(
        f"note: {escape(n)}\n" for n in labels["label_notes"]), end="")


def cmd_report(args) -> int:
    from trainwell.viz.build import build_report

    print(build_report(args.run_dir))
    return 0


def cmd_lr_find(args) -> int:
    from trainwell.config import load_config

    if not 0 < args.start < args.end:  # the arguments are checked before torch is imported
        raise TrainwellError(f"--start {args.start:g} --end {args.end:g} is not allowed: use 0 < start < end")
    cfg = load_config(args.config, args.overrides)
    _output_file(args.out, args.force)
    from trainwell import lr_find

    found = lr_find.find_lr(cfg, steps=args.steps, start=args.start, end=args.end, quiet=False)  # progress: stderr
    lr_find.plot(found, args.out)
    if args.json:
        import json

        print(json.dumps(found.as_dict(), indent=2))
        return 0
    r = found.range
    print(f"suggested learning rate: {found.suggestion:g}  (--set optim.lr={found.suggestion:g}; rule {r.rule} "
          f"for optim.schedule = {cfg.optim.schedule!r})")
    print(f"  minimum of the smoothed loss at lr {r.min_lr:.3g}; steepest descent at lr {r.steepest:.3g}; "
          f"{len(r.lrs)} steps, stopped: {r.stopped}")
    print(f"  doctor, a {lr_find.CHECK_STEPS}-step run at {found.suggestion:g}: {found.check.status}: "
          f"{found.check.value}")
    for line in r.notes:
        print(f"  note: {line}")
    print(f"plot: {args.out}")
    return 0


def cmd_datasets(args) -> int:
    from rich.table import Table

    from trainwell.data.registry import available  # the names and descriptions need no torch

    table = Table(title="datasets (data.name)")
    table.add_column("name")
    table.add_column("description")
    for name, text in available().items():
        table.add_row(name, text)
    _console().print(table)
    return 0


def _lab_table(console, rows: list[dict]) -> int:
    from rich.table import Table

    table = Table(title="trainwell lab")
    for col in ("name", "claim", "quick", "default"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["claim"], f"~{r['expected_s']['quick']} s", f"~{r['expected_s']['default']} s")
    console.print(table)
    return 0


def cmd_lab(args) -> int:
    from rich.table import Table

    from trainwell.lab import registry

    console = _console(stderr=getattr(args, "json", False))  # piped: tables whole, one line per row
    if args.lab_command == "list":
        if not args.json:  # the table needs no experiment imported (registry.CATALOG)
            return _lab_table(console, registry.listing())
        import json

        print(json.dumps(registry.describe(), indent=2))
        return 0
    if args.lab_command != "run":
        raise TrainwellError("use 'trainwell lab list' or 'trainwell lab run NAME... | --all'")
    known = registry.names()  # static: a misspelt name is answered before torch is imported
    names = known if args.all else args.names
    if not names or (args.all and args.names):
        raise TrainwellError("name experiments to run, or pass --all (not both); see 'trainwell lab list'")
    for name in names:
        if name not in known:
            raise TrainwellError(registry.unknown(name, known))
    from trainwell.lab import runner

    summaries = runner.run_lab(names, args.out, quick=args.quick, seeds=args.seeds, resume=args.resume,
                               seed=args.seed, log=lambda line: console.print(line, highlight=False),
                               backend=args.backend, address=args.address, control=args.control,
                               jobs=args.jobs)
    if args.json:
        import json

        print(json.dumps(summaries, indent=2, default=str))
    else:
        what = ("control" if args.control else "experiment") + ("s" if len(summaries) != 1 else "")
        table = Table(title=f"lab: {len(summaries)} {what} ({'quick' if args.quick else 'default'} size)")
        for col in ("experiment", "control verdict (never pass)" if args.control else "verdict", "time"):
            table.add_column(col)
        for s in summaries:
            table.add_row(s["name"], runner.shown(s["verdict"]), f"{s['wall_s']:.1f} s")
        console.print(table)
        console.print(f"index: {Path(args.out) / 'index.html'}", highlight=False)
    return runner.exit_code(summaries, control=args.control)
