"""`optim_eager.eager`: torch's optimizers, the same updates and state, without importing torch._dynamo."""

import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from trainwell.optim_eager import eager

CASES = [
    (torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
    (torch.optim.Adam, {"lr": 0.01, "fused": True, "amsgrad": True}),
    (torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (torch.optim.SGD, {"lr": 0.05, "fused": True}),
    (torch.optim.RMSprop, {"lr": 0.01, "momentum": 0.5}),
    (torch.optim.Adagrad, {"lr": 0.1}),
]


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def _train(model, opt, steps=6):
    torch.manual_seed(1)
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def _same_state(a: dict, b: dict):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, value in a["state"][k].items():
            other = b["state"][k][name]
            assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other, name


@pytest.fixture(params=[False, True], ids=["compiler absent", "compiler loaded"])
def compiler_loaded(request, monkeypatch):
    """Both paths of every wrapped method, whatever this test process has imported before."""
    monkeypatch.setattr("trainwell.optim_eager._compiler_loaded", lambda: request.param)
    return request.param


@pytest.mark.parametrize("cls,kwargs", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_same_updates_and_state_as_torchs_class(cls, kwargs, compiler_loaded):
    ours_model, ref_model = _net(), _net()
    ours, ref = eager(cls)(ours_model.parameters(), **kwargs), cls(ref_model.parameters(), **kwargs)
    _train(ours_model, ours)
    _train(ref_model, ref)
    for p, q in zip(ours_model.parameters(), ref_model.parameters(), strict=True):
        assert torch.equal(p, q)
    _same_state(ours.state_dict(), ref.state_dict())
    # either loads the other's state, and both go on identically
    crossed_model, crossed_ref_model = _net(), _net()
    crossed_model.load_state_dict(ref_model.state_dict())
    crossed_ref_model.load_state_dict(ours_model.state_dict())
    crossed = eager(cls)(crossed_model.parameters(), **kwargs)
    crossed.load_state_dict(ref.state_dict())
    crossed_ref = cls(crossed_ref_model.parameters(), **kwargs)
    crossed_ref.load_state_dict(ours.state_dict())
    _train(crossed_model, crossed, 3)
    _train(crossed_ref_model, crossed_ref, 3)
    for p, q in zip(crossed_model.parameters(), crossed_ref_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_lbfgs_closure_step_matches_torch(compiler_loaded):
    results = []
    for make in (eager(torch.optim.LBFGS), torch.optim.LBFGS):
        model = _net()
        opt = make(model.parameters(), lr=1.0, max_iter=5, line_search_fn="strong_wolfe")
        torch.manual_seed(1)
        x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))

        def closure(opt=opt, model=model, x=x, y=y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
        results.append([p.detach().clone() for p in model.parameters()])
    for p, q in zip(*results, strict=True):
        assert torch.equal(p, q)


def test_is_the_torch_class_to_its_users():
    opt = eager(torch.optim.Adam)(_net().parameters(), lr=0.1)
    assert isinstance(opt, torch.optim.Adam) and type(opt).__name__ == "Adam"
    assert repr(opt).startswith("Adam (")
    assert eager(torch.optim.Adam) is eager(torch.optim.Adam)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    _train(_net(), opt, 1)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_pickles_and_saves_as_the_same_optimizer(tmp_path):
    model = _net()
    opt = eager(torch.optim.Adam)(model.parameters(), lr=0.01, weight_decay=0.1)
    _train(model, opt, 2)
    torch.save(opt, tmp_path / "opt.pt")
    for again in (pickle.loads(pickle.dumps(opt)), torch.load(tmp_path / "opt.pt", weights_only=False)):
        assert type(again) is eager(torch.optim.Adam)
        _same_state(again.state_dict(), opt.state_dict())


def test_step_runs_without_grad_restores_the_mode_and_runs_each_hook_once(compiler_loaded):
    seen = []

    class Recording(torch.optim.SGD):
        def _init_group(self, *args, **kwargs):  # called inside the undecorated step
            seen.append(torch.is_grad_enabled())
            return super()._init_group(*args, **kwargs)

    model = _net()
    opt = eager(Recording)(model.parameters(), lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    opt.register_step_post_hook(lambda *a: calls.append("post"))
    for enabled in (True, False):
        _train(model, opt, 1)
        with torch.set_grad_enabled(enabled):
            opt.step()
            assert torch.is_grad_enabled() is enabled
    assert seen == [False] * 4
    assert calls == ["pre", "post"] * 4


@pytest.mark.slow
def test_a_process_that_builds_and_steps_every_optimizer_never_imports_dynamo():
    # the library's own optimizers (every name, both decays), a schedule, the pre-flight's fits
    script = textwrap.dedent("""
        import sys, torch
        from torch import nn
        from trainwell.optim import OPTIMIZERS, build_optimizer, build_schedule
        from trainwell.doctor.fitting import _free_outputs, _train_copy
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
        for name in OPTIMIZERS:
            for decay in ("coupled", "decoupled"):
                opt = build_optimizer(model, name, lr=0.01, weight_decay=0.01, decay=decay)
                sched = build_schedule(opt, "cosine", epochs=1, steps_per_epoch=3)
                for _ in range(3):
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
                    sched.scheduler.step()
                opt.load_state_dict(opt.state_dict())
        _train_copy(model, x, y, nn.functional.cross_entropy, steps=5, lr=0.01, seed=0)
        _free_outputs(model, x, y, nn.functional.cross_entropy, per_example=True)(32)
        print("torch._dynamo" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_a_compiled_step_gets_torchs_wrappers_and_torchs_result():
    import torch._dynamo

    torch._dynamo.reset()
    results = []
    for make in (eager(torch.optim.Adam), torch.optim.Adam):
        model = _net()
        opt = make(model.parameters(), lr=0.01)
        step = torch.compile(opt.step, backend="eager")
        torch.manual_seed(1)
        x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            step()
        results.append([p.detach().clone() for p in model.parameters()])
    for p, q in zip(*results, strict=True):
        assert torch.allclose(p, q, atol=1e-7)
