"""Population training throughput: N MNIST-1D MLPs trained at once by the one fit loop (a vmapped population
learner) vs the same members as separate `fit` runs, against this machine's measured float32 matmul peak.

For each population size it reports member-steps per second and achieved FLOP/s (training FLOPs of an MLP step:
6 x multiply-adds per example x batch: 2 forward, 4 backward), both over the training loop only (`fit_s`, the
same clock for both sides), plus the population's whole wall time (data, per-member run directories, final
evaluation). The sequential side trains ``--sequential`` members one after another with `fit`. ``--profile M``
prints where a population step of M members spends its time (torch.profiler, top operators).

Populations run in two modes (``--modes``): members that differ by seed (each draws its own batches) and members
that differ by learning rate with one seed (they draw the same batches, so the first layer of all of them is one
wide GEMM).

Usage: python benchmarks/population.py [--members 16,64,256] [--epochs 3] [--hidden 100,100] [--sequential 16]
       [--device auto] [--threads 1] [--profile 64] [--modes seeds,shared] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch
from heap_option import add_heap_option, apply_heap_option
from matmul_peak import matmul_peak

BASE = ["data.name=mnist1d", "model.kind=mlp", "report.enabled=false", "doctor.preflight=false",
        "doctor.monitor_every=0", "optim.lr=0.01", "optim.schedule=onecycle", "train.batch_size=100",
        "train.checkpoint_every=1000"]


def _configs(members: int, epochs: int, hidden: str, device: str, shared: bool = False, graph: bool = True):
    """``members`` configs differing by seed, or with ``shared`` by learning rate (one seed: the same batches);
    ``graph``: on CUDA, the population's step captured as a CUDA graph (``train.cuda_graph``)."""
    from trainwell.config import load_config

    def member(s: int) -> list[str]:
        return [f"optim.lr={0.01 * (1 + s / members):.6g}", "train.seed=0"] if shared else [f"train.seed={s}"]

    return [load_config(None, BASE + [f"train.epochs={epochs}", f"model.hidden=[{hidden}]", *member(s),
                                      f"train.device={device}", f"train.cuda_graph={str(graph).lower()}"])
            for s in range(members)]


def _macs_per_example(hidden: str, inputs: int = 40, classes: int = 10) -> int:
    sizes = [inputs, *[int(h) for h in hidden.split(",")], classes]
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def population(members: int, epochs: int, hidden: str, device: str, shared: bool = False,
               graph: bool = True) -> dict:
    from trainwell.pipeline import fit_population

    cfgs = _configs(members, epochs, hidden, device, shared, graph)
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        res = fit_population(cfgs, out=tmp)
        wall = time.perf_counter() - tic
    fit_s = res.members[0].summary["fit_s"] * members  # each member's share of the one loop's time
    steps = res.members[0].summary["steps"]
    return {"members": members, "fit_s": fit_s, "wall_s": wall, "steps": steps,
            "mean_test_acc": statistics.mean(m.summary["final"]["test_acc"] for m in res.members)}


def sequential(members: int, epochs: int, hidden: str, device: str) -> dict:
    from trainwell.pipeline import fit

    fit_s, steps, accs = 0.0, 0, []
    with tempfile.TemporaryDirectory() as tmp:
        tic = time.perf_counter()
        for i, cfg in enumerate(_configs(members, epochs, hidden, device)):
            s = fit(cfg, out=f"{tmp}/m{i}", quiet=True).summary
            fit_s += s["fit_s"]
            steps = s["steps"]
            accs.append(s["final"]["test_acc"])
        wall = time.perf_counter() - tic
    return {"members": members, "fit_s": fit_s, "wall_s": wall, "steps": steps,
            "mean_test_acc": statistics.mean(accs)}


