"""Nothing is lost on a crash: SIGKILL mid-run then --resume equals an uninterrupted run; a full disk keeps the
previous checkpoint."""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from trainwell.config import load_config
from trainwell.pipeline import fit
from trainwell.rundir import atomic_torch_save, load_checkpoint, read_jsonl
from trainwell.train import Callback

ARGS = ["--set", "train.epochs=14", "--set", "train.checkpoint_every=1", "--set", "report.enabled=false",
        "--set", "model.blocks=[{type='conv', channels=32, kernel=4, stride=2, padding=1}, "
                 "{type='conv', channels=32, kernel=4, stride=2, padding=1}]", "--quiet"]


def trainwell(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "trainwell", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kwargs)


def strip_time(records):
    return [{k: v for k, v in r.items() if k != "time"} for r in records]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(workdir):
    victim = trainwell("fit", "--out", "victim", *ARGS)
    metrics = workdir / "victim" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        if metrics.exists() and len(read_jsonl(metrics)) >= 4:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the run ended before it could be killed; make it longer"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = len(read_jsonl(metrics))
    assert 4 <= killed_at < 14
    reference = trainwell("fit", "--out", "ref", *ARGS)
    assert reference.wait(timeout=120) == 0
    resumed = trainwell("fit", "--resume", "victim", "--quiet")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read().decode()
    assert strip_time(read_jsonl(metrics)) == strip_time(read_jsonl(workdir / "ref" / "metrics.jsonl"))
    a = load_checkpoint(workdir / "ref" / "checkpoints" / "last.pt")
    b = load_checkpoint(workdir / "victim" / "checkpoints" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
    assert not list((workdir / "victim" / "checkpoints").glob("*.tmp"))


def test_full_disk_while_saving_keeps_the_previous_checkpoint(workdir, monkeypatch):
    path = workdir / "last.pt"
    atomic_torch_save(path, {"w": torch.ones(3)})
    real_fsync = os.fsync

    def no_space(fd):  # the data does not fit on the disk: flushing it fails
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        atomic_torch_save(path, {"w": torch.zeros(3)})
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in workdir.iterdir()] == ["last.pt"]  # no temp file left behind


@pytest.mark.slow  # seconds each
def test_full_disk_during_fit_is_one_line_and_the_last_checkpoint_survives(workdir, capsys, monkeypatch):
    from trainwell import rundir
    from trainwell.cli import main

    saves = {"n": 0}
    real = rundir.atomic_write_bytes

    def flaky(path, data):
        if str(path).endswith("last.pt"):
            saves["n"] += 1
            if saves["n"] == 4:  # the first save is the initial state
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(rundir, "atomic_write_bytes", flaky)
    code = main(["fit", "--out", "run", *ARGS[:-1], "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "No space left on device" in err and len(err.splitlines()) == 1
    assert load_checkpoint(workdir / "run" / "checkpoints" / "last.pt")["epoch"] == 1  # the second save


class _Poison(Callback):
    """Corrupt one weight at the start of an epoch, as an overflow would."""

    def on_epoch_start(self, state):
        if state.epoch == 3:
            with torch.no_grad():
                next(state.model.parameters()).view(-1)[0] = float("nan")


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_non_finite_loss_keeps_the_last_good_checkpoint(workdir):
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.hidden=[8]", "train.epochs=30",
                             "train.checkpoint_every=1", "report.enabled=false"])
    res = fit(cfg, out="nan", quiet=True, callbacks=[_Poison()])
    assert res.summary["failed"] and res.summary["stop_reason"] == "non-finite loss (nan) at epoch 4"  # 4th
    assert res.summary["epochs"] == 4
    last = load_checkpoint(res.run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2  # the failing epoch was not saved
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_a_full_disk_names_the_file(workdir, capsys, monkeypatch):
    from trainwell.cli import main

    def no_space(fd):  # flushing fails without a file name, as the OS reports it
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    code = main(["fit", "--out", "run", *ARGS[:-1], "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "No space left on device" in err and "error: run/" in err  # the file that could not be written


def test_a_jsonl_line_is_the_strict_json_of_its_record_whatever_it_holds(tmp_path):
    """``append_jsonl`` writes what ``json.dumps`` of the converted record gives (non-finite floats as null or
    "inf", tensors as lists), for plain records and for those the fast encoder refuses."""
    import json
    import math

    import torch

    from trainwell.rundir import _jsonable, append_jsonl

    records = [{"epoch": 0, "loss": 0.5, "hist": {"counts": [1.0, 2.0], "lo": -1.0}, "pair": (1, 2)},
               {"epoch": 1, "loss": math.nan, "acc": math.inf, "low": -math.inf},
               {"epoch": 2, "t": torch.tensor([1.5, math.nan]), "nested": [{"x": torch.tensor(3.0)}]}]
    path = tmp_path / "m.jsonl"
    for r in records:
        append_jsonl(path, r)
    lines = path.read_text().splitlines()
    assert lines == [json.dumps(_jsonable(r), allow_nan=False) for r in records]
    assert json.loads(lines[1]) == {"epoch": 1, "loss": None, "acc": "inf", "low": "-inf"}
    assert json.loads(lines[2])["t"] == [1.5, None]


def test_a_metrics_line_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    """``append_jsonl`` writes with ``os.write``, which reports a full disk without a file name: the error says
    which file, and nothing half-written is left open."""
    from trainwell.rundir import append_jsonl

    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, {"epoch": 0})
    closed = []
    real_close = os.close

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", no_space)
    monkeypatch.setattr(os, "close", lambda fd: (closed.append(fd), real_close(fd)))
    with pytest.raises(OSError) as info:
        append_jsonl(path, {"epoch": 1})
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert len(closed) == 1
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == '{"epoch": 0}\n'
