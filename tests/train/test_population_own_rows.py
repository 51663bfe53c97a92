"""A population whose members train on rows of their own (``own_rows``: inputs (M, N, ...), labels (M, N)) through
the one fit loop, against the oracle: each member trained alone by the same ``Trainer`` on its own rows."""

import pytest
import torch
from torch import nn

from trainwell.train.population import PopulationLearner
from trainwell.train.trainer import Trainer


def _net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))


def _draw(seed, n=40):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(n, 3, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


@pytest.mark.parametrize("layout", ["auto", "vmap"])
def test_each_member_gets_the_weights_its_own_fit_gives(layout):
    seeds, lrs = [0, 1, 2], [0.1, 0.05, 0.2]
    nets = [_net(s) for s in seeds]
    draws = [_draw(s) for s in seeds]
    learner = PopulationLearner(_net(0), [n.state_dict() for n in nets], optimizer="sgd", lrs=lrs,
                                weight_decays=[0.0] * 3, own_rows=True, layout=layout)
    x, y = torch.stack([d[0] for d in draws]), torch.stack([d[1] for d in draws])
    state = Trainer(learner, epochs=3, batch_size=16, seed=seeds).fit((x, y))
    assert state.step == 3 * 3  # 40 rows in batches of 16: 3 steps an epoch, not 3 x 40 rows' worth
    for m, (net, (xm, ym), s, lr) in enumerate(zip(nets, draws, seeds, lrs, strict=True)):
        Trainer(net, torch.optim.SGD(net.parameters(), lr=lr), epochs=3, batch_size=16, seed=s).fit((xm, ym))
        got = learner.member_state(m)
        for k, v in net.state_dict().items():
            torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6)


def test_refuses_labels_shared_by_the_members():
    learner = PopulationLearner(_net(0), [_net(s).state_dict() for s in (0, 1)], optimizer="sgd", lrs=[0.1, 0.1],
                                weight_decays=[0.0, 0.0], own_rows=True)
    x, y = _draw(0)
    with pytest.raises(ValueError, match=r"own_rows: .*inputs \(2, N, \.\.\.\) and labels \(2, N\)"):
        Trainer(learner, epochs=1, batch_size=16, seed=[0, 1]).fit((torch.stack([x, x]), y))
