"""The ``trainwell`` command line: parses, calls the pipeline, renders tables. No logic of its own.

Exit codes: 0 ok, 1 a check or verdict failed (e.g. training diverged), 2 usage or config error. Only a
:class:`~trainwell.errors.TrainwellError` is a usage error (the library's :class:`~trainwell.errors.ParameterError`
is reworded with the flag of its parameter); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import atexit
import gc
import os
import shlex
import sys

from trainwell import cli_commands as commands
from trainwell import cli_doctor_commands as doctor_commands
from trainwell.cli_parser import build_parser
from trainwell.errors import DistributedError, ParameterError, TrainwellError
from trainwell.heap import keep_freed_memory
from trainwell.viz import figure_process

FLAGS = {"rounds": "--rounds", "rate": "--rate", "rewind": "--rewind", "control": "--control", "scope": "--scope",
         "grid": "--grid", "seeds": "--seeds", "backend": "--backend", "address": "--address", "out": "--out",
         "jobs": "--jobs", "steps": "--steps", "start": "--start", "end": "--end", "input_shape": "--input-shape"}
"""The flag each library parameter is given with (a :class:`ParameterError`'s message is reworded with it)."""


def _check_overrides(args) -> None:
    """``--set key value`` (a space) leaves ``value`` as the CONFIG argument: say to write ``key=value``."""
    for item in getattr(args, "overrides", None) or []:
        if "=" not in item:
            config = getattr(args, "config", None)
            value = config if config is not None and not str(config).endswith(".toml") else "VALUE"
            raise TrainwellError(f"--set {item} {value if value != 'VALUE' else ''}".rstrip()
                                 + f": use key=value with no space: --set {item}={value}")


MAX_MESSAGE = 2000  # an error is one line; a huge value in it is cut (lists of allowed names fit whole)


def _one_line(message) -> str:
    if isinstance(message, ParameterError) and message.param in FLAGS:
        message = message.worded(FLAGS[message.param])
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE // 2]} ... {text[-MAX_MESSAGE // 4:]} ({len(text):,} characters in all)"
    return text


def _interrupted(args, stop: KeyboardInterrupt) -> str:
    """What a Ctrl-C answers. A fit or a population sweep says itself how to resume (``Interrupted``). A sweep trained
    member after member, a ``prune`` or a ``lab run`` stopped inside one of its training runs must not advise that
    run's ``fit --resume``, which would not continue the command: the sweep names ``sweep --resume``, a prune (which
    does not resume) where its finished rounds are and how to start again, a lab run where the finished experiments
    are and the command that continues with the others."""
    by = f" by {stop.signal_name}" if getattr(stop, "signal_name", None) else ""
    member = getattr(stop, "run_dir", None)
    if args.command == "sweep" and member is not None and (member.parent / "sweep.json").is_file():  # sequential
        return (f"interrupted{by} in {member.name} after {stop.epochs} completed epochs; checkpoint saved: continue "
                f"the sweep with `trainwell sweep --resume {member.parent}`")
    if args.command == "prune" and getattr(stop, "run_dir", None) is not None:
        folder = stop.run_dir.parent
        return (f"interrupted{by} in {stop.run_dir.name} after {stop.epochs} completed epochs; prune does not resume: "
                f"the rounds that finished are kept in {folder}; run the prune again to start over (--out {folder} "
                "--force replaces this folder)")
    if args.command != "lab" or getattr(args, "lab_command", None) != "run":
        return str(stop) if getattr(stop, "exit_code", None) is not None else "interrupted"
    words = ["--all"] if args.all else list(args.names)
    words += ["--quick"] * args.quick + ["--control"] * args.control
    words += [f"--seeds {args.seeds}"] * (args.seeds != 1) + [f"--seed {args.seed}"] * (args.seed is not None)
    words += [f"--jobs {args.jobs}"] * (args.jobs != 1) + [f"--out {shlex.quote(args.out)}", "--resume"]
    return (f"interrupted{by}; the experiments that finished are kept in {args.out} (its index.html lists them): "
            f"continue with `trainwell lab run {' '.join(words)}`")


COMMANDS = {
    "fit": commands.cmd_fit, "doctor": doctor_commands.cmd_doctor, "watch": doctor_commands.cmd_watch,
    "prune": commands.cmd_prune, "sweep": commands.cmd_sweep,
    "report": commands.cmd_report, "summary": commands.cmd_summary, "filters": commands.cmd_filters,
    "datasets": commands.cmd_datasets, "lab": commands.cmd_lab, "lr-find": commands.cmd_lr_find,
}
_import_pipeline = commands._import_pipeline  # torch's import as the commands make it (benchmarks/fit_wall.py)


def _unrecognized(extra: list[str]) -> str:
    """argparse's "unrecognized arguments", with the ``--set`` form of a flag that names a config field
    (``--epochs 3``: ``--set train.epochs=VALUE``), the way users of other trainers' flags try it."""
    from trainwell.config import Config  # no torch

    sections = {name: fields for name, fields in Config().to_dict().items() if isinstance(fields, dict)}
    for word in extra:
        name, given, value = word[2:].partition("=") if word.startswith("--") else ("", "", "")
        key = name.replace("-", "_")
        dotted = [f"--set {section}.{key}={value if given else 'VALUE'}" for section, fields in sections.items()
                  if key in fields]
        if dotted:
            return (f"unrecognized arguments: {' '.join(extra)}: a config setting is given with --set, "
                    f"{' or '.join(dotted)}")
    return f"unrecognized arguments: {' '.join(extra)}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as exc:  # usage errors (exit 2, one line already printed), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    if extra:  # one line naming the command (argparse's names only `trainwell`)
        words = " ".join(w for w in (args.command, getattr(args, "lab_command", None)) if w)
        print(f"trainwell {words}: error: {_unrecognized(extra)} (see --help)", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    keep_freed_memory()  # a training step's tensors reuse the last step's memory (trainwell.heap)
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
        global _peer_lost
        _peer_lost = True
        return 1
    except KeyboardInterrupt as exc:
        code = getattr(exc, "exit_code", None)  # trainwell.train.interrupt.Interrupted: saved, says how to resume
        print(f"trainwell {args.command}: {_interrupted(args, exc)}", file=sys.stderr)
        return code if code is not None else 130
    finally:
        figure_process.stop()  # the drawing process, if the command started one


_peer_lost = False  # a DistributedError ended the command: leave without the C++ teardown of a broken group


def run() -> None:
    """The ``trainwell`` program: :func:`main`, then an exit without the interpreter's last full garbage collection.

    At exit CPython collects every object its garbage collector tracks, some 260,000 once torch is imported: a
    quarter of a second here (RESULTS section 36) before the shell gets its prompt back. Freezing them first
    (``gc.freeze``) skips that scan. Nothing is lost: a command has closed and synced what it wrote before it
    returns, and Python does not promise to finalize the objects still alive at exit in any case. After a torchrun
    peer was lost, the process leaves with ``os._exit`` once the exit handlers ran and the streams are flushed:
    gloo's threads to the dead peer could otherwise abort the interpreter's teardown (exit -6 instead of 1).
    """
    code = main()
    if _peer_lost:  # the transport's threads to the lost peer can abort the interpreter's own exit (SIGABRT)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    gc.freeze()
    raise SystemExit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
