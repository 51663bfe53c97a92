#!/usr/bin/env bash
# trainwell on a CUDA machine: the default fit, mixed precision with exact resume, a population sweep, the loop's
# overhead vs a hand-written loop, population throughput, and fit under torchrun with nccl. Each step has its
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
step fit 90 "$py" -m trainwell fit --set train.device=cuda --set report.enabled=false --out "$out/fit"
step precision 90 "$py" benchmarks/precision_cuda.py "$out/precision"
step sweep 60 "$py" -m trainwell sweep --set train.device=cuda --set model.kind=mlp --set report.enabled=false \
  --set train.epochs=5 --grid optim.lr=0.001,0.003,0.01 --seeds 2 --out "$out/sweep"
step overhead 80 "$py" benchmarks/overhead.py --device cuda --epochs 6 --reps 3
step overhead_captured 240 "$py" benchmarks/overhead.py --device cuda --epochs 6 --reps 3 --set train.compile=true
step population 120 "$py" benchmarks/population.py --device cuda --members 16,64,256 --epochs 3 --sequential 16
step torchrun 60 "$py" -m torch.distributed.run --nproc_per_node=1 -m trainwell fit --set train.device=cuda \
  --set report.enabled=false --set train.epochs=3 --out "$out/torchrun"
