"""A loop that computes per-example gradients with torch.func (vmap over grad of functional_call on the model, as
DP-SGD does), clips and noises their sum and writes it to p.grad before optimizer.step(): no backward pass. The
watch must not break the transform (its hooks drew random numbers and read storage inside vmap) and must read the
written gradients as gradients."""
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from trainwell import doctor
from trainwell.doctor.script_watch import ScriptWatch


def _dp_sgd(model, steps=8, skip=()):
    torch.manual_seed(0)
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_one(params, xi, yi):
        return F.cross_entropy(functional_call(model, params, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0), randomness="different")  # dropout per example
    with doctor.watch(model, opt, every=3) as w:
        for i in range(steps):
            xb, yb = x[i % 8 * 32:(i % 8 + 1) * 32], y[i % 8 * 32:(i % 8 + 1) * 32]
            grads = per_example({k: v.detach() for k, v in model.named_parameters()}, xb, yb)
            norms = torch.sqrt(sum(g.reshape(32, -1).pow(2).sum(1) for g in grads.values()))
            scale = (1.0 / (norms + 1e-6)).clamp(max=1.0)
            for name, p in model.named_parameters():
                if name in skip:
                    continue
                g = (grads[name] * scale.view(-1, *[1] * (grads[name].dim() - 1))).sum(0)
                p.grad = (g + 0.5 * torch.randn_like(g)) / 32
            opt.step()
            opt.zero_grad()
            with torch.no_grad():
                loss = F.cross_entropy(model(xb), yb)
            w.step(loss, y=yb)
    return w.report()


@pytest.mark.slow  # ~4 s: vmap over grad
def test_per_example_gradients_under_vmap_are_not_broken_and_their_grads_are_read():
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    report = _dp_sgd(model)  # before: vmap raised "called random operation while in randomness error mode"
    learns = report["loop: every trainable parameter learns"]
    assert learns.status == "pass" and "4 parameter tensors held a gradient" in learns.value
    assert not [v for v in report if v.status == "fail"]


def test_a_parameter_the_loop_never_gives_a_gradient_is_still_named():
    report = _dp_sgd(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3)), skip=("0.bias",))
    learns = report["loop: every trainable parameter learns"]
    assert learns.status == "warn" and "never given one: 0.bias" in learns.value


DP_SGD_SCRIPT = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_one(params, xi, yi):
        return F.cross_entropy(functional_call(model, params, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(loss_one), in_dims=(None, 0, 0))
    for i in range(24):
        xb, yb = x[i % 8 * 32:(i % 8 + 1) * 32], y[i % 8 * 32:(i % 8 + 1) * 32]
        grads = per_example({k: v.detach() for k, v in model.named_parameters()}, xb, yb)
        for name, p in model.named_parameters():
            p.grad = grads[name].mean(0) + 0.01 * torch.randn_like(p)
        opt.step()
        opt.zero_grad()
""")


@pytest.mark.slow  # ~3 s: the script under `trainwell watch`
def test_the_script_watch_runs_a_per_example_gradient_loop_and_says_why_it_has_no_curve(tmp_path):
    path = tmp_path / "dp_sgd.py"
    path.write_text(DP_SGD_SCRIPT)
    runner = ScriptWatch(every=10)
    [report] = runner.run(str(path), [])
    assert runner.error is None  # before: the watch's hooks read storage inside vmap and the script raised
    assert report["loop: every trainable parameter learns"].status == "pass"
    curve = report["learning rate (loss curve)"]
    assert curve.status == "skip" and "no training loss seen on the 23 optimizer steps" in curve.value
