"""Wall time of the one-line mistakes and the static listings of the CLI, as a ratio to ``trainwell --help``.

Each command runs in a fresh interpreter (as a user types it), interleaved with ``--help``, ``--reps`` times; the
table gives medians, the ratio to ``--help``'s median, and whether torch was imported (``-X importtime``).

    OMP_NUM_THREADS=1 python benchmarks/cli_latency.py --reps 3
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [
    ["--help"],
    ["sweep", "--seeds", "0"],
    ["sweep", "--grid", "optim.lr 1e-3,3e-3"],
    ["lr-find", "--start", "10", "--end", "1e-3"],
    ["lab", "run", "capacty"],
    ["fit", "--resume", "runs/nope"],
    ["report", "NOT_A_RUN"],
    ["fit", "--set", "data.name=mnist1"],
    ["fit", "--set", "stop.patiense=3"],
    ["lab", "list"],
    ["datasets"],
]


def run(args: list[str], cwd: str) -> tuple[float, int, bool, str]:
    """(wall seconds, exit code, whether torch was imported, the last line of stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tic = time.perf_counter()
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "trainwell", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - tic
    torch = re.search(r"\|\s+torch$", proc.stderr, re.M) is not None
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    return wall, proc.returncode, torch, (lines[-1] if lines else "")[:110]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cwd:
        os.makedirs(os.path.join(cwd, "NOT_A_RUN"))
        times: dict[str, list[float]] = {" ".join(c): [] for c in COMMANDS}
        info = {}
        for _ in range(args.reps):
            for c in COMMANDS:
                wall, rc, torch, last = run(c, cwd)
                times[" ".join(c)].append(wall)
                info[" ".join(c)] = (rc, torch, last)
    base = statistics.median(times["--help"])
    print("| command | median wall | ratio to --help | exit | torch imported | last line of stderr |")
    print("|---|---|---|---|---|---|")
    for key, values in times.items():
        rc, torch, last = info[key]
        med = statistics.median(values)
        print(f"| `trainwell {key}` | {med:.2f} s | {med / base:.1f} | {rc} | {'yes' if torch else 'no'} | "
              f"{last.replace('|', '/')} |")


if __name__ == "__main__":
    main()
