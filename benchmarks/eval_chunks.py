"""Evaluation's rows per forward on a CPU: `evaluate` of the default model on its 3600 training rows in chunks of
2048, 1024, 512, 256 and 128 rows, interleaved, at one torch thread (``--threads``), median of ``--reps``, each as a
ratio against 2048 rows (the chunk before `trainwell.train.learners.eval_rows` chose 256 on a CPU).

    python benchmarks/eval_chunks.py [--reps 7] [--threads 1] [--model cnn]

A chunk's activations should stay near the core's cache: a 2048-row chunk of the default CNN is 2048 x 64 x 40
floats (~21 MB) per layer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

ROWS = (2048, 1024, 512, 256, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="cnn", help="the config's model.kind (cnn, mlp)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from trainwell.config import load_config
    from trainwell.pipeline.build import prepare
    from trainwell.train.learners import evaluate

    prep = prepare(load_config(None, [f"model.kind={args.model}"]))
    x, y = prep.splits.train
    times: dict[int, list[float]] = {r: [] for r in ROWS}
    evaluate(prep.model, x, y, F.cross_entropy, batch_size=256)  # first call: allocator and kernels warm
    for _ in range(args.reps):
        for rows in ROWS:
            tic = time.perf_counter()
            evaluate(prep.model, x, y, F.cross_entropy, batch_size=rows)
            times[rows].append(time.perf_counter() - tic)
    base = statistics.median(times[ROWS[0]])
    print(f"model {args.model}, {len(x)} rows, {args.threads} thread(s), median of {args.reps}:")
    for rows in ROWS:
        m = statistics.median(times[rows])
        print(f"  {rows:5d} rows per forward: {m * 1000:7.1f} ms  ({base / m:.2f}x the speed of {ROWS[0]})")


if __name__ == "__main__":
    main()
