"""Population training vs sequential `fit`: N MNIST-1D MLPs (different seeds) trained at once vs one by one.

Both sides train the same members (same inits, data orders and optimizer; doctor and report off so that only
training is compared). Each mode runs in its own subprocess so its peak memory (max RSS) is its own.

Usage: python benchmarks/population.py [--members 16] [--epochs 20] [--hidden 100,100]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time

BASE = ["data.name=mnist1d", "model.kind=mlp", "report.enabled=false", "doctor.preflight=false",
        "doctor.monitor_every=0", "train.device=auto", "optim.lr=0.01"]


def run_mode(mode: str, members: int, epochs: int, hidden: str) -> dict:
    from trainwell.config import load_config
    from trainwell.pipeline import fit
    from trainwell.sweep import sweep

    cfg = load_config(None, BASE + [f"train.epochs={epochs}", f"model.hidden=[{hidden}]"])
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        if mode == "population":
            res = sweep(cfg, {}, seeds=members, out=tmp)
            accs = [r["test_acc"] for r in res.rows]
        else:
            accs = []
            for s in range(members):
                member = load_config(None, BASE + [f"train.epochs={epochs}", f"model.hidden=[{hidden}]",
                                                   f"train.seed={s}"])
                accs.append(fit(member, out=f"{tmp}/m{s}", quiet=True).summary["final"]["test_acc"])
        wall = time.perf_counter() - tic
    return {"mode": mode, "wall_s": wall, "mean_test_acc": sum(accs) / len(accs),
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", default="100,100")
    parser.add_argument("--mode", choices=["population", "sequential"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.members, args.epochs, args.hidden)))
        return
    results = {}
    for mode in ("sequential", "population"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--members", str(args.members), "--epochs",
                              str(args.epochs), "--hidden", args.hidden], capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[mode]
        print(f"{mode}: {r['wall_s']:.2f} s, mean test acc {r['mean_test_acc']:.3f}, max RSS {r['max_rss_mb']:.0f} MB",
              flush=True)
    speedup = results["sequential"]["wall_s"] / results["population"]["wall_s"]
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    print(f"{args.members} members, {args.epochs} epochs, hidden [{args.hidden}]: population speed-up {speedup:.1f}x "
          f"(target >= 30x)")


if __name__ == "__main__":
    main()
