#!/usr/bin/env bash
# trainwell on a CUDA machine: the captured population step against the eager one (tests), population throughput
# with and without the CUDA graph, the loop's overhead vs a hand-written loop (eager and compiled), the default fit,
# a population sweep, mixed precision with exact resume, and fit under torchrun with nccl. Each step has its
# own time limit and its output goes to OUT/<step>.log; the summary lines are printed.
#
#   TRAINWELL_CACHE=... bash benchmarks/cuda_check.sh OUT
set -uo pipefail
out=${1:-cuda-check}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local tic=$SECONDS
  timeout "$limit" "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc, $((SECONDS - tic)) s"
  tail -n "${TAIL:-12}" "$out/$name.log"
}

step env 30 "$py" -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), torch.version.cuda)"
step graph_tests 100 "$py" -m pytest -q -p no:cacheprovider -o addopts= tests/train/test_step_graph.py
step population 150 "$py" benchmarks/population.py --device cuda --members 16,64,256 --epochs 3 --sequential 16 \
  --graph on,off --profile 256
step overhead 60 "$py" benchmarks/overhead.py --device cuda --epochs 6 --reps 3
step overhead_captured 120 "$py" benchmarks/overhead.py --device cuda --epochs 6 --reps 3 --set train.compile=true
step fit 40 "$py" -m trainwell fit --set train.device=cuda --set report.enabled=false --out "$out/fit"
step sweep 30 "$py" -m trainwell sweep --set train.device=cuda --set model.kind=mlp --set report.enabled=false \
  --set train.epochs=5 --grid optim.lr=0.001,0.003,0.01 --seeds 2 --out "$out/sweep"
step precision 40 "$py" benchmarks/precision_cuda.py "$out/precision"
step torchrun 30 "$py" -m torch.distributed.run --nproc_per_node=1 -m trainwell fit --set train.device=cuda \
  --set report.enabled=false --set train.epochs=3 --out "$out/torchrun"
