"""The ``trainwell`` command line: parses, calls the pipeline, renders tables. No logic of its own.

Exit codes: 0 ok, 1 a check or verdict failed (e.g. training diverged), 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainwell.errors import DistributedError, TrainwellError

EPILOG = """examples:
  trainwell fit                                   train the default MNIST-1D CNN
  trainwell fit configs/mnist1d-mlp.toml --set optim.lr=0.003 --set train.epochs=20
  trainwell fit --set data.name=spirals --set model.kind=mlp --set 'model.hidden=[64,64]'
  trainwell fit --resume runs/run-1a2b3c4d        continue an interrupted run
  trainwell report runs/run-1a2b3c4d              rebuild report.html
  trainwell doctor --set init.scheme=zeros        pre-flight checks (exit 1 on a fail)
  trainwell summary configs/digits-cnn.toml        per-layer shapes, params, receptive fields
  trainwell lr-find                               LR range test: plot and a suggested learning rate
  trainwell lab list                              the lecture's claims as experiments
  trainwell lab run --all --quick                 run them all (seconds each) and write runs/lab/index.html
"""


def _config_args(parser: argparse.ArgumentParser) -> None:
    """The CONFIG argument and --set overrides that every config-driven command takes."""
    parser.add_argument("config", nargs="?", help="a TOML config (default: the embedded MNIST-1D CNN)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set optim.lr=0.01 (repeatable)")


def _console(stderr: bool = False):
    """A rich console; when the stream is not a terminal (a pipe, a file, CI logs) it is as wide as the content:
    tables are printed whole, no number is cut or folded, and each plain line stays one line."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=10_000, soft_wrap=True, color_system=None)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use an integer >= 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: use a number in [0, 1)")
    return value


def _check_overrides(args) -> None:
    """``--set key value`` (a space) leaves ``value`` as the CONFIG argument: say to write ``key=value``."""
    for item in getattr(args, "overrides", None) or []:
        if "=" not in item:
            config = getattr(args, "config", None)
            value = config if config is not None and not str(config).endswith(".toml") else "VALUE"
            raise TrainwellError(f"--set {item} {value if value != 'VALUE' else ''}".rstrip()
                                 + f": use key=value with no space: --set {item}={value}")


MAX_MESSAGE = 400  # an error is one line; a huge value in it is cut


