"""A compiled model observed by hooks (trainwell/train/uncompiled.py): the observed steps run the uncompiled
forward, so the compiled code never sees a hook. Oracle: dynamo's own counters (``torch._dynamo.utils.counters``:
graphs compiled, graph breaks) - without the suspension the same hooks recompile the model at every observed step
and break its graph - and the uncompiled model's outputs. ``backend="eager"``: dynamo traces and guards as with
inductor, without generating code (milliseconds)."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._dynamo.utils import counters

from trainwell.data import load
from trainwell.doctor import check
from trainwell.doctor.monitors import Monitor
from trainwell.train import Trainer
from trainwell.train.uncompiled import suspend_compiled, uncompiled


@pytest.fixture(scope="module")
def spirals():
    return load("spirals", n_per_class=100).train


class UserNet(nn.Module):  # as users write them: their own class (dynamo skips torch's own nn.Sequential frames)
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(self.act(self.hidden(x)))


def _compiled(style: str) -> tuple[nn.Module, nn.Module]:
    """(the model to call, the module holding the weights) compiled with ``style``."""
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    net = UserNet()
    if style == "method":
        net.compile(backend="eager")
        return net, net
    return torch.compile(net, backend="eager"), net


def _steps(model: nn.Module, suspend: bool, steps: int = 9) -> list[float]:
    """Training-mode forwards and backwards, every third one observed by forward hooks that read a statistic."""
    seen: list[float] = []
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    for step in range(steps):
        hooks, restore = [], None
        if step % 3 == 0:
            hooks = [m.register_forward_hook(lambda mod, args, out: seen.append(float(out.detach().std())))
                     for m in model.modules() if isinstance(m, nn.Linear)]
            if suspend:
                restore = suspend_compiled(model)
        model(x).sum().backward()
        for h in hooks:
            h.remove()
        if restore is not None:
            restore()
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("style", ["method", "wrapper"])
def test_observed_steps_run_uncompiled_and_nothing_recompiles(style):
    model, net = _compiled(style)
    _steps(model, suspend=False)
    assert counters["stats"]["unique_graphs"] > 2 and sum(counters["graph_break"].values()) > 0  # the harm
    model, net = _compiled(style)
    seen = _steps(model, suspend=True)
    assert counters["stats"]["unique_graphs"] == 1 and not sum(counters["graph_break"].values())
    eager = UserNet()
    eager.load_state_dict(net.state_dict())
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert seen[:2] == pytest.approx([float(eager.hidden(x).std()), float(eager(x).std())])


@pytest.mark.parametrize("style", ["method", "wrapper"])
@pytest.mark.slow  # 0.34 s each on a 2-core CPU (RESULTS §51)
def test_the_compiled_call_comes_back_also_after_an_exception(style):
    model, net = _compiled(style)
    before = (getattr(net, "_compiled_call_impl", None), vars(model).get("forward"))
    with pytest.raises(RuntimeError, match="inside"), uncompiled(model):
        assert getattr(net, "_compiled_call_impl", None) is None
        raise RuntimeError("inside")
    assert (getattr(net, "_compiled_call_impl", None), vars(model).get("forward")) == before


def test_a_model_with_nothing_compiled_is_left_as_it_is():
    net = UserNet()
    before = dict(vars(net))
    suspend_compiled(net)()
    assert vars(net) == before


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_the_monitor_sees_a_compiled_models_activations_and_compiles_nothing_new(spirals):
    x, y = spirals[0][:192], spirals[1][:192]  # whole batches: one shape to compile
    graphs = {}
    for every in (None, 3):
        model, net = _compiled("method")
        callbacks = [Monitor(every=every)] if every else []
        Trainer(model, torch.optim.SGD(net.parameters(), 0.05), epochs=2, batch_size=32, callbacks=callbacks,
                device="cpu").fit((x, y))
        graphs[every] = (counters["stats"]["unique_graphs"], sum(counters["graph_break"].values()))
        if every:  # the observed steps were recorded, with the activations their hooks saw (a compiled
            # forward would not call hooks added after it was compiled: the records would hold none)
            records = callbacks[0].records
            assert len(records) >= 3 and all(r["activations"].keys() == {"act"} for r in records)
    assert graphs[3] == graphs[None]  # hooks every third step compiled nothing new and broke nothing


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_the_doctor_checks_a_compiled_model_without_compiling_for_its_hooks(spirals):
    x, y = spirals
    model, net = _compiled("method")
    report = check(model, x[:64], y[:64], nn.CrossEntropyLoss())
    assert not counters["stats"]["unique_graphs"] and not sum(counters["graph_break"].values())
    eager = UserNet()
    eager.load_state_dict(net.state_dict())
    plain = check(eager, x[:64], y[:64], nn.CrossEntropyLoss())
    assert [(v.check, v.status) for v in report.verdicts] == [(v.check, v.status) for v in plain.verdicts]
    assert net._compiled_call_impl is not None  # compiled again afterwards
