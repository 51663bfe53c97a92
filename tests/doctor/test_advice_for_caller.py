"""The init advice speaks to its caller: doctor.check on a user's own model names torch's call
(nn.init.kaiming_normal_) and trainwell.init.apply; the trainwell pipeline's pre-flight, which builds the model from
a config, names the config key (init.scheme)."""

import pytest
import torch
from torch import nn

from trainwell import doctor
from trainwell.config import load_config
from trainwell.pipeline.build import prepare
from trainwell.pipeline.write import preflight


class DeepReLU(nn.Module):
    """A deep ReLU MLP under torch's default init (uniform, std 1/sqrt(3 fan_in)): the signal halves per layer."""

    def __init__(self, d=20, h=64, depth=12, c=4):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d if i == 0 else h, h) for i in range(depth))
        self.act, self.out = nn.ReLU(), nn.Linear(h, c)

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return self.out(x)


@pytest.mark.slow
def test_doctor_check_on_a_users_model_names_torchs_init_call():
    torch.manual_seed(0)
    x, y = torch.randn(256, 20), torch.randint(0, 4, (256,))
    model = DeepReLU()
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    v = report["variance propagation"]
    assert v.status in ("warn", "fail"), v
    assert "nn.init.kaiming_normal_(layer.weight, nonlinearity='relu')" in v.advice
    assert 'trainwell.init.apply(model, "he_normal")' in v.advice and "init.scheme" not in v.advice
    # the advice is right: torch's He init keeps the signal through the same depth
    for layer in model.layers:
        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    assert doctor.check(model, x, y, nn.CrossEntropyLoss())["variance propagation"].status == "pass"


@pytest.mark.slow  # 0.45 s each on a 2-core CPU (RESULTS §51)
def test_the_pipelines_preflight_names_the_config_key():
    prep = prepare(load_config(None, ["data.name=spirals", "model.kind=mlp", "init.scheme=zeros"]))
    symmetry = next(v for v in preflight(prep) if v.check == "symmetry")
    assert symmetry.status == "fail" and "init.scheme = he_normal" in symmetry.advice
    assert "nn.init" not in symmetry.advice
