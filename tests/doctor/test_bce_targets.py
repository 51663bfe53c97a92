"""Binary cross-entropy with logits given class indices as float targets (labels 0..3): the loss has no minimum
and turns NaN, which read as a learning rate far too high. The watch reads the targets against the outputs'
gradient and names them (``loop: binary targets``); the same loop on a real binary target passes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: binary targets"


def _run(index_targets: bool):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    labels = x[:, :4].argmax(1)  # 4 classes
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(2):
            for i in range(0, 256, 32):
                t = labels[i:i + 32].float() if index_targets else (labels[i:i + 32] >= 2).float()
                opt.zero_grad()
                loss = F.binary_cross_entropy_with_logits(model(x[i:i + 32]).squeeze(1), t)
                loss.backward()
                opt.step()
                w.step(loss, y=t)
    return w.report()


@pytest.fixture(scope="module")
def reports():
    return {index: _run(index) for index in (True, False)}


@pytest.mark.slow
def test_class_indices_as_binary_targets_are_named(reports):
    verdicts = {v.check: v for v in reports[True].verdicts}
    v = verdicts[NAME]
    assert v.status == "fail" and "targets in [0, 3]" in v.value and "CrossEntropyLoss" in v.advice
    # the NaN that follows is not blamed on the learning rate
    assert verdicts["learning rate (loss curve)"].status not in ("warn", "fail")


@pytest.mark.slow
def test_a_binary_target_passes(reports):
    assert not any(v.check == NAME for v in reports[False].verdicts)
