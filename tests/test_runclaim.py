"""Nothing a user saved is lost: --force only replaces trainwell runs of its own kind, after validation; run
directories are locked; automatic names are reserved atomically; guards and signals leave a good checkpoint."""

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import cli, tiny
from trainwell.cli import main
from trainwell.config import load_config
from trainwell.errors import TrainwellError
from trainwell.pipeline import fit
from trainwell.runclaim import Claim, RunLock, run_kind
from trainwell.rundir import load_checkpoint, read_jsonl

TINY = cli(tiny())


def _tiny_cfg(*extra):
    return load_config(None, [a for a in TINY if a != "--set"] + list(extra))


def _project(folder):
    """A user's folder with work in it."""
    folder.mkdir(exist_ok=True)
    (folder / "notes.txt").write_text("precious")
    (folder / "src").mkdir()
    (folder / "src" / "model.py").write_text("import torch\n")
    return folder


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- --force --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("out", [".", "proj", "proj/src"])
def test_force_never_deletes_a_folder_that_is_not_a_trainwell_run(workdir, capsys, out):
    proj = _project(workdir / "proj")
    before = _files(workdir)
    assert main(["fit", *TINY, "--quiet", "--out", out, "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force refused" in err
    assert _files(workdir) == before and (proj / "notes.txt").read_text() == "precious"


def test_force_on_a_file_is_refused(workdir, capsys):
    (workdir / "f").write_text("keep")
    assert main(["fit", *TINY, "--quiet", "--out", "f", "--force"]) == 2
    assert (workdir / "f").read_text() == "keep"


def test_force_with_a_bad_config_keeps_the_old_run(workdir, capsys):
    assert main(["fit", *TINY, "--quiet", "--out", "run"]) == 0
    before = (workdir / "run" / "summary.json").read_text()
    code = main(["fit", *TINY, "--quiet", "--out", "run", "--force", "--set", "data.name=mnist",
                 "--set", "data.root=/nonexistent-folder"])
    assert code == 2
    assert (workdir / "run" / "summary.json").read_text() == before
    assert not list(workdir.glob(".run.replaced-*"))


@pytest.mark.slow
def test_force_replaces_an_earlier_fit_run_and_leaves_nothing_aside(workdir, capsys):
    assert main(["fit", *TINY, "--quiet", "--out", "run", "--set", "report.enabled=true"]) == 0
    assert main(["report", "run"]) == 0  # a rebuilt report is trainwell's file too
    assert main(["fit", *TINY, "--quiet", "--out", "run", "--force", "--set", "train.epochs=3"]) == 0
    assert json.loads((workdir / "run" / "summary.json").read_text())["epochs"] == 3
    assert not (workdir / "run" / "report.html").exists()  # the old run's files went with it
    assert not [p for p in workdir.iterdir() if p.name.startswith(".")]


def test_force_never_deletes_files_a_user_added_to_a_run(workdir, capsys):
    """Attack: fit into RUN, add notes, an analysis script and a hand-made checkpoint, then fit --force."""
    assert main(["fit", *TINY, "--quiet", "--out", "run"]) == 0
    capsys.readouterr()
    added = {"notes.md": "my notes", "analysis/plot.py": "print(1)", "checkpoints/finetuned-by-hand.pt": "weights"}
    for rel, text in added.items():
        (workdir / "run" / rel).parent.mkdir(exist_ok=True)
        (workdir / "run" / rel).write_text(text)
    before = _files(workdir)
    assert main(["fit", *TINY, "--quiet", "--out", "run", "--force", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force refused" in err and "3 files trainwell did not write" in err
    for rel, text in added.items():
        assert rel in err and (workdir / "run" / rel).read_text() == text
    assert _files(workdir) == before
    for rel in added:  # moved out by the user: now --force may replace the run
        (workdir / "run" / rel).unlink()
    (workdir / "run" / "analysis").rmdir()
    assert main(["fit", *TINY, "--quiet", "--out", "run", "--force", "--set", "train.epochs=3"]) == 0


def test_force_refuses_a_marked_run_without_a_manifest(workdir, capsys):
    """Attack: a folder with a forged (or pre-manifest) marker and no record of what trainwell wrote."""
    (workdir / "run").mkdir()
    (workdir / "run" / ".trainwell-run").write_text('{"kind": "fit"}')
    (workdir / "run" / "thesis.tex").write_text("years of work")
    assert main(["fit", *TINY, "--quiet", "--out", "run", "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no record of the files trainwell wrote" in err
    assert (workdir / "run" / "thesis.tex").read_text() == "years of work"


def test_failure_before_the_run_starts_puts_the_old_run_back(workdir):
    fit(_tiny_cfg(), out="run", quiet=True)
    before = _files(workdir / "run")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), Claim.take("fit", "run", force=True, name="tiny", config_hash="x") as claim:
        assert (workdir / "run").exists() and not (workdir / "run" / "summary.json").exists()
        assert list(workdir.glob(".run.replaced-*"))  # moved aside, not deleted
        del claim
        raise Boom
    assert _files(workdir / "run") == before
    assert not list(workdir.glob(".run.replaced-*"))


@pytest.mark.parametrize("kind, other", [("fit", "sweep"), ("sweep", "fit"), ("lottery", "fit"), ("fit", "lottery")])
def test_force_only_replaces_a_run_of_its_own_kind(workdir, kind, other):
    with Claim.take(other, "d", name="n", config_hash="h") as c:
        c.started()
        (workdir / "d" / "config.toml").write_text("x = 1\n")
    assert run_kind(workdir / "d") == other
    named = {"lottery": "prune"}  # a lottery folder is named by the command that writes it
    with pytest.raises(TrainwellError, match=f"is a trainwell {named.get(other, other)} run; --force only replaces a "
                                             f"trainwell {named.get(kind, kind)} run"):
        Claim.take(kind, "d", force=True, name="n", config_hash="h")
    assert (workdir / "d" / "config.toml").exists()


def test_sweep_out_onto_a_fit_run_is_refused(workdir, capsys):
    assert main(["fit", *TINY, "--quiet", "--out", "run"]) == 0
    summary = (workdir / "run" / "summary.json").read_text()
    for extra in ([], ["--force"]):
        assert main(["sweep", *TINY, "--grid", "train.seed=0,1", "--out", "run", *extra]) == 2
        assert (workdir / "run" / "summary.json").read_text() == summary


@pytest.mark.slow  # over 2 s: a subprocess or a whole fit
def test_sweep_and_prune_never_overwrite_their_earlier_results(workdir, capsys):
    for _ in range(2):
        assert main(["sweep", *TINY, "--grid", "optim.lr=0.01,0.1", "--json"]) == 0
    sweeps = sorted(p.name for p in (workdir / "runs").iterdir())
    assert len(sweeps) == 2 and sweeps[1] == sweeps[0] + "-2"
    for _ in range(2):
        assert main(["prune", *TINY, "--rounds", "1"]) == 0
    lotteries = sorted(p.name for p in (workdir / "runs").iterdir() if "lottery" in p.name)
    assert len(lotteries) == 2 and lotteries[1] == lotteries[0] + "-2"
    assert main(["prune", *TINY, "--rounds", "1", "--out", f"runs/{lotteries[0]}"]) == 2
    assert main(["prune", *TINY, "--rounds", "1", "--out", f"runs/{lotteries[0]}", "--force"]) == 0


# -- locks and names ------------------------------------------------------------------------------------------
def test_a_locked_run_directory_is_refused_with_one_line(workdir, capsys):
    fit(_tiny_cfg(), out="run", quiet=True)
    lock = RunLock(workdir / "run").acquire()  # another process writing it (flock: per open file)
    try:
        for args in (["--out", "run", "--force"], ["--resume", "run"]):
            code = main(["fit", *(TINY if args[0] == "--out" else []), "--quiet", *args])
            err = capsys.readouterr().err.strip()
            assert code == 2 and "in use by another trainwell process" in err and len(err.splitlines()) == 1
    finally:
        lock.release()
    assert main(["fit", "--resume", "run", "--quiet"]) == 0  # released: usable again


def test_the_lock_is_released_when_the_holder_dies(workdir):
    (workdir / "run").mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from trainwell.runclaim import RunLock; "
                               "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
                               str(workdir / "run")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(TrainwellError, match=f"pid {holder.pid}"):
        RunLock(workdir / "run").acquire()
    holder.kill()
    holder.wait()
    RunLock(workdir / "run").acquire().release()


def test_automatic_names_are_reserved_atomically(workdir):
    claims = [Claim.take("fit", None, name="tiny", config_hash="abc") for _ in range(3)]
    assert [c.path.name for c in claims] == ["tiny-abc", "tiny-abc-2", "tiny-abc-3"]
    for c in claims:
        c.release()


@pytest.mark.slow
def test_two_concurrent_fits_without_out_get_two_directories(workdir):
    args = [sys.executable, "-m", "trainwell", "fit", *TINY, "--quiet"]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    runs = sorted((workdir / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [0, 1]


def test_run_files_follow_the_umask(workdir):
    old = os.umask(0o022)
    try:
        res = fit(_tiny_cfg(), out="run", quiet=True)
    finally:
        os.umask(old)
    for rel in ("config.toml", "summary.json", "checkpoints/last.pt"):
        assert stat.S_IMODE((res.run_dir / rel).stat().st_mode) == 0o644, rel


# -- the last good state --------------------------------------------------------------------------------------
def test_a_run_that_fails_in_its_first_epoch_leaves_the_initial_checkpoint(workdir):
    cfg = _tiny_cfg("optim.lr=1e30", "optim.name=sgd", "train.epochs=3")
    res = fit(cfg, out="run", quiet=True)
    assert res.summary["failed"]
    last = load_checkpoint(res.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == -1 and last["history"] == []
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_a_diverged_run_keeps_the_last_good_weights(workdir):
    from trainwell.train import Callback

    class Blowup(Callback):  # the weights explode in epoch 4, as a too-high learning rate would do
        def on_epoch_start(self, state):
            if state.epoch == 4:
                with torch.no_grad():
                    for p in state.model.parameters():
                        p.mul_(1e4)

    cfg = _tiny_cfg("train.epochs=8", "train.checkpoint_every=1")
    res = fit(cfg, out="run", quiet=True, callbacks=[Blowup()])
    assert res.summary["failed"] and "diverg" in res.summary["stop_reason"]
    last = load_checkpoint(res.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 3
    history = read_jsonl(res.run_dir / "metrics.jsonl")
    assert max(r["train_loss"] for r in history[: last["epoch"] + 1]) < 10


# -- signals ---------------------------------------------------------------------------------------------------
LONG = ["--set", "train.epochs=14", "--set", "report.enabled=false", "--set", "doctor.preflight=false",
        "--set", "model.blocks=[{type='conv', channels=32, kernel=4, stride=2, padding=1}, "
                 "{type='conv', channels=32, kernel=4, stride=2, padding=1}]", "--quiet"]


def _strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_the_epoch_and_resume_equals_the_uninterrupted_run(workdir, sig, code):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    victim = subprocess.Popen([sys.executable, "-m", "trainwell", "fit", "--out", "victim", *LONG], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = workdir / "victim" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None and len(read_jsonl(metrics)) < 2:
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before the signal; make it longer"
    victim.send_signal(sig)
    assert victim.wait(timeout=120) == code
    err = victim.stderr.read().strip().splitlines()
    assert f"trainwell fit --resume {workdir / 'victim'}" in err[-1] or "--resume victim" in err[-1]
    done = len(read_jsonl(metrics))
    assert 2 <= done < 14
    assert load_checkpoint(workdir / "victim" / "checkpoints" / "last.pt")["epoch"] == done - 1
    assert not (workdir / "victim" / "summary.json").exists()
    assert main(["fit", "--resume", "victim", "--quiet"]) == 0
    assert main(["fit", "--out", "ref", *LONG]) == 0
    assert _strip_time(read_jsonl(metrics)) == _strip_time(read_jsonl(workdir / "ref" / "metrics.jsonl"))
    a = load_checkpoint(workdir / "ref" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(workdir / "victim" / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_grid_key_the_model_does_not_use_is_an_error(workdir, capsys):
    assert main(["sweep", *TINY, "--set", "model.kind=mlp", "--grid", "model.skip_io=false,true", "--json"]) == 0
    capsys.readouterr()
    before = sorted((workdir / "runs").iterdir())
    code = main(["sweep", "--set", "train.epochs=1", "--grid", "model.hidden=[8],[16]", "--json"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--grid model.hidden changes nothing for model.kind = 'cnn'" in err
    assert sorted((workdir / "runs").iterdir()) == before  # refused before any folder was made


def test_the_sweep_says_how_it_will_train_before_it_does(workdir, capsys):
    assert main(["sweep", *TINY, "--grid", "optim.name=sgd,rmsprop"]) == 0
    first = capsys.readouterr().err.strip().splitlines()[0]
    assert first.startswith("sweep: 2 members, trained one after another (") and "optim.name" in first


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_resuming_a_finished_sweep_from_the_command_line(workdir, capsys):
    assert main(["sweep", *TINY, "--grid", "optim.lr=0.01,0.1", "--out", "sw"]) == 0
    before = (workdir / "sw" / "results.csv").read_text()
    assert main(["sweep", "--resume", "sw"]) == 0
    assert "results: sw/results.csv" in capsys.readouterr().out
    assert (workdir / "sw" / "results.csv").read_text() == before


def test_force_never_replaces_a_folder_that_only_looks_like_a_run(workdir, capsys):
    proj = workdir / "proj"  # a user's project with a config.toml, metrics and checkpoints of its own
    (proj / "checkpoints").mkdir(parents=True)
    (proj / "config.toml").write_text("lr = 0.1\n")
    (proj / "metrics.jsonl").write_text("{}\n")
    (proj / "checkpoints" / "model.pt").write_bytes(b"weights")
    before = _files(proj)
    assert main(["fit", *TINY, "--quiet", "--out", "proj", "--force"]) == 2
    assert "no .trainwell-run marker" in capsys.readouterr().err
    assert _files(proj) == before
