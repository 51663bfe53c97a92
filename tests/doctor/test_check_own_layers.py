"""doctor.check on models written with the less common layers of torch.nn: lazy modules, channels-last
convolutions, frozen BatchNorm backbones. Each gets verdicts, never an exception, and inputs far below unit scale
are named wherever the model does not normalize them away."""

import torch
from torch import nn

from trainwell import doctor


class LazyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.LazyLinear(32)
        self.out = nn.LazyLinear(3)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def _blobs(n=96, d=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :3].argmax(1)


def test_lazy_layers_get_verdicts_and_the_loops_own_initial_weights():
    x, y = _blobs()
    torch.manual_seed(5)
    model = LazyClassifier()
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    assert not report.failed and not report.warnings, report.failed + report.warnings
    after_check = torch.randn(4)
    torch.manual_seed(5)
    twin = LazyClassifier()
    state = torch.get_rng_state()
    twin(x[:2])  # the user's first forward, from the same random state
    torch.set_rng_state(state)
    assert torch.equal(torch.randn(4), after_check)  # check left the random state where it found it
    for (name, p), q in zip(model.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(p, q), name
