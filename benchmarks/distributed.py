"""More than one process: 2 gloo processes under torchrun vs 1 process, and a Ray sweep vs the local sweep.

Prints a markdown table: wall time of each command (process start included), the training time recorded in
summary.json (``fit_s``), and how far the results are from the one-process / local oracle (max |weight
difference|, max |metric difference|).

Usage:
    OMP_NUM_THREADS=1 python benchmarks/distributed.py [--epochs 20] [--members 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).parent.parent


def _run(command: str, cwd: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    tic = time.perf_counter()
    done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tic
    if done.returncode != 0:
        raise SystemExit(f"{command}\nfailed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall


def _weights(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def ddp(work: Path, config: str, settings: list[str]) -> list[str]:
    sets = " ".join(f"--set '{s}'" for s in settings)
    rows = []
    walls = {}
    for name, launcher in (("1 process", "python"), ("2 gloo processes", "torchrun --nproc_per_node=2")):
        out = work / f"{Path(config).stem}-{name.replace(' ', '-')}"
        command = f"{launcher} -m trainwell fit {config} {sets} --out {out} --quiet"
        walls[name] = (_run(command, work), json.loads((out / "summary.json").read_text()), out, command)
    one = walls["1 process"]
    for wall, summary, out, command in walls.values():
        diff = _max_diff(_weights(out), _weights(one[2]))
        metric = max(abs((summary["final"][k] or 0) - (one[1]["final"][k] or 0)) for k in one[1]["final"])
        shown = command.replace(str(work) + "/", "").replace(str(ROOT) + "/", "")
        rows.append(f"| `{shown}` | {wall:.1f} | {summary['fit_s']:.2f} | {diff:.1e} | {metric:.1e} |")
    return rows


def ray_sweep(work: Path, config: str, settings: list[str], members: int, workers: int,
              sequential: bool) -> list[str]:
    import ray

    from trainwell.config import load_config
    from trainwell.sweep import sweep

    cfg = load_config(config, settings)
    rows, results = [], {}
    for backend in ("local", "ray"):
        if backend == "ray":
            ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        try:
            tic = time.perf_counter()
            res = sweep(cfg, {}, seeds=members, out=work / f"sweep-{backend}-{sequential}", sequential=sequential,
                        backend=backend)
            results[backend] = (time.perf_counter() - tic, res)
        finally:
            if backend == "ray":
                ray.shutdown()
    local = results["local"][1]
    for backend, (wall, res) in results.items():
        diff = max(_max_diff(_weights(res.out / f"member-{m}"), _weights(local.out / f"member-{m}"))
                   for m in range(members))
        metric = max(abs(a[k] - b[k]) for a, b in zip(res.rows, local.rows, strict=True)
                     for k in ("train_loss", "val_loss", "val_acc", "test_acc"))
        where = f"Ray, `ray.init(num_cpus={workers})`" if backend == "ray" else "local"
        rows.append(f"| {members} members, {where}: {res.mode} | {wall:.1f} | {diff:.1e} | {metric:.1e} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    config = str(ROOT / "configs" / "spirals-mlp.toml")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("\n| command | wall s | fit_s | max weight diff vs 1 process | max final-metric diff |")
        print("|---|---|---|---|---|")
        for config_name, settings in (
            ("spirals-mlp", [f"train.epochs={args.epochs}", "train.batch_size=32"]),
            ("mnist1d-mlp", ["train.epochs=5", "train.batch_size=128"]),
        ):
            for row in ddp(work, str(ROOT / "configs" / f"{config_name}.toml"), settings):
                print(row, flush=True)
        if args.skip_ray:
            return
        print("\n| sweep | wall s | max weight diff vs local | max metric diff vs local |")
        print("|---|---|---|---|")
        for sequential in (False, True):
            settings = [f"train.epochs={args.epochs}", "model.hidden=[16]"]
            for row in ray_sweep(work, config, settings, args.members, args.workers, sequential):
                print(row, flush=True)


if __name__ == "__main__":
    main()
