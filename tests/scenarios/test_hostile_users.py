"""Hostile and careless users: each test names the attack it repeats and asserts that nothing a user wrote is
lost or run, that resources stay bounded, and that the answer is one clear line."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import cli, tiny
from trainwell.cli import main
from trainwell.errors import TrainwellError
from trainwell.runclaim import Claim, RunLock

TINY = cli(tiny())


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


# -- the lab's results folder ---------------------------------------------------------------------------------
@pytest.fixture
def fake_lab(monkeypatch):
    """One instant lab experiment, ``steady``, whose verdict passes and that draws one figure."""
    import types
    from dataclasses import dataclass

    from matplotlib.figure import Figure

    from trainwell.lab import base, registry

    @dataclass
    class Config:
        seed: int = 0

        @classmethod
        def quick(cls):
            return cls()

    def plot(result):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [0, 1])
        return {"line": fig}

    mod = types.SimpleNamespace(NAME="steady", CLAIM="steady claim", PAPER="none",
                                EXPECTED_S={"quick": 1, "default": 1}, Config=Config,
                                run=lambda cfg, workdir=None: {"seed": cfg.seed}, plot=plot,
                                verdict=lambda r: base.make_verdict("steady claim", True, {"x": 1}, "t"))
    monkeypatch.setattr(registry, "experiments", lambda: {"steady": mod})
    monkeypatch.setattr(registry, "names", lambda: ["steady"])
    return mod


def _lab(out, *extra):
    return main(["lab", "run", "steady", "--quick", "--out", str(out), *extra])


@pytest.mark.parametrize("out", [".", "site"])
def test_lab_never_writes_into_a_folder_that_is_not_a_lab_folder(workdir, capsys, fake_lab, out):
    """Attack: lab run --out . in a project, or --out a user's web folder with its own index.html/index.json."""
    (workdir / "site").mkdir()
    (workdir / "site" / "index.html").write_text("<h1>my site</h1>")
    (workdir / "site" / "index.json").write_text("{}")
    before = _tree(workdir)
    assert _lab(out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a trainwell lab folder" in err
    assert _tree(workdir) == before


def test_lab_out_a_file_is_one_line(workdir, capsys, fake_lab):
    """Attack: lab run --out FILE (used to end in the errno text "File exists")."""
    (workdir / "results").write_text("keep")
    assert _lab("results") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results is a file, not a folder" in err
    assert (workdir / "results").read_text() == "keep"


def test_lab_reruns_into_its_own_folder_and_keeps_a_users_files(workdir, capsys, fake_lab):
    """Attack: re-run the lab into its folder after adding notes: only the lab's own results are rewritten."""
    assert _lab("lab") == 0
    (workdir / "lab" / "notes.md").write_text("mine")
    (workdir / "lab" / "steady" / "my-plot.png").write_bytes(b"mine")
    assert _lab("lab") == 0
    assert (workdir / "lab" / "notes.md").read_text() == "mine"
    assert (workdir / "lab" / "steady" / "my-plot.png").read_bytes() == b"mine"
    assert json.loads((workdir / "lab" / "index.json").read_text())[0]["name"] == "steady"


def test_a_lab_folder_from_before_markers_is_adopted(workdir, capsys, fake_lab):
    """A results folder an earlier trainwell wrote (index.json, experiment folders, no marker) is still a lab's."""
    assert _lab("lab") == 0
    for own in (".trainwell-run", ".trainwell-files", ".lock"):
        (workdir / "lab" / own).unlink()
    assert _lab("lab") == 0
    assert (workdir / "lab" / ".trainwell-run").is_file()


def test_two_lab_runs_into_one_folder_the_second_is_refused(workdir, capsys, fake_lab):
    """Attack: two lab runs into one folder at once (the index used to lose one of them silently)."""
    assert _lab("lab") == 0
    first = Claim.reuse("lab", "lab")  # a lab run in progress in another process holds the same lock
    try:
        capsys.readouterr()
        assert _lab("lab") == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use by another trainwell process" in err
    finally:
        first.release()
    assert _lab("lab") == 0


HOSTILE = '<img src=x onerror=alert(1)>'


def _hostile_summary(lab, **fields):
    path = lab / "steady" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(fields)
    path.write_text(json.dumps(summary))


@pytest.mark.parametrize("fields", [
    {"verdict": {"claim": "c", "status": HOSTILE, "evidence": {}, "threshold": ""}},
    {"size": HOSTILE},
    {"name": HOSTILE},
    {"figures": ["../../secret.txt"]},
    {"figures": ["figures/../../../secret.png"]},
    {"wall_s": "1 s"},
    {"per_seed": [{"seed": 0, "verdict": {"status": HOSTILE}, "wall_s": 1.0}]},
])
def test_lab_resume_never_reuses_a_hostile_summary(workdir, capsys, fake_lab, fields):
    """Attack: lab run --resume on a lab folder whose summary.json carries script, a foreign figure path or a
    wrong type: the experiment runs again, and nothing of it reaches the page."""
    (workdir / "secret.txt").write_text("TOP SECRET")
    (workdir / "secret.png").write_text("TOP SECRET")
    assert _lab("lab") == 0
    _hostile_summary(workdir / "lab", **fields)
    capsys.readouterr()
    assert _lab("lab", "--resume") == 0
    assert "not reused" in capsys.readouterr().out
    import base64
    pages = [(workdir / "lab" / "index.html").read_text(), (workdir / "lab" / "steady" / "report.html").read_text()]
    for page in pages:
        assert "onerror" not in page and "TOP SECRET" not in page
        assert base64.b64encode(b"TOP SECRET").decode() not in page
    assert json.loads((workdir / "lab" / "steady" / "summary.json").read_text())["verdict"]["status"] == "pass"


def test_the_lab_index_escapes_every_value(workdir, fake_lab):
    """Attack: script in a claim, paper, threshold, per-seed status or evidence reaches the index page."""
    from trainwell.lab.runner import write_index

    (workdir / "lab").mkdir()
    s = {"name": HOSTILE, "claim": HOSTILE, "paper": HOSTILE, "size": HOSTILE, "seeds": [0], "wall_s": 1.0,
         "figures": [], "verdict": {"claim": HOSTILE, "status": HOSTILE, "evidence": {HOSTILE: HOSTILE},
                                    "threshold": HOSTILE},
         "per_seed": [{"seed": HOSTILE, "verdict": {"status": HOSTILE}, "wall_s": HOSTILE}]}
    page = write_index([s], workdir / "lab").read_text()
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


# -- report pages ---------------------------------------------------------------------------------------------
def _append_metric(run, **fields):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    last.update(fields)
    lines[-1] = json.dumps(last)
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


@pytest.mark.slow  # 0.3-1.2 s each
def test_json_in_a_report_script_cannot_end_or_escape_the_element(workdir, capsys):
    """Attack: a metric key holding '<!--<script>' (or '</script>') put the HTML parser in script-data-escaped
    state and the rest of the page disappeared."""
    from trainwell.viz.page import json_for_script

    assert _fit("run") == 0
    evil = "<!--<script></script>&"
    _append_metric(workdir / "run", **{evil: 1.0})
    assert main(["report", "run"]) == 0
    page = (workdir / "run" / "report.html").read_text()
    data = page.split('<script type="application/json" id="trainwell-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data and "&" not in data
    labels = [s["label"] for line in json.loads(data)["lines"] for s in line["series"]]
    assert any(evil in label for label in labels)  # the value itself is intact
    assert json.loads(json_for_script({"k": evil})) == {"k": evil}


@pytest.mark.parametrize("field, value", [("epoch", "3"), ("epoch", -1), ("step", 1.5), ("train_loss", "low"),
                                          ("val_acc", [0.5])])
def test_report_of_a_run_with_a_wrong_field_is_one_line(workdir, capsys, field, value):
    """Attack: trainwell report DIR with a metrics.jsonl whose epoch is a string (a TypeError traceback from the
    plots) and the like: one line naming the file, the field and what is allowed, exit 2."""
    assert _fit("run") == 0
    _append_metric(workdir / "run", **{field: value})
    capsys.readouterr()
    assert main(["report", "run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics.jsonl" in err and repr(field) in err
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("name, body", [("summary.json", {"best_epoch": "two"}), ("model.json", [{"name": "x"}]),
                                        ("preflight.json", {"not": "a list"})])
def test_report_validates_every_file_it_reads(workdir, capsys, name, body):
    """Attack: summary.json, model.json or preflight.json with fields of the wrong type."""
    assert _fit("run", "--set", "report.enabled=true") == 0
    path = workdir / "run" / name
    if name == "summary.json":
        body = {**json.loads(path.read_text()), **body}
    path.write_text(json.dumps(body))
    capsys.readouterr()
    assert main(["report", "run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err


# -- resources ------------------------------------------------------------------------------------------------
@pytest.mark.slow  # 0.30 s each on a 2-core CPU (RESULTS §51)
def test_a_gzip_bomb_idx_is_refused_from_its_header_without_inflating_it(workdir):
    """Attack: a small .gz IDX file that inflates to gigabytes (it used to be read whole, then size-checked)."""
    import gzip
    import tracemalloc

    from trainwell.data.files import MAX_IDX_BYTES, read_idx
    from trainwell.errors import DataError

    header = bytes([0, 0, 0x08, 3]) + (60_000).to_bytes(4, "big") + (200).to_bytes(4, "big") * 2  # 2.4 GB declared
    assert 60_000 * 200 * 200 > MAX_IDX_BYTES
    with gzip.open(workdir / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header)
        for _ in range(64):
            f.write(bytes(1 << 20))  # 64 MB of zeros: a few kB on disk
    tracemalloc.start()
    with pytest.raises(DataError, match="declares dims .* over trainwell's limit"):
        read_idx(workdir / "train-images-idx3-ubyte.gz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20  # nothing was inflated beyond the header


def test_a_gzip_idx_is_streamed_and_checked_against_its_header(workdir):
    """A .gz IDX file with more data than its header declares is refused after reading only what it declares."""
    import gzip

    from trainwell.data.files import read_idx
    from trainwell.errors import DataError

    header = bytes([0, 0, 0x08, 1]) + (4).to_bytes(4, "big")
    (workdir / "ok.gz").write_bytes(gzip.compress(header + bytes([1, 2, 3, 4])))
    assert read_idx(workdir / "ok.gz").tolist() == [1, 2, 3, 4]
    (workdir / "long.gz").write_bytes(gzip.compress(header + bytes(10 << 20)))
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(workdir / "long.gz")


def test_a_huge_sweep_grid_is_counted_and_refused_before_building_configs(workdir, capsys, monkeypatch):
    """Attack: sweep --grid with 10^6 combinations (every config used to be built before any size check)."""
    import trainwell.sweep as sweep_mod
    from trainwell.sweep import MAX_MEMBERS

    built = []
    monkeypatch.setattr(sweep_mod, "config_from_dict", lambda raw: built.append(1))
    values = ",".join(str(v) for v in range(10))
    grid = [a for k in ("train.seed", "train.epochs", "train.batch_size", "optim.lr", "optim.weight_decay",
                        "optim.momentum") for a in ("--grid", f"{k}={values}")]
    assert main(["sweep", *TINY, *grid, "--out", "s"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1,000,000 members" in err and f"{MAX_MEMBERS:,}" in err
    assert built == [] and not (workdir / "s").exists()
    assert main(["sweep", *TINY, "--grid", "optim.lr=0.1,0.01", "--seeds", str(MAX_MEMBERS), "--out", "s"]) == 2
    assert f"{2 * MAX_MEMBERS:,} members" in capsys.readouterr().err


# -- silent wrong results -------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_a_run_interrupted_in_its_last_epoch_and_resumed_is_not_reported_interrupted(workdir, capsys):
    """Attack: SIGINT during the last epoch, then --resume: summary.json, last.pt and the report used to keep
    stop_reason "interrupted by SIGINT" although the run had completed."""
    from trainwell.config import load_config
    from trainwell.pipeline import fit
    from trainwell.rundir import load_checkpoint
    from trainwell.train.callbacks import Callback
    from trainwell.train.interrupt import Interrupted

    class SignalInLastEpoch(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = load_config(None, [a for a in TINY if a != "--set"] + ["report.enabled=true"])
    with pytest.raises(Interrupted):
        fit(cfg, out="run", quiet=True, callbacks=[SignalInLastEpoch()])
    assert load_checkpoint(workdir / "run" / "checkpoints" / "last.pt")["stop"] == "interrupted by SIGINT"
    assert main(["fit", "--resume", "run", "--quiet", "--json"]) == 0
    summary = json.loads((workdir / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "completed 2 epochs" and summary["epochs"] == 2
    assert load_checkpoint(workdir / "run" / "checkpoints" / "last.pt")["stop"] is None
    assert "interrupted" not in (workdir / "run" / "report.html").read_text().split("id='run-state'>")[1][:200]
    assert main(["fit", "--resume", "run", "--quiet"]) == 0  # resuming the completed run changes nothing
    assert json.loads((workdir / "run" / "summary.json").read_text())["stop_reason"] == "completed 2 epochs"


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="needs POSIX signals")
@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_a_signal_while_a_finished_run_is_written_leaves_it_whole(workdir, capsys, monkeypatch):
    """Attack: Ctrl-C just after the last epoch, while summary.json, the report and report-live.js are written:
    the command ended with a bare 'interrupted', the page's live file still saying the run was running. The
    files are written whole and the run reads as completed."""
    import trainwell.pipeline  # noqa: F401  (loads the module trainwell.pipeline.fit)

    fit_module = sys.modules["trainwell.pipeline.fit"]  # (the package's name fit is the function)
    real = fit_module.write_run

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "write_run", signalled)
    assert main(["fit", *TINY, "--out", "run", "--set", "report.enabled=true"]) == 0
    err = capsys.readouterr().err
    assert "SIGINT received: the run has finished training: writing its files" in err
    summary = json.loads((workdir / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "completed 2 epochs"
    live = (workdir / "run" / "report-live.js").read_text()
    assert json.loads(live[live.index("{"): live.rindex("}") + 1])["running"] is False


# -- one clear line -------------------------------------------------------------------------------------------
class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


@pytest.mark.parametrize("content", ["code", "garbage", "empty"])
def test_a_hostile_or_damaged_checkpoint_is_refused_without_torchs_advice(workdir, capsys, content):
    """Attack: --resume a run whose last.pt would run code when unpickled (or is garbage): refused in one line,
    without torch's advice to set weights_only=False "if you trust the source"."""
    import torch

    assert _fit("run") == 0
    last = workdir / "run" / "checkpoints" / "last.pt"
    if content == "code":
        torch.save({"model": _RunsCode()}, last)
    else:
        last.write_bytes(b"\x80\x04not a pickle" if content == "garbage" else b"")
    capsys.readouterr()
    assert main(["fit", "--resume", "run", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not a trainwell checkpoint (it would run code, or it is damaged)" in err
    assert "weights_only" not in err and "trust" not in err
    assert not (workdir / "pwned.txt").exists()


def test_an_output_path_in_a_missing_folder_is_one_line_and_creates_nothing(workdir, capsys):
    """Attack: filters --out /nonexistent/dir/x.png used to create the folders from the root down."""
    missing = workdir / "no" / "such" / "dir"
    for cmd in (["filters", "--out", str(missing / "x.png")], ["lr-find", *TINY, "--out", str(missing / "l.png")]):
        capsys.readouterr()
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "does not exist" in err and str(missing) in err
        assert not (workdir / "no").exists()


@pytest.mark.slow
def test_an_output_file_the_user_wrote_is_never_replaced_without_force(workdir, capsys):
    """Attack: lr-find --out or filters --out on a file of the user's (it used to be overwritten silently)."""
    for name, cmd in (("plot.png", ["lr-find", *TINY, "--steps", "20"]), ("f.png", ["filters"]),
                      ("f.pdf", ["filters"])):
        mine = workdir / name
        mine.write_text("precious")
        capsys.readouterr()
        assert main([*cmd, "--out", str(mine)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(mine) in err and "--force" in err
        assert mine.read_text() == "precious"
        assert main([*cmd, "--out", str(mine), "--force"]) == 0
        assert mine.read_bytes() != b"precious"
        assert main([*cmd, "--out", str(mine)]) == 0  # trainwell's own figure is replaced without --force
    os.symlink(workdir / "plot.png", workdir / "link.png")  # a link is never taken for trainwell's file
    assert main(["filters", "--out", str(workdir / "link.png")]) == 2


def test_out_a_dangling_symlink_is_one_line(workdir, capsys):
    """Attack: --out LINK where LINK points nowhere (or to a file)."""
    os.symlink("nowhere", workdir / "link")
    assert _fit("link") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "symbolic link" in err and not (workdir / "nowhere").exists()


@pytest.mark.parametrize("mode", [[], ["--sequential"]])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_sweep_force_replaces_its_own_sweep_and_keeps_a_users_file(workdir, capsys, mode):
    """--force on an earlier sweep (population members, or sequential members with their own markers) replaces
    it; a file the user added in a member's folder makes it refuse, naming the file."""
    args = ["sweep", *TINY, "--grid", "optim.lr=0.01,0.1", "--out", "s", "--json", *mode]
    assert main(args) == 0
    assert main([*args, "--force"]) == 0
    (workdir / "s" / "member-1" / "mine.txt").write_text("mine")
    capsys.readouterr()
    assert main([*args, "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "member-1/mine.txt" in err and (workdir / "s" / "member-1" / "mine.txt").read_text() == "mine"


def test_a_half_deleted_replaced_run_is_cleaned_up_only_if_it_is_all_trainwells(workdir, capsys):
    """A kill while the replaced run was being deleted leaves .RUN.discarded-PID: the next claim finishes the
    deletion if everything in it is in its manifest, and names it otherwise."""
    assert _fit("a") == 0
    assert _fit("b") == 0
    os.rename(workdir / "a", workdir / ".run.discarded-999999999")
    os.rename(workdir / "b", workdir / ".other.discarded-999999999")
    (workdir / ".other.discarded-999999999" / "mine.txt").write_text("mine")
    os.rename(workdir / ".other.discarded-999999999", workdir / ".run.discarded-999999998")
    capsys.readouterr()
    assert _fit("run") == 0
    assert not (workdir / ".run.discarded-999999999").exists()
    assert (workdir / ".run.discarded-999999998" / "mine.txt").read_text() == "mine"
    assert "not deleted" in capsys.readouterr().err
