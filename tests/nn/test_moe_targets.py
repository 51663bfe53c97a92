"""``moe_loss`` and ``responsibilities`` take one (N, D) target row per example; class indices or an (N, 1)
column used to broadcast against the experts' (N, E, D) outputs without an error (a batch of 4 against 4
experts) and give a wrong loss. The oracle is the formula written out per example."""
import math

import pytest
import torch
import torch.nn.functional as F

from trainwell.nn.layers import MixtureOfExperts, moe_loss, responsibilities


def by_hand(outputs, gates, target):
    total = 0.0
    for o, g, d in zip(outputs.tolist(), gates.tolist(), target.tolist(), strict=True):
        total += -math.log(sum(gi * math.exp(-0.5 * sum((a - b) ** 2 for a, b in zip(d, oi, strict=True)))
                               for gi, oi in zip(g, o, strict=True)))
    return total / len(outputs)


def test_one_hot_targets_give_the_papers_loss_in_the_users_loop():
    torch.manual_seed(0)
    model = MixtureOfExperts(5, 3, experts=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    target = F.one_hot(y, 3).float()
    outputs, gates = model(x)
    loss = moe_loss(outputs, gates, target)
    assert loss.item() == pytest.approx(by_hand(outputs.detach(), gates.detach(), target), rel=1e-5)
    assert torch.allclose(responsibilities(outputs, gates, target).sum(1), torch.ones(4))
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("target, fix", [
    (torch.tensor([0, 2, 1, 1]), "F.one_hot(y, 3).float()"),
    (torch.randn(4, 1), "give one target row of the experts' 3 outputs per example"),
    (torch.randn(4), "give one target row")])
@pytest.mark.parametrize("function", [moe_loss, responsibilities])
def test_targets_that_would_broadcast_are_refused(target, fix, function):
    torch.manual_seed(0)
    outputs, gates = MixtureOfExperts(5, 3, experts=4)(torch.randn(4, 5))
    with pytest.raises(ValueError) as err:
        function(outputs, gates, target)
    message = str(err.value)
    assert f"the target has shape {tuple(target.shape)}" in message and "must be (4, 3)" in message
    assert fix in message and len(message.splitlines()) == 1
