"""Mistakes that need no torch are answered before torch is imported (in well under a second), with the nearest
allowed name suggested; the static tables need no torch either."""

import os
import re
import subprocess
import sys

import pytest

FAST = [
    (["sweep", "--seeds", "0"], 2, "--seeds 0 is not allowed: use an integer >= 1"),
    (["sweep", "--grid", "optim.lr 1e-3,3e-3"], 2, "is not allowed: use key=v1,v2,..."),
    (["lr-find", "--start", "10", "--end", "1e-3"], 2, "--start 10 --end 0.001 is not allowed: use 0 < start < end"),
    (["fit", "--resume", "runs/nope"], 2, "runs/nope: does not exist; --resume needs a trainwell run directory"),
    (["fit", "--resume", "NOT_A_RUN"], 2, "NOT_A_RUN/config.toml: not found; --resume needs a trainwell run"),
    (["fit", "NOT_A_RUN"], 2, "is a folder: give a .toml file (a run folder's config.toml), or continue a run with"),
    (["fit", "--resume", "A_FILE"], 2, "A_FILE: is a file, not a folder; --resume needs a trainwell run directory"),
    (["fit", "--resume", "A_SWEEP"], 2, "A_SWEEP: a sweep folder, not a fit run: continue it with `trainwell sweep "
                                        "--resume A_SWEEP`"),
    (["report", "NOT_A_RUN"], 2, "holds no trainwell run"),
    (["report", "A_LAB"], 2, "A_LAB: a lab folder, whose pages trainwell lab run writes and updates: open A_LAB/index"),
    (["fit", "--set", "data.name=mnist1"], 2, "unknown dataset 'mnist1': did you mean 'mnist1d'? allowed are"),
    (["fit", "--set", "stop.patiense=3"], 2, "did you mean 'stop.patience'? allowed keys in stop are criteria"),
    (["fit", "--set", "optim.name=adamw"], 2, "AdamW is optim.name = 'adam' with optim.decay = 'decoupled'"),
    (["doctor", "--set", "model.kind=cnnn"], 2, "did you mean 'cnn'?"),
    (["watch"], 2, "trainwell watch: error: the following arguments are required: SCRIPT.py (see --help)"),
    (["watch", "--model", "", "A_FILE"], 2, "--model: '' is not allowed: use the name of a variable of the script"),
    (["watch", "--model", "trainer..model", "A_FILE"], 2, "'trainer..model' is not allowed: use the name of a"),
    (["fit", "--epochs", "3"], 2, "trainwell fit: error: unrecognized arguments: --epochs: a config setting is given "
                                  "with --set, --set train.epochs=VALUE (see --help)"),
    (["doctor", "--lr=0.1"], 2, "trainwell doctor: error: unrecognized arguments: --lr=0.1: a config setting is given "
                                "with --set, --set optim.lr=0.1 (see --help)"),
    (["lab", "list", "--bogus"], 2, "trainwell lab list: error: unrecognized arguments: --bogus (see --help)"),
    (["datasets"], 0, None),
]


@pytest.mark.parametrize(("args", "code", "message"), FAST, ids=[" ".join(a) for a, _, _ in FAST])
def test_a_one_line_mistake_is_answered_before_torch_is_imported(tmp_path, args, code, message):
    (tmp_path / "NOT_A_RUN").mkdir()
    (tmp_path / "A_LAB").mkdir()
    (tmp_path / "A_LAB" / ".trainwell-run").write_text('{"kind": "lab"}')
    (tmp_path / "A_FILE").write_text("not a run")
    (tmp_path / "A_SWEEP").mkdir()
    (tmp_path / "A_SWEEP" / "sweep.json").write_text("{}")
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "trainwell", *args], cwd=tmp_path,
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    imported = re.findall(r"\|\s+(\S+)$", run.stderr, re.M)
    assert "torch" not in imported, f"torch was imported: {' <- '.join(imported[imported.index('torch'):][:4])}"
    assert run.returncode == code
    lines = [ln for ln in run.stderr.splitlines() if not ln.startswith("import time:")]
    if message is None:
        assert lines == [] and "mnist1d" in run.stdout
    else:
        assert len(lines) == 1 and message in lines[0]


def test_the_nearest_name_is_offered_in_the_library_too():
    from trainwell.config import load_config
    from trainwell.data.registry import spec_of
    from trainwell.errors import ConfigError, DataError

    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        spec_of("fashion_mnist")
    with pytest.raises(DataError, match="unknown dataset 'zzz': allowed are"):  # nothing close: no guess
        spec_of("zzz")
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        load_config(None, ["train.epoch=3"])


def test_a_long_list_of_allowed_names_is_never_cut():
    from trainwell.cli import _one_line
    from trainwell.config import load_config
    from trainwell.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_config(None, ["stop.zzz=3"])
    assert _one_line(exc.value) == " ".join(str(exc.value).split()) and "strict" in str(exc.value)


