"""An optimizer written as a wrapper: Lookahead (Zhang et al. 2019) subclassing ``torch.optim.Optimizer`` around
Adam, its ``__init__`` taking Adam's ``param_groups`` and ``state`` without calling ``Optimizer.__init__``. PyTorch
runs it; ``doctor.watch`` reads its loop as any other (it once failed at ``register_step_pre_hook``)."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.wrapper_optimizers import hookable


class Lookahead(torch.optim.Optimizer):
    def __init__(self, base, k=5, alpha=0.5):
        self.base, self.k, self.alpha, self.count = base, k, alpha, 0
        self.param_groups, self.defaults, self.state = base.param_groups, base.defaults, base.state
        self.slow = [[p.detach().clone() for p in g["params"]] for g in self.param_groups]

    def zero_grad(self, set_to_none=True):
        self.base.zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.base.step(closure)
        self.count += 1
        if self.count % self.k == 0:
            for g, slow in zip(self.param_groups, self.slow, strict=True):
                for p, s in zip(g["params"], slow, strict=True):
                    s.add_(p - s, alpha=self.alpha)
                    p.copy_(s)
        return loss


def test_a_lookahead_wrapper_is_read_as_its_loop():
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = (x[:, :4].sum(1) > 0).long()
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = Lookahead(torch.optim.Adam(model.parameters(), lr=3e-3))
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for rows in torch.randperm(448).split(32):
                loss = F.cross_entropy(model(x[rows]), y[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[448:]), y[448:]).item())
    verdicts = w.report().verdicts
    bad = [v for v in verdicts if v.status in ("warn", "fail")]
    assert not bad, bad
    held = {v.check: v for v in verdicts}["loop: optimizer holds the parameters"]
    assert held.status == "pass", held
    assert opt.count == 42  # the wrapper's own step ran each time, with the hooks


def test_an_optimizer_built_as_torch_builds_it_is_left_as_it_is():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=0.1)
    hooks = opt._optimizer_step_pre_hooks
    hookable(opt)
    assert opt._optimizer_step_pre_hooks is hooks
