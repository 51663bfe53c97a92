"""Label-smoothed cross-entropy on a network trained close to its floor: the gradient of cross-entropy on
softmax(z) can come close to it there, but label smoothing fits it better, and no softmax was ever applied: the
loss is read as smoothed cross-entropy, never as a double softmax (a false fail on a standard recipe)."""

import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler
from torch import nn

from trainwell import doctor


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_label_smoothing_under_sgd_is_not_read_as_a_softmax_before_the_loss():
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(StandardScaler().fit_transform(x[:1400]), dtype=torch.float32)
    y = torch.tensor(y[:1400])
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    with doctor.watch(model, opt) as w:
        for _ in range(6):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 64):
                idx = perm[i:i + 64]
                loss = crit(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x[:200]), y[:200]).item())
    v = {v.check: v for v in w.report().verdicts}["loop: loss"]
    assert v.status == "pass" and "probabilities" not in v.value
    assert "smooth" in v.value  # read with its epsilon
