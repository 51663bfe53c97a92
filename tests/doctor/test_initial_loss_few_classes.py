"""Initial logits of std s add about s^2 / 2 nats to ln C whatever C: with 3 classes a head of std ~0.8 (torch's
and trainwell's default LeCun-scaled last layer behind He-initialized ReLU layers) is near-uniform, while scores of
std 3 are not."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _initial(scale: float, classes: int = 3):
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    y = torch.arange(256) % classes
    model = nn.Sequential(nn.Linear(4, 256), nn.ReLU(), nn.Linear(256, classes))
    nn.init.kaiming_normal_(model[0].weight, nonlinearity="relu")
    nn.init.normal_(model[2].weight, std=scale / math.sqrt(256))
    with torch.no_grad():
        scores = model(x)
    verdict = next(v for v in doctor.check(model, x, y, F.cross_entropy).verdicts if v.check == "initial loss")
    return float(scores.std()), float(F.cross_entropy(scores, y)), verdict


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_logits_of_std_near_one_pass_with_three_classes():
    std, loss, verdict = _initial(1.5)
    assert 1.0 < std < 1.4 and loss > 1.25 * math.log(3)  # beyond 25% of ln 3: the old band called it far
    assert loss - math.log(3) < 0.5
    assert verdict.status == "pass"


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_logits_of_std_three_still_warn():
    std, loss, verdict = _initial(4.0)
    assert std > 2.5 and loss - math.log(3) > 1.0
    assert verdict.status in ("warn", "fail")


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_ten_classes_keep_their_band():
    std, loss, verdict = _initial(1.0, classes=10)
    assert loss < 1.25 * math.log(10) and verdict.status == "pass"
