"""A population of a user's own module, its members' states made by the user's own factory."""

import pytest
import torch
from torch import nn

from trainwell.train import Trainer
from trainwell.train.population import PopulationLearner


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.ln, self.b = nn.Linear(6, 16), nn.LayerNorm(16), nn.Linear(16, 3)

    def forward(self, x):
        h = torch.relu(self.ln(self.a(x)))
        return self.b(h), h


def make_model(seed: int) -> Net:
    torch.manual_seed(seed)
    return Net()


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()


@pytest.mark.slow  # the first vmapped step compiles torch.func's batching rules: ~2.5 s
def test_each_member_equals_the_user_s_own_fit_of_its_factory_model():
    x, y = _data()
    lrs = [0.01, 0.05]
    learner = PopulationLearner(Net(), [make_model(s).state_dict() for s in (0, 1)], optimizer="adam", lrs=lrs,
                                weight_decays=[0.0, 0.0])
    trainer = Trainer(learner, epochs=1, batch_size=20, seed=[0, 1])
    trainer.fit((x, y))
    for m, lr in enumerate(lrs):
        model = make_model(m)
        alone = Trainer(model, torch.optim.Adam(model.parameters(), lr=lr), epochs=1, batch_size=20, seed=m).fit((x, y))
        assert trainer.members[m].history[-1]["train_loss"] == pytest.approx(alone.history[-1]["train_loss"], abs=1e-5)


def test_modules_given_for_their_state_dicts_are_named():
    with pytest.raises(TypeError, match=r"states\[0\] is a Net module: give its state_dict\(\)"):
        PopulationLearner(Net(), [make_model(0), make_model(1)], optimizer="adam", lrs=[0.1, 0.1],
                          weight_decays=[0.0, 0.0])


def test_a_state_dict_of_another_architecture_is_named_in_one_line():
    with pytest.raises(ValueError, match=r"^states\[1\] is not a state dict of Net \(missing a.bias, a.weight, "
                                         r"b.bias; unexpected bias, weight\)") as err:
        PopulationLearner(Net(), [Net().state_dict(), nn.Linear(6, 3).state_dict()], optimizer="sgd",
                          lrs=[0.1, 0.1], weight_decays=[0.0, 0.0])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, hint", [("adamw", "AdamW is optimizer='adam' with decay='decoupled'"),
                                        ("nesterov", "Nesterov is optimizer='momentum' with nesterov=True")])
def test_torch_s_optimizer_names_are_translated(name, hint):
    with pytest.raises(ValueError, match=f"population optimizer '{name}' is not supported: {hint}; use one of"):
        PopulationLearner(Net(), [Net().state_dict()], optimizer=name, lrs=[0.1], weight_decays=[0.01])
    # the translation trains: AdamW as a population spells it
    PopulationLearner(Net(), [Net().state_dict()], optimizer="adam", decay="decoupled", lrs=[0.1], weight_decays=[0.01])