def _one_line(message: str) -> str:
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE // 2]} ... {text[-MAX_MESSAGE // 4:]} ({len(text):,} characters in all)"
    return text


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit 2, like every other usage error
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="trainwell", description="Train neural networks well: the lecture's practices, runnable.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from trainwell import __version__

    parser.add_argument("--version", action="version", version=f"trainwell {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    fit = sub.add_parser("fit", help="train a model from a config (default: the MNIST-1D CNN) and write a run dir",
                         description="Train the model a config describes and write a run directory with config.toml, "
                                     "metrics.jsonl, summary.json, checkpoints, figures and report.html.")
    _config_args(fit)
    fit.add_argument("--out", help="run directory (default: runs/<name>-<config hash>)")
    fit.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    fit.add_argument("--force", action="store_true",
                     help="replace --out if it is an earlier trainwell fit run (never any other folder)")
    fit.add_argument("--json", action="store_true", help="print summary.json to stdout (the table goes to stderr)")
    fit.add_argument("--quiet", action="store_true", help="no progress output")
    fit.add_argument("--figures", action="store_true", help="draw figures even when the report is off")
    fit.add_argument("--strict", action="store_true",
                     help="exit 1 when any doctor check fails, not only when training fails (for CI)")

    doc = sub.add_parser("doctor", help="pre-flight checks on a config's model and data; exit 1 on a fail",
                         description="Run the lecture's pre-flight checklist on the model a config builds and a "
                                     "slice of its training data: initial loss, gradient check, regularization, "
                                     "overfitting a tiny subset, symmetry, variance propagation, input-independent "
                                     "baseline, batch independence. Exit 1 if any check fails.")
    _config_args(doc)
    doc.add_argument("--json", action="store_true", help="print the verdicts as JSON")

    pr = sub.add_parser("prune", help="lottery-ticket rounds: train, prune by magnitude, reset, retrain",
                        description="Train the config's model, prune --rate of the surviving weights per layer by "
                                    "magnitude (the output layer at half rate), reset the survivors to their "
                                    "initial values (or rewind to step K), and retrain, for --rounds rounds. "
                                    "Writes one run per round, results.csv/json and accuracy_vs_density.png.")
    _config_args(pr)
    pr.add_argument("--rounds", type=_positive_int, default=3, help="pruning rounds after the dense run (default 3)")
    pr.add_argument("--rate", type=_fraction, default=0.2, help="fraction of surviving weights pruned per round")
    pr.add_argument("--rewind", type=float, default=0, metavar="K",
                    help="reset to the weights at step K (>= 1) or at a fraction K of training (< 1); 0 = theta_0")
    pr.add_argument("--control", choices=["reinit", "random"], help="also train a control at every density")
    pr.add_argument("--scope", choices=["layer", "global"], default="layer",
                    help="prune each layer by its own magnitudes (default) or with one threshold for all layers")
    pr.add_argument("--out", help="folder for the rounds (default: runs/<name>-lottery-<hash>)")
    pr.add_argument("--force", action="store_true", help="replace --out if it is an earlier prune run")

    sw = sub.add_parser("sweep", help="train a grid of settings x seeds as one population (vmap) and tabulate",
                        description="Train every combination of --grid values (times --seeds seeds) at once as one "
                                    "population when only seeds, learning rates, weight decays, MLP widths or "
                                    "label-noise draws differ; otherwise one model after another. Writes "
                                    "results.csv/json, metrics.jsonl (per member and epoch) and summary.json.")
    _config_args(sw)
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                    help="values of one config key, e.g. --grid optim.lr=0.1,0.01 --grid 'model.hidden=[32],[64]'")
    sw.add_argument("--seeds", type=int, default=1, help="seeds per combination (train.seed, +1, +2, ...)")
    sw.add_argument("--sequential", action="store_true", help="train the members one after another")
    sw.add_argument("--out", help="output folder (default: runs/<name>-sweep-<hash>)")
    sw.add_argument("--force", action="store_true", help="replace --out if it is an earlier sweep")
    sw.add_argument("--resume", metavar="SWEEP_DIR", help="continue the interrupted sweep in SWEEP_DIR")
    sw.add_argument("--json", action="store_true", help="print the results as JSON")
    sw.add_argument("--backend", choices=["local", "ray"], default="local",
                    help="where the members train: this process (default) or Ray tasks (pip install 'trainwell[ray]')")
    sw.add_argument("--address", metavar="auto|HOST:PORT",
                    help="with --backend ray: the Ray cluster to use (default: RAY_ADDRESS, else a local instance)")

    lrf = sub.add_parser("lr-find", help="learning-rate range test (Smith 2017): sweep the rate exponentially, "
                                          "plot the loss, suggest a rate",
                         description="Train the config's model for --steps steps while the learning rate grows "
                                     "exponentially from --start to --end (Smith 2017), stop when the loss explodes, "
                                     "and suggest a tenth of the rate at the loss's minimum, checked by the doctor's "
                                     "reading of a short run at that rate. Nothing is changed; use the rate with "
                                     "--set optim.lr=..., or let fit do this with optim.lr = \"find\".")
    _config_args(lrf)
    lrf.add_argument("--steps", type=_positive_int, default=100, help="steps of the sweep (default 100)")
    lrf.add_argument("--start", type=float, default=1e-7, help="first learning rate (default 1e-7)")
    lrf.add_argument("--end", type=float, default=10.0, help="last learning rate (default 10)")
    lrf.add_argument("--out", default="lr_find.png", help="plot to write (default: lr_find.png)")
    lrf.add_argument("--json", action="store_true", help="print the result as JSON")

    rep = sub.add_parser("report", help="(re)build report.html of a fit, sweep or prune directory",
                         description="Rebuild report.html from the files of a run directory written by trainwell "
                                     "fit (finished, running or interrupted), sweep or prune.")
    rep.add_argument("run_dir", help="a directory written by trainwell fit, sweep or prune")

    summ = sub.add_parser("summary", help="per-layer table: output shape, params with/without sharing, receptive "
                                         "field, mult-adds",
                          description="Build the model a config describes and print, per layer: output shape, "
                                      "neurons, parameters with and without weight sharing, receptive field and "
                                      "mult-adds. Impossible conv geometry is an error (exit 2).")
    _config_args(summ)
    summ.add_argument("--input-shape", metavar="C,H,W", help="input shape without the batch axis, e.g. 3,227,227 "
                                                             "(default: the dataset's)")
    summ.add_argument("--classes", type=_positive_int, help="number of outputs (default: the dataset's)")
    summ.add_argument("--json", action="store_true", help="print the rows as JSON")

    filt = sub.add_parser("filters", help="draw the classic filters (box, Gaussian, sharpen, derivatives) applied "
                                          "to the sample photo and a digit")
    filt.add_argument("--out", default="filters.png", help="PNG to write (default: filters.png)")

    sub.add_parser("datasets", help="list the datasets trainwell can load")
    _lab_parser(sub)
    return parser


