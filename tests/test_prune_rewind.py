"""Lottery-ticket rounds written by the user on their own CNN: train, prune 20% of each layer's survivors (the
output layer 10%), rewind the survivors to θ₀ with ``prune.rewind``, retrain; the oracle is θ₀ * mask and the
paper's densities."""
import copy

import pytest
import torch
from torch import nn

from trainwell import prune


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.fc = nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.c1(x))), 2)
        return self.fc(torch.relu(self.c2(x)).flatten(1))


def train(model, x, y, steps=5):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def weights(model):
    return {name: m.weight.detach().clone() for name, m in prune.prunable(model)}


def test_rounds_rewind_the_survivors_to_theta0_and_keep_the_pruned_at_zero():
    torch.manual_seed(0)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    model = SmallCnn()
    theta0 = copy.deepcopy(model.state_dict())
    train(model, x, y)
    masks = None
    for round_ in range(1, 4):
        masks = prune.magnitude_masks(model, 0.2, output_layer="fc", masks=masks)
        prune.rewind(model, theta0, masks)
        for name, w in weights(model).items():
            assert torch.equal(w, theta0[f"{name}.weight"] * masks[name])
        assert torch.equal(model.bn.running_mean, theta0["bn.running_mean"])  # buffers rewound too
        train(model, x, y)
        for name, w in weights(model).items():
            assert bool((w[masks[name] == 0] == 0).all())
        density = prune.sparsity_report(masks)["layers"]
        assert density["c2"]["density"] == pytest.approx(0.8 ** round_, abs=0.01)
        assert density["fc"]["density"] == pytest.approx(0.9 ** round_, abs=0.01)


def test_rewind_takes_a_pruned_models_state_and_the_models_own_masks():
    torch.manual_seed(1)
    model = SmallCnn()
    masks = prune.magnitude_masks(model, 0.5, output_layer="fc")
    prune.apply_masks(model, masks)
    snapshot = copy.deepcopy(model.state_dict())  # weight_orig / weight_mask keys: late rewinding's step K
    train(model, torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,)))
    prune.rewind(model, snapshot)
    for name, w in weights(model).items():
        assert torch.equal(w, snapshot[f"{name}.weight_orig"] * masks[name])


@pytest.mark.parametrize("state, expected", [
    (lambda s: {**s, "fc.weight": torch.zeros(2, 128)}, "the state's 'fc.weight' has shape (2, 128) but the "
     "model's is (3, 128)"),
    (lambda s: {k: v for k, v in s.items() if not k.startswith("bn.")}, "the state has no 'bn.weight'"),
    (lambda s: {**s, "head.weight": torch.zeros(3, 3)}, "the state has 'head.weight' (shape (3, 3)), which the "
     "model does not have"),
], ids=["shape", "missing", "extra"])
def test_rewinding_to_another_architecture_names_the_parameter_and_leaves_the_model_as_it_was(state, expected):
    model = SmallCnn()
    prune.apply_masks(model, prune.magnitude_masks(model, 0.2, output_layer="fc"))
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError) as err:
        prune.rewind(model, state(SmallCnn().state_dict()))
    message = str(err.value)
    assert message.startswith(f"rewind: {expected}") and len(message.splitlines()) == 1
    after = model.state_dict()  # still pruned: weight_orig / weight_mask, the same values
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
