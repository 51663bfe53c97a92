"""New MNIST-1D test signals from the package's own generator, and a trained model's score on them.

The published MNIST-1D test split has 1000 signals: a 65% accuracy on it carries a binomial standard error of 1.5
points, as large as many of the effects the lab measures. ``make_dataset`` (Greydanus & Kobak 2024, "Scaling down
deep learning with MNIST-1D") with the published arguments and another seed draws new signals from the same ten
templates, transformations and noise, so an experiment can score its models on as many held-out signals as it needs.
"""

from __future__ import annotations

import numpy as np
import torch

from trainwell.lab import base

FRESH_SEED = 1  # the generator's seed for the fresh test signals (the published split is seed 42)


def fresh_signals(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` new MNIST-1D signals and labels, ``(n, 1, 40)`` float32 and int64: the ``mnist1d`` package's
    ``make_dataset`` with the published arguments (Greydanus & Kobak 2024) but ``num_samples = n`` and seed
    :data:`FRESH_SEED`, cached beside the published arrays."""
    from trainwell.data.embedded import cache_dir

    path = cache_dir() / f"mnist1d-fresh-seed{FRESH_SEED}-{n}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, ValueError, KeyError):
        x, y = _generate(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(path)
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1), torch.tensor(y, dtype=torch.int64)


def _generate(n: int) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = n, FRESH_SEED, 0.5
    state = np.random.get_state()  # make_dataset reseeds NumPy's global RNG
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    return np.concatenate([d["x"], d["x_test"]])[:n], np.concatenate([d["y"], d["y_test"]])[:n]


def preprocessed(cfg, x: torch.Tensor) -> torch.Tensor:
    """``x`` with the preprocessing a run of ``cfg`` applies to its inputs (fitted on its own training split)."""
    from trainwell.pipeline import load_data

    _, pre = load_data(cfg)
    return pre.transform(x) if pre is not None else x


@torch.no_grad()
def correct_on(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """1 where ``model`` (in eval mode; its mode is restored) classifies an already preprocessed input right."""
    was, dev = model.training, next(model.parameters()).device
    model.eval()
    try:
        return torch.cat([model(x[i:i + 1024].to(dev)).argmax(dim=1).cpu() == y[i:i + 1024]
                          for i in range(0, len(x), 1024)]).int().tolist()
    finally:
        model.train(was)


def fresh_correct(t: base.Trained, x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """1 where the trained model (eval mode, the run's preprocessing applied) classifies a fresh signal right."""
    return correct_on(t.model, preprocessed(t.cfg, x), y)