def _lab_parser(sub) -> None:
    lab = sub.add_parser("lab", help="the lecture's claims as experiments with verdicts (list | run)",
                         description="Each lab experiment trains small models through the pipeline, draws figures "
                                     "and states a verdict computed from the numbers: pass, fail or inconclusive "
                                     "(unstable when seeds disagree, error when it crashed).")
    lsub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    ls = lsub.add_parser("list", help="name, claim, sizes and expected time of every experiment")
    ls.add_argument("--json", action="store_true", help="print the list as JSON")
    run = lsub.add_parser("run", help="run experiments and write a results tree with index.html")
    run.add_argument("names", nargs="*", metavar="NAME", help="experiments to run (see trainwell lab list)")
    run.add_argument("--all", action="store_true", help="run every experiment")
    run.add_argument("--quick", action="store_true", help="the quick size (seconds each)")
    run.add_argument("--seeds", type=int, default=1, help="run each experiment with N seeds; a verdict that flips "
                                                          "between seeds is 'unstable'")
    run.add_argument("--seed", type=int, help="first seed (default: each experiment's own, 0)")
    run.add_argument("--out", default="runs/lab", help="results folder (default: runs/lab)")
    run.add_argument("--resume", action="store_true", help="keep experiments already finished in --out")
    run.add_argument("--json", action="store_true", help="print the summaries as JSON")
    run.add_argument("--backend", choices=["local", "ray"], default="local",
                     help="where the experiments run: this process (default) or one Ray task each "
                          "(pip install 'trainwell[ray]')")
    run.add_argument("--address", metavar="auto|HOST:PORT",
                     help="with --backend ray: the Ray cluster to use (default: RAY_ADDRESS, else a local instance)")


def _result_table(summary: dict, run_dir) -> object:
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


def _result_lines(summary: dict, run_dir) -> str:
    best = summary["best_epoch"]
    return (f"{summary['epochs']} epochs, {summary['steps']:,} steps, {summary['wall_s']:.1f} s wall\n"
            f"stopped: {summary['stop_reason']} (best epoch by {summary['monitor']}: "
            f"{'-' if best is None else best + 1})\n"
            f"run dir: {run_dir}  (report: {run_dir}/report.html)")


def _verdict_table(verdicts: list[dict], title: str):
    from rich.table import Table

    colors = {"pass": "green", "warn": "yellow", "fail": "red"}
    table = Table(title=title, show_lines=False)
    for col in ("phase", "check", "status", "value", "advice"):
        table.add_column(col, overflow="fold")
    for v in verdicts:
        status = v["status"]
        table.add_row(v.get("phase", ""), v["check"], f"[{colors[status]}]{status}[/]", str(v["value"]),
                      v.get("advice") or "")
    return table


def cmd_doctor(args) -> int:

    from trainwell.config import load_config
    from trainwell.doctor import Report
    from trainwell.pipeline import preflight, prepare

    cfg = load_config(args.config, args.overrides)
    verdicts = preflight(prepare(cfg))
    report = Report(verdicts, f"trainwell doctor: {cfg.model.kind} on {cfg.data.name}", ["pre"] * len(verdicts))
    if args.json:
        print(report.to_json())
    else:
        _console().print(report.table())
    return 1 if report.failed else 0


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
        from trainwell.pipeline import config_of_run

        cfg = config_of_run(args.resume, args.overrides)
    else:
        cfg = load_config(args.config, args.overrides)  # a config error is reported before torch is imported
    from trainwell.pipeline import fit

    result = fit(cfg, out=args.out, resume=args.resume, force=args.force, quiet=args.quiet, figures=args.figures)
    if result.rank:  # under torchrun only rank 0 reports; every rank exits as rank 0 does
        return 1 if result.summary["failed"] else 0
    console = _console(stderr=args.json)
    console.print(_result_table(result.summary, result.run_dir))
    console.print(_result_lines(result.summary, result.run_dir), highlight=False)
    flagged = [v for v in result.summary["doctor"] if v["status"] != "pass"]
    if flagged:
        console.print(_verdict_table(flagged, "doctor: warnings and failures (all verdicts are in summary.json)"))
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


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(v < 1 for v in shape):
        raise TrainwellError(f"--input-shape {text!r} is not allowed: use positive integers like 3,227,227 or 1,40")
    return shape