def test_library_errors_name_the_parameter_and_the_cli_names_its_flag(capsys):
    from trainwell.cli import main
    from trainwell.config import load_config
    from trainwell.errors import ParameterError
    from trainwell.lottery import lottery
    from trainwell.sweep import parse_grid, sweep

    cfg = load_config(None, [])
    for call, text in ((lambda: sweep(cfg, {}, seeds=0), "seeds=0 is not allowed: use an integer >= 1"),
                       (lambda: lottery(cfg, 0), "rounds=0 is not allowed: use an integer >= 1"),
                       (lambda: parse_grid(["optim.lr"]), "grid='optim.lr' is not allowed: use key=v1,v2,..."),
                       (lambda: sweep(cfg, {}, backend="dask"), "backend='dask' is not allowed: use one of local")):
        with pytest.raises(ParameterError) as exc:
            call()
        assert str(exc.value).startswith(text) and "--" not in str(exc.value)
        assert isinstance(exc.value, ValueError)  # callers that catch ValueError still do
    assert main(["sweep", "--address", "auto"]) == 2
    assert "error: --address auto names a Ray cluster: use it with the ray backend" in capsys.readouterr().err


def test_a_plain_value_error_in_a_command_is_a_bug_not_a_usage_error(monkeypatch):
    import trainwell.sweep
    from trainwell.cli import main

    def broken(*args, **kwargs):
        raise ValueError("an internal mistake")

    monkeypatch.setattr(trainwell.sweep, "parse_grid", broken)
    with pytest.raises(ValueError, match="an internal mistake"):  # a traceback and exit 1, never exit 2
        main(["sweep", "--grid", "optim.lr=0.1,0.2"])


def _commands(parser, prefix=()):
    """(command words, parser) of every command and sub-command."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield (*prefix, name), command
                yield from _commands(command, (*prefix, name))


def test_every_commands_help_says_what_it_does():
    from trainwell.cli_parser import build_parser

    commands = list(_commands(build_parser()))
    assert {" ".join(words) for words, _ in commands} >= {"fit", "filters", "datasets", "lab list", "lab run"}
    for words, command in commands:
        text = command.format_help()
        description = text.split("\n\n")[1]
        assert not description.startswith(("options:", "positional")), (words, text)


def test_the_command_line_catches_only_the_packages_own_errors():
    """A ValueError from inside the library is a bug and keeps its traceback: the command line never catches one
    (argument text is checked before it is converted, not converted and the error caught)."""
    import ast
    from pathlib import Path

    import trainwell

    src = Path(trainwell.__file__).parent
    caught = []
    for path in sorted(src.glob("cli*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler):
                names = [n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)] if node.type else ["bare"]
                caught += [(path.name, node.lineno, n) for n in names if n in ("ValueError", "Exception", "bare",
                                                                                "TypeError", "BaseException")]
    assert caught == []


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NO_EXAMPLES = {("datasets",), ("lab",)}  # a command with no argument, and the group of lab list / lab run


def _help_examples(text: str) -> list[list[str]]:
    """The example commands of a --help's "examples:" section, as argv lists (without the leading ``trainwell``)."""
    import shlex

    section = text.split("\nexamples:\n", 1)[1].split("\n\n")[0] if "\nexamples:\n" in text else ""
    commands = [shlex.split(line.split("  ", 1)[0])[1:]
                for line in (row.strip() for row in section.splitlines()) if line.startswith("trainwell ")]
    return [argv[: argv.index(">")] if ">" in argv else argv for argv in commands]  # `> out.json` is the shell's


def test_every_commands_help_has_examples_that_parse_and_name_valid_settings(monkeypatch):
    """A user copies a --help example: its flags exist, its --set/--grid keys and values are valid config, and the
    config file it names is one the project ships (no torch, no training)."""
    from trainwell.cli_parser import build_parser
    from trainwell.config import load_config

    monkeypatch.chdir(ROOT)
    parser = build_parser()
    for words, command in _commands(parser):
        examples = _help_examples(command.format_help())
        if words in NO_EXAMPLES:
            continue
        assert any(argv[: len(words)] == list(words) for argv in examples), (words, examples)
        for argv in examples:
            args = parser.parse_args(argv)  # a SystemExit here is an example that does not parse
            config = getattr(args, "config", None)
            assert config is None or os.path.isfile(config), argv
            if hasattr(args, "overrides") and not getattr(args, "resume", None):
                load_config(config, args.overrides)


def test_every_option_with_a_default_says_it_in_its_help():
    import argparse

    from trainwell.cli_parser import build_parser

    for words, command in _commands(build_parser()):
        for action in command._actions:
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)) or not action.option_strings:
                continue
            if action.default not in (None, [], argparse.SUPPRESS):
                assert "default" in (action.help or ""), (words, action.option_strings, action.help)


def test_sweep_resume_of_a_fit_run_names_the_command_that_continues_it(tmp_path, capsys, monkeypatch):
    from trainwell.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "fitrun").mkdir()
    (tmp_path / "fitrun" / ".trainwell-run").write_text('{"kind": "fit"}')
    (tmp_path / "fitrun" / "config.toml").write_text("")
    assert main(["sweep", "--resume", "fitrun"]) == 2
    assert capsys.readouterr().err == ("trainwell sweep: error: fitrun: a trainwell fit run, not a sweep folder: "
                                       "continue it with `trainwell fit --resume fitrun`; sweep --resume needs the "
                                       "folder trainwell sweep wrote\n")
    assert main(["sweep", "--resume", "gone"]) == 2
    assert "gone: does not exist; sweep --resume needs the folder trainwell sweep wrote" in capsys.readouterr().err
