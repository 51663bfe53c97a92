"""A population's training step captured as a CUDA graph (:mod:`trainwell.train.step_graph`). Oracle: the same
population trained eagerly (``train.cuda_graph = false``) - the graph replays the same kernels, so the metrics
and weights must agree to float32 rounding. The CUDA tests run only where a GPU is present."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainwell.config import load_config
from trainwell.rundir import read_jsonl
from trainwell.sweep import parse_grid, sweep
from trainwell.train import Trainer
from trainwell.train.population import PopulationLearner
from trainwell.train.step_graph import CapturedStep

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

BASE = ["data.name=spirals", "data.options={n_per_class = 60}", "model.kind=mlp", "model.hidden=[16,16]",
        "train.epochs=4", "train.batch_size=32", "report.enabled=false", "doctor.preflight=false",
        "doctor.monitor_every=0", "train.device=cuda"]


def _population(device: str, cuda_graph: bool, optimizer: str = "adam") -> PopulationLearner:
    nets = []
    for s in range(4):
        torch.manual_seed(s)
        nets.append(nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 3)))
    return PopulationLearner(nets[0], [n.state_dict() for n in nets], optimizer=optimizer,
                             lrs=[0.01, 0.02, 0.005, 0.01], weight_decays=[0.0, 1e-3, 0.0, 1e-2], device=device,
                             cuda_graph=cuda_graph)


def test_a_population_on_a_cpu_is_never_captured():
    assert _population("cpu", cuda_graph=True).captured is None


def test_a_step_must_run_eagerly_before_it_is_captured():
    with pytest.raises(ValueError, match="warmup = 0 is not allowed"):
        CapturedStep(lambda: (), warmup=0)


def _replays(monkeypatch) -> list[int]:
    count = [0]
    replay = torch.cuda.CUDAGraph.replay

    def counting(self):
        count[0] += 1
        return replay(self)

    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", counting)
    return count


@cuda
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "rmsprop", "sgd"])
def test_a_captured_population_trains_as_the_eager_one(optimizer, monkeypatch):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 5, generator=g), torch.randint(0, 3, (200,), generator=g)  # 7 batches, the last of 8
    replays = _replays(monkeypatch)
    states, histories = [], []
    for cuda_graph in (False, True):
        learner = _population("cuda", cuda_graph, optimizer)
        trainer = Trainer(learner, epochs=4, batch_size=32, seed=[0, 1, 2, 3], device="cuda")
        trainer.fit((x, y), (x[:50], y[:50]))
        states.append({k: v.detach().cpu() for k, v in learner.params.items()})
        histories.append([[r["train_loss"] for r in m.history] for m in trainer.members])
    assert replays[0] >= 4 * 7 - 6  # two warm-up steps for each of the two batch shapes
    for a, b in zip(*histories, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    for k in states[0]:
        torch.testing.assert_close(states[1][k], states[0][k], rtol=1e-5, atol=1e-6)


@cuda
@pytest.mark.parametrize("extra", [
    ["optim.schedule=onecycle"],  # per-step rates and momenta
    ["optim.name=rmsprop", "optim.rmsprop_momentum=0.9", "optim.weight_decay=0.01", "optim.schedule=cosine"],
    ["optim.weight_decay=0.01", "optim.decay=decoupled"],  # not capturable: stays eager
])
def test_a_captured_sweep_writes_the_metrics_of_the_eager_one(workdir, extra, monkeypatch):
    replays = _replays(monkeypatch)
    runs = {}
    for graph in ("false", "true"):
        cfg = load_config(None, BASE + extra + [f"train.cuda_graph={graph}"])
        res = sweep(cfg, parse_grid(["optim.lr=0.01,0.003"]), seeds=2, out=f"sw-{graph}")
        assert res.mode == "population"
        runs[graph] = read_jsonl(workdir / f"sw-{graph}" / "metrics.jsonl")
    if "optim.decay=decoupled" in extra:
        assert replays[0] == 0
    else:
        assert replays[0] > 0
    assert len(runs["true"]) == len(runs["false"]) > 0
    for a, b in zip(runs["false"], runs["true"], strict=True):
        assert a["member"] == b["member"] and a["epoch"] == b["epoch"]
        for key in ("train_loss", "val_loss", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6)


@cuda
def test_members_that_stop_leave_the_graph_and_train_on_eagerly(workdir, monkeypatch):
    replays = _replays(monkeypatch)
    runs = {}
    for graph in ("false", "true"):
        cfg = load_config(None, BASE + ["train.epochs=30", "optim.lr=0.05", "stop.criteria=['early_stopping']",
                                        "stop.patience=2", "optim.schedule=none", f"train.cuda_graph={graph}"])
        res = sweep(cfg, parse_grid(["data.label_noise=0.0,0.5"]), seeds=2, out=f"es-{graph}")
        runs[graph] = [r["stop_epoch"] for r in res.rows], [r["train_acc"] for r in res.rows]
    assert replays[0] > 0
    assert runs["true"][0] == runs["false"][0]
    assert runs["true"][1] == pytest.approx(runs["false"][1], abs=1e-6)


@cuda
def test_a_resumed_captured_population_finishes_as_the_uninterrupted_one(workdir):
    import os
    import signal

    from trainwell.pipeline import fit_population
    from trainwell.train.callbacks import Callback
    from trainwell.train.interrupt import Interrupted

    class StopAtEpoch2(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    cfgs = [load_config(None, BASE + [f"train.seed={s}"]) for s in (0, 1)]
    whole = fit_population(cfgs, out="whole")
    with pytest.raises(Interrupted):
        fit_population(cfgs, out="cut", callbacks=[StopAtEpoch2()])
    resumed = fit_population(cfgs, out="cut", resume=True)
    for a, b in zip(whole.members, resumed.members, strict=True):
        assert a.summary["final"]["test_loss"] == pytest.approx(b.summary["final"]["test_loss"], rel=1e-5)