def cmd_summary(args) -> int:
    from rich.table import Table

    from trainwell.cnn.summary import summarize, totals
    from trainwell.config import load_config
    from trainwell.data.registry import num_classes
    from trainwell.nn.models import build_model
    from trainwell.nn.size import check_input_fits, check_model_fits
    from trainwell.pipeline import load_data

    cfg = load_config(args.config, args.overrides)
    if args.input_shape:
        shape = _parse_shape(args.input_shape)
        classes = args.classes or num_classes(cfg.data.name, cfg.data.options)
    else:
        splits, _ = load_data(cfg)
        shape, classes = splits.meta.input_shape, args.classes or splits.meta.num_classes
    check_input_fits(shape, "--input-shape")
    check_model_fits(lambda: build_model(cfg.model, shape, classes), f"model.kind = {cfg.model.kind!r}")
    model = build_model(cfg.model, shape, classes)
    rows = summarize(model, shape)
    if args.json:
        import json

        print(json.dumps({"input_shape": shape, "layers": [r.as_dict() for r in rows], "totals": totals(rows)},
                         indent=2))
        return 0
    table = Table(title=f"{cfg.model.kind} on input {'x'.join(map(str, shape))}")
    for col in ("layer", "type", "output", "neurons", "params", "params (no sharing)", "receptive field",
                "mult-adds"):
        table.add_column(col, justify="left" if col in ("layer", "type", "output") else "right")
    for r in rows:
        table.add_row(r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.neurons:,}", f"{r.params:,}",
                      f"{r.params_unshared:,}", "x".join(map(str, r.receptive_field)), f"{r.mult_adds:,}")
    t = totals(rows)
    table.add_row("total", "", "", "", f"{t['params']:,}", f"{t['params_unshared']:,}", "", f"{t['mult_adds']:,}")
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
    digit = torch.tensor(load_digits().images[0], dtype=torch.float32) / 16.0
    filters.figure({"photo (Grace Hopper)": filters.sample_photo(128), "digit 0": digit}, args.out)
    print(args.out)
    return 0


def cmd_prune(args) -> int:
    from rich.table import Table

    from trainwell.config import load_config
    from trainwell.lottery import lottery

    cfg = load_config(args.config, args.overrides)
    try:
        rows = lottery(cfg, args.rounds, rate=args.rate, rewind=args.rewind, control=args.control, out=args.out,
                       scope=args.scope, force=args.force)
    except ValueError as exc:
        raise TrainwellError(str(exc)) from None
    table = Table(title="lottery tickets")
    for col in ("round", "kind", "weights left", "test acc", "val acc", "early-stop step"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r.round), r.kind, f"{r.density:.2%}", f"{r.test_acc:.2%}", f"{r.val_acc:.2%}",
                      str(r.early_stop_step))
    _console().print(table)
    base = Path(rows[0].run_dir).parent
    report = _group_report(cfg, base)
    print(f"results: {base}/results.csv, accuracy_vs_density.png{report}")
    return 0


