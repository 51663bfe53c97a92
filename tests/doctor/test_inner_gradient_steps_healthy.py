"""``doctor.watch`` on MAML (Finn et al. 2017): each task's inner step takes ``torch.autograd.grad(inner_loss,
params, create_graph=True)``, which returns the gradients and fills no ``.grad``; the meta-loss over the adapted
weights is then one ``backward()``. ``loop: gradients at optimizer.step()`` must not count the inner
``autograd.grad`` calls as backward passes that ``zero_grad()`` threw away; a ``zero_grad()`` inside a real
gradient accumulation is still named."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from trainwell import doctor

NAME = "loop: gradients at optimizer.step()"


def _task(g):
    amplitude, phase = torch.rand(1, generator=g) * 4 + 1, torch.rand(1, generator=g) * 3
    x = torch.rand(20, 1, generator=g) * 10 - 5
    return x, amplitude * torch.sin(x + phase)


@pytest.fixture(scope="module")
def reports():
    mse = nn.MSELoss()
    out = {}
    for case in ("maml", "zeroed_accumulation"):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with doctor.watch(model, opt, every=5) as w:
            for _ in range(12):
                if case == "maml":
                    meta = 0.0
                    for _ in range(3):  # tasks
                        x, y = _task(g)
                        params = dict(model.named_parameters())
                        inner = mse(functional_call(model, params, (x[:10],)), y[:10])
                        grads = torch.autograd.grad(inner, list(params.values()), create_graph=True)
                        fast = {k: p - 0.01 * gp for (k, p), gp in zip(params.items(), grads, strict=True)}
                        meta = meta + mse(functional_call(model, fast, (x[10:],)), y[10:])
                    opt.zero_grad()
                    (meta / 3).backward()
                    w.step(meta / 3)
                else:  # the bug: zero_grad() before each micro-batch's backward()
                    for _ in range(3):
                        x, y = _task(g)
                        opt.zero_grad()
                        loss = mse(model(x), y)
                        loss.backward()
                    w.step(loss)
                opt.step()
        out[case] = next(v for v in w.report() if v.check == NAME)
    return out


@pytest.mark.slow
def test_maml_inner_autograd_grad_is_not_a_dropped_backward(reports):
    assert reports["maml"].status == "pass", reports["maml"]


@pytest.mark.slow
def test_zero_grad_inside_accumulation_is_still_named(reports):
    assert reports["zeroed_accumulation"].status == "fail", reports["zeroed_accumulation"]
