"""The ``trainwell`` commands of the doctor: ``doctor`` (the pre-flight checklist on a config's model and data) and
``watch`` (a user's own training script run unchanged, its loops read); each takes the parsed arguments and returns
the exit code, as :mod:`trainwell.cli_commands`' do."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from trainwell import cli_tables
from trainwell.cli_commands import _console, _import_pipeline
from trainwell.errors import TrainwellError


def cmd_doctor(args) -> int:
    from trainwell.config import load_config
    from trainwell.data.registry import spec_of

    cfg = load_config(args.config, args.overrides)  # config mistakes are reported before torch is imported
    spec_of(cfg.data.name)
    _import_pipeline()
    from trainwell.doctor import Report
    from trainwell.pipeline import preflight, prepare
    from trainwell.train.progress import checks_shown

    prep = prepare(cfg)
    with checks_shown():  # "pre-flight (n of m): check..." on stderr as each starts, as fit shows them
        verdicts = preflight(prep)
    report = Report(verdicts, f"trainwell doctor: {cfg.model.kind} on {cfg.data.name}", ["pre"] * len(verdicts))
    if args.json:
        print(report.to_json())
    else:
        _console().print(report.rendered(details="run it again with --json"))
    return 1 if report.failed else 0


def _script_compiles(path: str) -> None:
    """The script ``watch`` runs: a file that compiles as ``python path`` compiles it, else one line saying where
    not (before torch is imported; nothing of the script has run)."""
    if not Path(path).is_file():
        what = "is a folder, not" if Path(path).is_dir() else "does not exist: give"
        raise TrainwellError(f"{path!r} {what} the path of a Python file that trains a model")
    source = Path(path).read_bytes()
    if b"\0" in source:  # a binary file (compile's error for it differs between Python versions)
        raise TrainwellError(f"{path} holds null bytes, as a binary file does: it is not a Python script, so nothing "
                             "ran")
    try:
        compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f", line {exc.lineno}" if exc.lineno else ""
        text = (exc.text or "").strip()
        raise TrainwellError(f"{path}{where}: {exc.msg}{f': {text}' if text else ''} ({type(exc).__name__}): the "
                             "script does not compile, so nothing ran") from None


def cmd_watch(args) -> int:
    _script_compiles(args.script)
    _import_pipeline()
    from trainwell.doctor.script_watch import ScriptWatch

    runner = ScriptWatch(args.every, args.model, args.check)
    tic = time.perf_counter()
    reports = runner.run(args.script, args.script_args)
    wall = time.perf_counter() - tic
    if runner.model_error:  # the script was stopped: --model named none of its modules
        raise TrainwellError(runner.model_error)
    if runner.error:
        print(runner.error.rstrip(), file=sys.stderr)
    if not reports:
        if runner.unmatched:
            raise TrainwellError(f"--model {args.model} holds none of the parameters of the optimizers that "
                                 f"stepped in {args.script}: nothing was watched")
        if runner.exited:  # its help (-h), a check that failed, sys.exit() before training: its own status
            print(f"trainwell watch: {args.script} exited (status {runner.status}) before any training loop: "
                  "nothing was watched", file=sys.stderr)
            if args.json:
                print("[]")
            return runner.status
        if runner.unheld:
            raise TrainwellError(f"{args.script} stepped {runner.unheld} optimizer(s) on tensors that no nn.Module "
                                 "holds (torch.func's stack_module_state, a list of raw tensors): there was no "
                                 "model's loop to read; hold them as nn.Parameter in a module to have it read")
        raise TrainwellError(f"{args.script} never called optimizer.step() twice: there was no training loop to "
                             "read")
    if args.json:  # one object per training loop: its title, status, the check to read first, and its verdicts
        import json

        print(json.dumps([{"title": r.title, "status": r.status,
                           "likely_cause": r.likely_cause.check if r.likely_cause else None,
                           "verdicts": r.as_dicts()} for r in reports], indent=2, default=str))
    else:
        for report in reports:
            _console().print(report.rendered(details="run it again with --json"))
    # the script's own failure (it raised, or exited with a status) is its exit status, as python would give it
    code = runner.status or (1 if any(r.failed for r in reports) else 0)
    print(cli_tables.watch_footer(args.script, wall, reports, code, runner.status), file=sys.stderr)
    return code
