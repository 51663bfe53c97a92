"""Poisson regression of counts: ``nn.PoissonNLLLoss(log_input=True)`` reads the outputs as log-rates. A model
that ends in a Softplus (its outputs meant as the rate) then has a rate exp(out) >= 1 that cannot fit counts of
0; the same Softplus with ``log_input=False``, or a linear output with ``log_input=True``, is healthy."""

import pytest
import torch
from torch import nn

from trainwell import doctor

CHECK = "loop: loss input"


def _counts(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    rate = torch.exp(0.5 * x[:, 0] - 0.3 * x[:, 1] + 0.5)
    return x, torch.poisson(rate, generator=g)


def _watched(softplus, log_input):
    torch.manual_seed(0)
    layers = [nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1)] + ([nn.Softplus()] if softplus else [])
    model = nn.Sequential(*layers)
    loss_fn = nn.PoissonNLLLoss(log_input=log_input)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = _counts(2048)
    with doctor.watch(model, opt, every=10) as w:
        for epoch in range(2):
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
            for i in range(0, len(x), 64):
                idx = order[i : i + 64]
                loss = loss_fn(model(x[idx]).squeeze(1), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return w.report()


def test_the_output_gradient_of_a_poisson_nll_on_log_rates_is_recognised():
    from trainwell.doctor.loop_loss_inputs import read_log_rates

    z = torch.randn(64, 1, dtype=torch.float64, requires_grad=True)
    y = torch.poisson(torch.full((64,), 2.0, dtype=torch.float64))
    nn.PoissonNLLLoss(log_input=True)(z.squeeze(1), y).backward()
    read = read_log_rates(z.detach(), z.grad, y)
    assert read is not None and read["lowest"] == pytest.approx(float(z.detach().min()))
    w = torch.rand(64, 1, dtype=torch.float64, requires_grad=True)  # log_input=False: another gradient
    nn.PoissonNLLLoss(log_input=False)(w.squeeze(1), y).backward()
    assert read_log_rates(w.detach(), w.grad, y) is None


def test_watch_names_a_softplus_output_read_as_log_rates():
    report = _watched(softplus=True, log_input=True)
    fed = report[CHECK]
    assert fed.status == "fail" and "log_input=False" in fed.advice, fed
    assert report["learning rate (loss curve)"].status not in ("warn", "fail")


@pytest.mark.parametrize("softplus, log_input", [(False, True), (True, False)])
def test_watch_passes_log_rates_and_a_positive_rate_read_as_one(softplus, log_input):
    report = _watched(softplus, log_input)
    assert not any(v.check == CHECK for v in report), report


@pytest.mark.parametrize("softplus, log_input, named", [(True, True, True), (False, True, False),
                                                        (True, False, False)])
def test_check_names_a_softplus_output_given_as_log_rates(softplus, log_input, named):
    torch.manual_seed(0)
    layers = [nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 1)] + ([nn.Softplus()] if softplus else [])
    model = nn.Sequential(*layers)
    poisson = nn.PoissonNLLLoss(log_input=log_input)
    x, y = _counts(256)
    report = doctor.check(model, x, y, lambda out, t: poisson(out.squeeze(1), t))
    fed = {v.check: v for v in report.verdicts}.get("loss input")
    if named:
        assert fed is not None and fed.status == "fail" and "log_input=False" in fed.advice, fed
        assert float((y < 1).double().mean()) >= 0.1  # the oracle: counts of 0 a rate >= 1 cannot fit
    else:
        assert fed is None or fed.status == "pass", fed
