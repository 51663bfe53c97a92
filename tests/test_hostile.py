"""Hostile and careless users: each test names the attack it repeats and asserts that nothing a user wrote is
lost or run, that resources stay bounded, and that the answer is one clear line."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from trainwell.cli import main
from trainwell.errors import TrainwellError
from trainwell.runclaim import Claim, RunLock

TINY = ["--set", "data.name=spirals", "--set", "data.options={n_per_class = 40}", "--set", "model.kind=mlp",
        "--set", "model.hidden=[8]", "--set", "train.epochs=2", "--set", "name=tiny",
        "--set", "report.enabled=false", "--set", "doctor.preflight=false"]


def _fit(out, *extra):
    return main(["fit", *TINY, "--quiet", "--out", str(out), *extra])


def _tree(folder):
    """Every file's bytes (the lock holds the pid of whoever locked it last: not content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _asides(folder):
    return sorted(p.name for p in folder.iterdir() if ".replaced-" in p.name or ".discarded-" in p.name)


# -- signals during a --force replacement -------------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from trainwell.runclaim import Claim
    from trainwell.rundir import atomic_write_text
    try:
        with Claim.take("fit", "run", force=True, name="tiny", config_hash="h") as claim:
            atomic_write_text(claim.path / "config.toml", "half a start-up")
            print("claimed", flush=True)
            time.sleep(60)
    except KeyboardInterrupt as exc:
        sys.exit(getattr(exc, "exit_code", 130))
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_during_a_force_replacement_never_loses_the_old_run(workdir, capsys, sig):
    """Attack: SIGTERM / SIGINT / SIGKILL while --force has moved the old run aside (the new one not started)."""
    assert _fit("run") == 0
    old = _tree(workdir / "run")
    proc = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, cwd=workdir)
    assert proc.stdout.readline().strip() == "claimed"
    assert _asides(workdir)  # the old run is aside while the replacement starts
    proc.send_signal(getattr(signal, sig))
    code = proc.wait(timeout=30)
    if sig != "SIGKILL":  # handled: rolled back at once, exit 128 + signal number
        assert code == {"SIGTERM": 143, "SIGINT": 130}[sig]
        assert _tree(workdir / "run") == old and not _asides(workdir)
        return
    assert _asides(workdir)  # SIGKILL runs no code: the next claim of the folder puts the old run back
    capsys.readouterr()
    assert _fit("run") == 2  # no --force: the (restored) run is not empty
    err = capsys.readouterr().err
    assert "put back" in err and "already exists and is not empty" in err
    assert _tree(workdir / "run") == old and not _asides(workdir)


def test_sigint_at_the_moment_of_the_rename_puts_the_old_run_back(workdir, monkeypatch):
    """Attack: SIGINT delivered just after the old run is renamed aside, before the new folder exists."""
    assert _fit("run") == 0
    old = _tree(workdir / "run")
    rename = os.rename

    def rename_then_sigint(src, dst, *args, **kwargs):
        rename(src, dst, *args, **kwargs)
        if ".replaced-" in str(dst):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "rename", rename_then_sigint)
    with pytest.raises(KeyboardInterrupt):
        Claim.take("fit", "run", force=True, name="tiny", config_hash="h")
    monkeypatch.setattr(os, "rename", rename)
    assert _tree(workdir / "run") == old and not _asides(workdir)
    Claim.take("fit", "run", force=True, name="tiny", config_hash="h").release()  # no lock left behind


def test_a_leftover_aside_next_to_a_started_run_is_named_in_one_line(workdir, capsys):
    """Attack: a .RUN.replaced-PID from a killed process beside a run that has since been used: never silent."""
    assert _fit("run") == 0
    (workdir / ".run.replaced-999999999").mkdir()
    (workdir / ".run.replaced-999999999" / "old.txt").write_text("old")
    capsys.readouterr()
    assert _fit("run", "--force") == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if ".run.replaced-999999999" in line]
    assert len(notes) == 1 and "rename it back" in notes[0]
    assert (workdir / ".run.replaced-999999999" / "old.txt").read_text() == "old"


# -- links ----------------------------------------------------------------------------------------------------
def test_the_run_lock_never_follows_a_symlink(workdir, capsys):
    """Attack: RUN/.lock is a symbolic link to a user's file (locking used to truncate it and write a pid)."""
    assert _fit("run") == 0
    (workdir / "precious.txt").write_text("do not truncate")
    os.remove(workdir / "run" / ".lock")
    os.symlink(workdir / "precious.txt", workdir / "run" / ".lock")
    capsys.readouterr()
    assert main(["fit", "--resume", "run", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "symbolic link" in err
    assert (workdir / "precious.txt").read_text() == "do not truncate"


@pytest.mark.parametrize("kind", ["hardlink", "fifo"])
def test_the_run_lock_refuses_a_file_that_is_not_its_own(workdir, kind):
    """Attack: RUN/.lock is a hard link to a user's file, or a FIFO."""
    (workdir / "run").mkdir()
    (workdir / "precious.txt").write_text("do not truncate")
    if kind == "hardlink":
        os.link(workdir / "precious.txt", workdir / "run" / ".lock")
    else:
        os.mkfifo(workdir / "run" / ".lock")
    with pytest.raises(TrainwellError, match="not trainwell's lock file"):
        RunLock(workdir / "run").acquire()
    assert (workdir / "precious.txt").read_text() == "do not truncate"


def test_force_through_a_symlink_leaves_no_dangling_aside(workdir, capsys):
    """Attack: --out LINK --force where LINK is a symbolic link to a run."""
    assert _fit("real") == 0
    os.symlink("real", workdir / "link")
    assert _fit("link", "--force", "--set", "train.epochs=3") == 0
    assert os.path.islink(workdir / "link") and os.readlink(workdir / "link") == "real"
    assert json.loads((workdir / "link" / "summary.json").read_text())["epochs"] == 3
    assert not [p.name for p in workdir.iterdir() if p.name.startswith(".")]
