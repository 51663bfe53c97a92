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


def test_only_steps_that_update_their_state_in_place_are_captured():
    assert _population("cpu", cuda_graph=True).optimizer.updates_in_place
    decoupled = _population("cpu", cuda_graph=True)
    decoupled.optimizer.decay = "decoupled"
    assert not decoupled.optimizer.updates_in_place  # Adam's decoupled decay replaces its state every step
    stopped = _population("cpu", cuda_graph=True)
    stopped.freeze(2)
    assert not stopped.optimizer.updates_in_place  # a stopped member's masked update


def test_a_step_must_run_eagerly_before_it_is_captured():
    with pytest.raises(ValueError, match="warmup = 0 is not allowed"):
        CapturedStep(lambda: (), warmup=0)


class _FakeGraph:
    """Stands in for ``torch.cuda.CUDAGraph`` on a CPU: capturing records the step instead of running it, and a
    replay runs it again on the captured buffers, writing into the captured outputs (what a real replay does)."""

    capturing: _FakeGraph | None = None

    def __init__(self):
        self.run = None

    def replay(self):
        self.run()


class _FakeCapture:
    def __init__(self, graph):
        self.graph = graph

    def __enter__(self):
        _FakeGraph.capturing = self.graph

    def __exit__(self, *exc):
        _FakeGraph.capturing = None


def _fake_cuda(monkeypatch, fail_capture: bool = False):
    import contextlib

    import trainwell.train.step_graph as sg

    class Stream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(sg.torch.cuda, "CUDAGraph", _FakeGraph)
    monkeypatch.setattr(sg.torch.cuda, "graph", _FakeCapture)
    monkeypatch.setattr(sg.torch.cuda, "Stream", Stream)
    monkeypatch.setattr(sg.torch.cuda, "current_stream", Stream)
    monkeypatch.setattr(sg.torch.cuda, "stream", lambda s: contextlib.nullcontext())


def _counting_step(log: list):
    """A step that adds its input to a running state and returns a copy of it; under the fake capture it only
    records itself (a real capture runs no kernel)."""
    state = torch.zeros(3)

    def step(x, *, scale):
        graph = _FakeGraph.capturing
        if graph is not None:
            out = torch.empty(3)

            def run():
                state.add_(x * scale)
                out.copy_(state)

            graph.run = run
            return (out,)
        log.append("eager")
        state.add_(x * scale)
        return (state.clone(),)

    return step, state


def test_each_key_warms_up_eagerly_then_replays_with_the_same_results(monkeypatch):
    _fake_cuda(monkeypatch)
    log = []
    step, state = _counting_step(log)
    captured = CapturedStep(step, warmup=2)
    outs = [captured("a", torch.full((3,), float(i)), scale=2.0)[0] for i in range(5)]
    assert log == ["eager"] * 2 and captured.replays == 3 and list(captured.graphs) == ["a"]
    assert [float(o[0]) for o in outs] == [0.0, 2.0, 6.0, 12.0, 20.0]  # 2 * (0 + 1 + ... + i): every step ran once
    assert outs[2] is not outs[3]  # copies, not the graph's own output buffer
    captured("b", torch.ones(3), scale=1.0)
    assert log == ["eager"] * 3  # a new key warms up again
    captured.reset()
    captured("a", torch.ones(3), scale=1.0)
    assert log == ["eager"] * 4 and not captured.graphs


def test_keys_past_the_limit_stay_eager(monkeypatch):
    _fake_cuda(monkeypatch)
    log = []
    step, _ = _counting_step(log)
    captured = CapturedStep(step, warmup=1, max_graphs=2)
    for key in ("a", "b", "c"):
        for _ in range(3):
            captured(key, torch.ones(3), scale=1.0)
    assert list(captured.graphs) == ["a", "b"] and log.count("eager") == 1 + 1 + 3


def test_a_step_that_cannot_be_captured_runs_eagerly_with_a_warning(monkeypatch):
    _fake_cuda(monkeypatch)

    def step(x):
        if _FakeGraph.capturing is not None:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        return (x + 1,)

    captured = CapturedStep(step, warmup=1)
    captured("a", torch.zeros(1))
    with pytest.warns(RuntimeWarning, match="could not be captured as a CUDA graph .operation not permitted"):
        out = captured("a", torch.zeros(1))
    assert float(out[0]) == 1.0 and captured.failed and not captured.graphs
    assert float(captured("a", torch.ones(1))[0]) == 2.0  # eager from then on


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
