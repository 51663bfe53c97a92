"""A load_state_dict that replaces some of the model's weights and keeps the others on purpose: the model's own
state dict updated with pretrained layers (``state.update(pretrained)``), or with a re-initialized head. The
entries it keeps are the model's live tensors, which is how the state dict was meant; the restore of a best state
kept by reference, in which no weight changes, is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: restored weights"


def _blobs(n=256):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 6, generator=g), y


def _train(load: str):
    torch.manual_seed(0)
    x, y = _blobs()
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    pretrained = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with doctor.watch(model, opt, every=5) as w:
        best = model.state_dict()  # by reference: follows every update
        for epoch in range(2):
            for i in range(0, len(x), 32):
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + 32])
            if load == "pretrained_layer" and epoch == 0:  # the forum's partial load: matching keys replaced
                state = model.state_dict()
                state.update({k: v for k, v in pretrained.state_dict().items() if k.startswith("0.")})
                model.load_state_dict(state)
            if load == "new_head" and epoch == 0:  # the head re-initialized, the body kept
                state = model.state_dict()
                state["2.weight"] = 0.01 * torch.randn(3, 32)
                state["2.bias"] = torch.zeros(3)
                model.load_state_dict(state)
        if load == "best_by_reference":
            model.load_state_dict(best)
    return w.report(), model, pretrained


@pytest.mark.parametrize("load", ["pretrained_layer", "new_head"])
def test_a_state_dict_that_replaces_some_weights_is_not_a_no_op_restore(load):
    report, model, pretrained = _train(load)
    assert NAME not in report.checks
    if load == "pretrained_layer":  # the oracle: the load replaced those weights (training moved them on after)
        assert not torch.equal(model[0].weight, pretrained[0].weight)


def test_restoring_a_best_state_kept_by_reference_is_still_named():
    report, _, _ = _train("best_by_reference")
    assert report[NAME].status == "warn" and "4 of 4 parameters" in report[NAME].value