def cmd_sweep(args) -> int:
    from rich.table import Table

    from trainwell.config import load_config
    from trainwell.sweep import parse_grid, resume_sweep, sweep

    try:
        if args.resume:
            result = resume_sweep(args.resume, quiet=args.json, backend=args.backend, address=args.address)
            from trainwell.config import config_from_dict, read_toml

            cfg = config_from_dict(read_toml(Path(args.resume) / "config.toml"))  # the sweep's own config
        else:
            cfg = load_config(args.config, args.overrides)
            result = sweep(cfg, parse_grid(args.grid), seeds=args.seeds, out=args.out, sequential=args.sequential,
                           quiet=args.json, force=args.force, backend=args.backend, address=args.address)
    except ValueError as exc:
        raise TrainwellError(str(exc)) from None
    failed = sum("error" in r for r in result.rows)  # members whose task failed (Ray backend, after a retry)
    if args.json:
        import json

        print(json.dumps(result.rows, indent=2))
        return 1 if failed else 0
    table = Table(title=f"sweep: {len(result.rows)} members, {result.mode}, {result.wall_s:.1f} s")
    keys = list(dict.fromkeys(k for r in result.rows for k in r if k != "history"))
    for k in keys:
        table.add_column(k, justify="right", overflow="fold")
    for r in result.rows:
        table.add_row(*[f"{r.get(k):.4f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys])
    _console().print(table)
    for check in result.skipped:
        print(f"skipped (population): {check}")
    print(f"results: {result.out}/results.csv{_group_report(cfg, result.out)}")
    if failed:
        print(f"{failed} member{'s' if failed > 1 else ''} failed (see the error column)", file=sys.stderr)
    return 1 if failed else 0


def _group_report(cfg, folder) -> str:
    """Write the report of a sweep or prune folder (unless report.enabled = false); the text to print about it."""
    if not cfg.report.enabled:
        return ""
    from trainwell.viz.report import build_report

    return f", report: {build_report(folder)}"


def cmd_report(args) -> int:
    from trainwell.viz.report import build_report

    print(build_report(args.run_dir))
    return 0


def cmd_lr_find(args) -> int:
    from trainwell import lr_find
    from trainwell.config import load_config

    cfg = load_config(args.config, args.overrides)
    if not 0 < args.start < args.end:
        raise TrainwellError(f"--start {args.start} --end {args.end} is not allowed: use 0 < start < end")
    try:
        found = lr_find.find_lr(cfg, steps=args.steps, start=args.start, end=args.end)
    except ValueError as exc:
        raise TrainwellError(str(exc)) from None
    lr_find.plot(found, args.out)
    if args.json:
        import json

        print(json.dumps(found.as_dict(), indent=2))
        return 0
    r = found.range
    print(f"suggested learning rate: {found.suggestion:g}  (--set optim.lr={found.suggestion:g})")
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

    from trainwell.data import available

    table = Table(title="datasets (data.name)")
    table.add_column("name")
    table.add_column("description")
    for name, text in available().items():
        table.add_row(name, text)
    _console().print(table)
    return 0


def cmd_lab(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from trainwell.lab import registry, runner

    console = Console(stderr=getattr(args, "json", False))
    if args.lab_command == "list":
        rows = registry.describe()
        if args.json:
            import json

            print(json.dumps(rows, indent=2))
            return 0
        table = Table(title="trainwell lab")
        for col in ("name", "claim", "quick", "default"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["name"], r["claim"], f"~{r['expected_s']['quick']} s", f"~{r['expected_s']['default']} s")
        console.print(table)
        return 0
    if args.lab_command != "run":
        raise TrainwellError("use 'trainwell lab list' or 'trainwell lab run NAME... | --all'")
    names = list(registry.experiments()) if args.all else args.names
    if not names or (args.all and args.names):
        raise TrainwellError("name experiments to run, or pass --all (not both); see 'trainwell lab list'")
    try:
        summaries = runner.run_lab(names, args.out, quick=args.quick, seeds=args.seeds, resume=args.resume,
                                   seed=args.seed, log=lambda line: console.print(line, highlight=False),
                                   backend=args.backend, address=args.address)
    except (KeyError, ValueError) as exc:
        raise TrainwellError(str(exc).strip("'\"")) from None
    if args.json:
        import json

        print(json.dumps(summaries, indent=2, default=str))
    else:
        table = Table(title=f"lab: {len(summaries)} experiments ({'quick' if args.quick else 'default'} size)")
        for col in ("experiment", "verdict", "time"):
            table.add_column(col)
        for s in summaries:
            table.add_row(s["name"], s["verdict"]["status"], f"{s['wall_s']:.1f} s")
        console.print(table)
        console.print(f"index: {Path(args.out) / 'index.html'}", highlight=False)
    return 0 if all(s["verdict"]["status"] in ("pass", "inconclusive") for s in summaries) else 1


COMMANDS = {
    "fit": cmd_fit, "doctor": cmd_doctor, "prune": cmd_prune, "sweep": cmd_sweep, "report": cmd_report,
    "summary": cmd_summary, "filters": cmd_filters, "datasets": cmd_datasets, "lab": cmd_lab,
    "lr-find": cmd_lr_find,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors (exit 2, one line already printed), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 2
    try:
        _check_overrides(args)
        return COMMANDS[args.command](args)
    except TrainwellError as exc:
        print(f"trainwell {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, permissions: what was saved before stays; say what failed, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"trainwell {args.command}: error: {_one_line(f'{where}{exc.strerror or exc}')}", file=sys.stderr)
        return 1
    except DistributedError as exc:  # another process of a torchrun group failed: not a usage error
        print(f"trainwell {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", None)  # trainwell.train.interrupt.Interrupted: saved, says how to resume
        print(f"trainwell {args.command}: {exc if code is not None else 'interrupted'}", file=sys.stderr)
        return code if code is not None else 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
