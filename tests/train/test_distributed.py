"""fit under torchrun (DDP, gloo on this CPU), mixed precision, and sweeps on a local Ray instance.

The oracle for every distributed run is the same config trained in one process: 2 gloo processes with the global
batch ``train.batch_size`` must reach the same weights up to floating-point reduction order. The commands are the
ones the README's "More than one machine" section shows (a test checks that it shows them verbatim).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainwell.config import load_config
from trainwell.errors import ConfigError
from trainwell.pipeline import config_of_run, fit

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
SETTINGS = ["train.epochs=4", "train.batch_size=25", "model.hidden=[16,16]"]  # 25: uneven shards (13 + 12)
SETS = " ".join(f"--set '{s}'" for s in SETTINGS)
TORCHRUN_FIT = f"torchrun --nproc_per_node=2 -m trainwell fit configs/spirals-mlp.toml {SETS} --out runs/ddp --quiet"
TORCHRUN_RESUME = "torchrun --nproc_per_node=2 -m trainwell fit --resume runs/ddp --quiet"
RAY_SWEEP = ("trainwell sweep configs/spirals-mlp.toml --set train.epochs=2 --set 'model.hidden=[16]' --seeds 4 "
             "--backend ray --out runs/ray-sweep --json")
RAY_LAB = "trainwell lab run init-histograms encoder-8-3-8 --quick --backend ray --out runs/ray-lab --json"
PROCESS_TIMEOUT = 240  # seconds: a hang fails the test instead of stalling CI

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def _env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def _run(command: str, cwd: Path, timeout: float = PROCESS_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(command), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def _assert_same_weights(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-4, msg=f"{key} differs")


def _workdir(tmp_path: Path) -> Path:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "spirals-mlp.toml").write_text((ROOT / "configs" / "spirals-mlp.toml").read_text())
    return tmp_path


def _one_process(tmp_path: Path, settings=SETTINGS, epochs: int | None = None):
    extra = [f"train.epochs={epochs}"] if epochs else []
    cfg = load_config(str(ROOT / "configs" / "spirals-mlp.toml"), [*settings, *extra])
    return fit(cfg, out=tmp_path / "one", quiet=True)


def test_readme_shows_the_commands_these_tests_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in (TORCHRUN_FIT, TORCHRUN_RESUME, RAY_SWEEP, RAY_LAB):
        assert command in readme, command


def test_two_gloo_processes_equal_one_process_and_only_rank_0_writes(tmp_path):
    work = _workdir(tmp_path)
    done = _run(TORCHRUN_FIT, work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "train.batch_size = 25 is the global batch: 12-13 examples per process per step" in done.stderr
    assert done.stdout.count("run dir:") == 1  # rank 1 printed nothing
    run = work / "runs" / "ddp"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["world_size"], summary["backend"], summary["global_batch_size"]) == (2, "gloo", 25)
    # only rank 0 wrote: one line per epoch (not two), nothing outside the run directory
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    assert sorted(p.name for p in work.iterdir()) == ["configs", "runs"]
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["ddp"]
    one = _one_process(tmp_path)
    assert one.summary["world_size"] == 1 and one.summary["backend"] is None
    _assert_same_weights(_weights(run), _weights(one.run_dir))
    assert summary["steps"] == one.summary["steps"] and summary["epochs"] == one.summary["epochs"]
    for key, value in one.summary["final"].items():
        assert summary["final"][key] == pytest.approx(value, abs=1e-5), key
    # the training accuracy is the global batches' (not NaN: the ranks count the global batch's labels too)
    ddp_rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    one_rows = [json.loads(line) for line in (one.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_acc"] for r in ddp_rows] == pytest.approx([r["train_acc"] for r in one_rows], abs=0.01)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_pid(launcher: int, rank: int) -> int | None:
    for child in _children(launcher):
        try:
            env = (Path("/proc") / str(child) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return child
    return None


def _wait_for_epochs(metrics: Path, epochs: int, proc: subprocess.Popen, timeout: float = PROCESS_TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= epochs:
            return
        assert proc.poll() is None, "the run ended before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError(f"{metrics}: fewer than {epochs} epochs after {timeout} s")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the rank's process through /proc")
def test_killed_rank_stops_torchrun_and_resume_equals_the_uninterrupted_run(tmp_path):
    work = _workdir(tmp_path)
    settings = [*SETTINGS[1:], "train.epochs=20", "train.checkpoint_every=1", "optim.lr=0.02"]
    command = TORCHRUN_FIT.replace(SETS, " ".join(f"--set '{s}'" for s in settings))
    tic = time.monotonic()
    proc = subprocess.Popen(shlex.split(command), cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for_epochs(work / "runs" / "ddp" / "metrics.jsonl", 3, proc)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and time.monotonic() - tic < PROCESS_TIMEOUT
    assert "rank      : 1" in err and "SIGKILL" in err  # torchrun names the rank that died
    run = work / "runs" / "ddp"
    assert not (run / "summary.json").exists()
    done = _run(TORCHRUN_RESUME, work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["epochs"] == 20
    one = _one_process(tmp_path, settings)
    _assert_same_weights(_weights(run), _weights(one.run_dir), atol=1e-4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_crashed_rank_gives_rank_0_a_clear_error_not_a_hang(tmp_path):
    """Two processes started by hand with torchrun's variables; rank 1 is killed mid-training: rank 0 reports the
    lost process and exits 1 within seconds (no launcher cleans up after it here)."""
    work = _workdir(tmp_path)
    port = _free_port()
    command = ["python", "-m", "trainwell", "fit", "configs/spirals-mlp.toml", "--set", "train.epochs=200",
               "--set", "train.dist_timeout_minutes=1", "--out", "runs/crash", "--quiet"]
    procs = []
    for rank in (0, 1):
        env = {**_env(), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        _wait_for_epochs(work / "runs" / "crash" / "metrics.jsonl", 2, procs[0])
        procs[1].kill()
        tic = time.monotonic()
        _, err = procs[0].communicate(timeout=PROCESS_TIMEOUT)
        waited = time.monotonic() - tic
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 1, err[-3000:]
    assert "rank 0 of 2: rank 1 stopped (killed or crashed)" in err and "Traceback" not in err
    assert "gloo" not in err.split("rank 0 of 2: rank 1 stopped")[1].splitlines()[0].lower()
    assert waited < 60  # the peer's closed connection is noticed at once, not after the timeout


def test_bf16_on_cpu_trains_resumes_exactly_and_fp16_needs_cuda(tmp_path):
    settings = [*SETTINGS, "train.precision=bf16", "train.device=cpu"]
    cfg = load_config(str(ROOT / "configs" / "spirals-mlp.toml"), settings)
    dtypes = set()

    def record(model):
        model.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype))

    full = fit(cfg, out=tmp_path / "full", quiet=True, setup=record)
    assert torch.bfloat16 in dtypes  # the forward passes ran under autocast
    fp32 = _one_process(tmp_path)
    assert full.summary["precision"] == "bf16"
    assert full.summary["final"]["val_acc"] > fp32.summary["final"]["val_acc"] - 0.05
    short = load_config(str(ROOT / "configs" / "spirals-mlp.toml"), [*settings, "train.epochs=2"])
    fit(short, out=tmp_path / "part", quiet=True)
    resumed = fit(config_of_run(tmp_path / "part", ["train.epochs=4"]), resume=tmp_path / "part", quiet=True)
    _assert_same_weights(_weights(resumed.run_dir), _weights(full.run_dir), atol=0.0)
    with pytest.raises(ConfigError, match="fp16.*needs a CUDA device"):
        fit(load_config(None, [*settings, "train.precision=fp16", "data.name=xor", "model.kind=mlp"]),
            out=tmp_path / "fp16", quiet=True)
    with pytest.raises(ConfigError, match="sync_bn = true needs BatchNorm"):
        fit(load_config(str(ROOT / "configs" / "spirals-mlp.toml"), [*SETTINGS, "train.sync_bn=true"]),
            out=tmp_path / "syncbn", quiet=True)


# -- sweeps on Ray ---------------------------------------------------------------------------------------------
def _local_sweep(tmp_path: Path, settings: list[str], seeds: int = 4, grid: dict | None = None, **kwargs):
    from trainwell.sweep import sweep

    cfg = load_config(str(ROOT / "configs" / "spirals-mlp.toml"), settings)
    return sweep(cfg, grid or {}, seeds=seeds, out=tmp_path / f"sweep-{kwargs.get('backend', 'local')}", **kwargs)


def _assert_same_members(rows_a: list[dict], rows_b: list[dict], dir_a: Path, dir_b: Path) -> None:
    assert len(rows_a) == len(rows_b)
    for m, (a, b) in enumerate(zip(rows_a, rows_b, strict=True)):
        assert a.keys() - {"history"} == b.keys() - {"history"}, m
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-5), (m, key)
            elif key != "history":
                assert b[key] == value, (m, key)
        _assert_same_weights(_weights(dir_a / f"member-{m}"), _weights(dir_b / f"member-{m}"))


def test_without_ray_the_backend_is_a_one_line_error(monkeypatch, capsys, tmp_path):
    from trainwell.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["sweep", "--set", "data.name=xor", "--set", "model.kind=mlp", "--seeds", "2", "--backend", "ray",
                 "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "pip install 'trainwell[ray]'" in err
    assert not (tmp_path / "s").exists()


def test_the_readme_ray_sweep_equals_the_local_sweep(tmp_path):
    pytest.importorskip("ray")
    work = _workdir(tmp_path)
    done = _run(RAY_SWEEP, work)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    summary = json.loads((work / "runs" / "ray-sweep" / "summary.json").read_text())
    assert summary["backend"] == "ray" and summary["mode"].startswith("ray (") and summary["failed_members"] == []
    local = _local_sweep(tmp_path, ["train.epochs=2", "model.hidden=[16]"])
    _assert_same_members(local.rows, rows, local.out, work / "runs" / "ray-sweep")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_sweep_on_two_cpus_equals_local_member_by_member(local_ray, tmp_path):
    settings = ["train.epochs=2", "model.hidden=[16]"]
    local = _local_sweep(tmp_path, settings)
    remote = _local_sweep(tmp_path, settings, backend="ray")
    assert local.mode == "population" and remote.mode == "ray (2 tasks, populations)"
    _assert_same_members(local.rows, remote.rows, local.out, remote.out)
    assert local_ray.is_initialized()  # the caller's Ray instance is used and left running


def test_ray_sequential_sweep_retries_then_reports_a_failed_member(local_ray, tmp_path):
    settings = ["train.epochs=2", "model.hidden=[16]", "data.root=" + str(tmp_path / "nothing-here")]
    grid = {"data.name": ["spirals", "mnist"]}  # mnist needs its files under data.root: that member fails
    local = _local_sweep(tmp_path, settings, seeds=1, grid={"data.name": ["spirals"]})
    remote = _local_sweep(tmp_path, settings, seeds=1, grid=grid, backend="ray")
    assert remote.mode.startswith("ray (2 tasks, one member each")
    good, bad = remote.rows
    assert not good["failed"] and "error" not in good
    assert good["val_acc"] == pytest.approx(local.rows[0]["val_acc"], abs=1e-6)
    assert bad["failed"] and "DataError" in bad["error"] and "after 2 attempts" in bad["error"]
    summary = json.loads((remote.out / "summary.json").read_text())
    assert summary["failed_members"] == [1]
    assert "mnist" in (remote.out / "results.csv").read_text()


def test_the_readme_ray_lab_equals_the_local_lab(tmp_path):
    pytest.importorskip("ray")
    from trainwell.lab.runner import run_lab

    work = _workdir(tmp_path)
    done = _run(RAY_LAB, work)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout)
    local = run_lab(["init-histograms", "encoder-8-3-8"], tmp_path / "local-lab", quick=True)
    assert [s["name"] for s in remote] == ["init-histograms", "encoder-8-3-8"]
    for a, b in zip(local, remote, strict=True):
        assert a["verdict"] == json.loads(json.dumps(b["verdict"])), a["name"]
        assert a["verdict"]["status"] in ("pass", "inconclusive")
        ra = json.loads((tmp_path / "local-lab" / a["name"] / "result.json").read_text())
        rb = json.loads((work / "runs" / "ray-lab" / b["name"] / "result.json").read_text())
        assert ra == rb, a["name"]
    index = json.loads((work / "runs" / "ray-lab" / "index.json").read_text())
    assert [e["name"] for e in index] == ["init-histograms", "encoder-8-3-8"]
    assert (work / "runs" / "ray-lab" / "index.html").exists()
