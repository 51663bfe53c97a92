"""Mixed precision on CUDA: fp32 vs bf16 vs fp16 (GradScaler), and exact resume of each. Needs a GPU.

Usage: PYTHONPATH=src python benchmarks/precision_cuda.py OUT_DIR
"""
import json
import sys
import time
from pathlib import Path

import torch

from trainwell.config import load_config
from trainwell.pipeline import config_of_run, fit

out = Path(sys.argv[1])
print("torch", torch.__version__, torch.cuda.get_device_name(0))
base = ["data.name=spirals", "model.kind=mlp", "model.hidden=[64,64]", "train.batch_size=32", "optim.name=adam",
        "optim.lr=0.003", "optim.schedule=none", "train.device=cuda", "doctor.preflight=false", "report.enabled=false"]
res = {}
for prec in ("fp32", "bf16", "fp16"):
    cfg = load_config(None, base + [f"train.precision={prec}", "train.epochs=6"])
    tic = time.perf_counter()
    full = fit(cfg, out=out / f"{prec}-full", quiet=True)
    wall = time.perf_counter() - tic
    fit(load_config(None, base + [f"train.precision={prec}", "train.epochs=3"]), out=out / f"{prec}-part", quiet=True)
    resumed = fit(config_of_run(out / f"{prec}-part", ["train.epochs=6"]), resume=out / f"{prec}-part", quiet=True)
    a = torch.load(out / f"{prec}-full/checkpoints/last.pt", weights_only=True)
    b = torch.load(out / f"{prec}-part/checkpoints/last.pt", weights_only=True)
    diff = max(float((a["model"][k] - b["model"][k]).abs().max()) for k in a["model"])
    res[prec] = {"val_acc": full.summary["final"]["val_acc"], "device": full.summary["device"],
                 "precision": full.summary["precision"], "resume_max_diff": diff, "wall_s": round(wall, 2),
                 "grad_scaler": a.get("grad_scaler"), }
    print(prec, json.dumps(res[prec], default=str), flush=True)
json.dump(res, open(out / "gpu_check.json", "w"), indent=1, default=str)