def profile(members: int, hidden: str, device: str, steps: int = 20, shared: bool = False) -> None:
    """Print the top operators of ``steps`` population steps (after warm-up); with ``shared`` every member draws
    the same rows."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from trainwell.nn.models import build_model
    from trainwell.pipeline import load_data  # data as the pipeline loads it
    from trainwell.train.population import PopulationLearner

    cfg = _configs(1, 1, hidden, device)[0]
    splits, _ = load_data(cfg)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    model = build_model(cfg.model, splits.meta.input_shape, splits.meta.num_classes)
    learner = PopulationLearner(model, [model.state_dict()] * members, optimizer="adam", lrs=[0.01] * members,
                                weight_decays=[0.0] * members, device=dev)
    x, y = (t.to(dev) for t in splits.train)
    idx = torch.randint(0, len(x), (members, 100), device=dev)
    if shared:
        idx = idx[:1].expand(members, 100)
    for _ in range(5):
        learner.train_step(x, y, idx)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            learner.train_step(x, y, idx)
        if dev.type == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(f"profile: {members} members, {'shared' if shared else 'own'} batches, {steps} steps")
    print(prof.key_averages().table(sort_by=key, row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="16,64,256")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", default="100,100")
    parser.add_argument("--sequential", type=int, default=16, help="members trained one by one (0: skip)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--profile", type=int, default=0, help="profile a step of this many members")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every side this many times, one after another, and report the median of each "
                             "round's speed-up (this machine's speed drifts by 10-20%% over a minute)")
    parser.add_argument("--modes", default="seeds,shared",
                        help="population members differing by seed (own batches), by rate with one seed (shared "
                             "batches: the first layer is one wide GEMM), or both")
    parser.add_argument("--graph", default="on",
                        help="on CUDA: populations with their step captured as a CUDA graph (on), eager (off), or "
                             "both (on,off); no effect on a CPU")
    add_heap_option(parser)
    args = parser.parse_args()
    apply_heap_option(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    peak = matmul_peak(dev, [256, 512, 1024, 2048] if dev.type == "cuda" else [256, 512])["peak_flops"]
    flop_per_member_step = 6 * _macs_per_example(args.hidden) * 100
    print(f"machine: {platform.machine()}, {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"float32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    speedups: dict[str, list[float]] = {}
    for round_ in range(args.rounds):  # each round runs every side once: its ratios share the machine's state
        rows = []
        seq = sequential(args.sequential, args.epochs, args.hidden, args.device) if args.sequential else None
        if seq:
            rows.append(("sequential fit", seq))
        for m in (int(v) for v in args.members.split(",")):
            for mode in args.modes.split(","):
                for graph in args.graph.split(",") if dev.type == "cuda" else ["on"]:
                    name = (f"population {m}" + (" (one seed: shared batches)" if mode == "shared" else " (seeds)")
                            + (" eager" if graph == "off" else " graph" if dev.type == "cuda" else ""))
                    rows.append((name, population(m, args.epochs, args.hidden, args.device, mode == "shared",
                                                  graph == "on")))
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}")
        print("| run | members | member-steps/s | GFLOP/s | % of peak | per-member speed-up vs sequential | "
              "loop s | wall s | mean test acc |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = seq["members"] * seq["steps"] / seq["fit_s"] if seq else None
        for name, r in rows:
            rate = r["members"] * r["steps"] / r["fit_s"]
            flops = rate * flop_per_member_step
            speed = f"{rate / base:.1f}x" if base else "-"
            if base:
                speedups.setdefault(name, []).append(rate / base)
            print(f"| {name} | {r['members']} | {rate:,.0f} | {flops / 1e9:.1f} | {100 * flops / peak:.1f}% | "
                  f"{speed} | {r['fit_s']:.2f} | {r['wall_s']:.2f} | {r['mean_test_acc']:.3f} |", flush=True)
        print(json.dumps({"peak_gflops": peak / 1e9, "rows": {n: r for n, r in rows}}))
    if args.rounds > 1 and speedups:
        print("median per-member speed-up over the rounds (each round's ratio in its own state of the machine):")
        for name, values in speedups.items():
            print(f"  {name}: {statistics.median(values):.2f}x  (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    if args.profile:
        for mode in args.modes.split(","):
            profile(args.profile, args.hidden, args.device, shared=mode == "shared")


if __name__ == "__main__":
    main()
