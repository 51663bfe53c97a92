"""A classifier whose last layer outputs the hidden width (32) while its labels are 0..9: the last Linear forgotten,
or the hidden width passed as the class count. Cross-entropy runs (every label is below 32) and trains; the
labels' verdict names the 22 outputs no label ever reaches, with the first loss against ln 32 and ln 10. The same
loop with the last layer of 10 outputs, and a 32-class problem whose labels reach every output, stay clean."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.output_width import wider_than_labels
from trainwell.doctor.verdict import Verdict


class Net(nn.Module):
    def __init__(self, outputs: int):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, outputs)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def _report(outputs: int, classes: int) -> dict:
    torch.manual_seed(0)
    centers = torch.randn(classes, 20)
    y = torch.randint(0, classes, (640,))
    x = centers[y] + torch.randn(640, 20)
    model = Net(outputs)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, yb in loader:
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return {v.check: v for v in w.report()}


def test_a_last_layer_of_the_hidden_width_is_named_against_the_labels():
    labels = _report(outputs=32, classes=10)["loop: labels"]
    assert labels.status == "warn"
    assert "scores 32 classes" in labels.value and "are 0..9: 22 outputs are never a label" in labels.value
    assert f"ln 32 = {math.log(32):.3g}" in labels.value and "nn.Linear(..., 10)" in labels.advice


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_the_fixed_head_and_a_full_label_set_pass():
    assert _report(outputs=10, classes=10)["loop: labels"].status == "pass"
    assert _report(outputs=32, classes=32)["loop: labels"].status == "pass"


def test_labels_that_skip_a_class_or_fill_half_of_the_outputs_are_left_alone():
    passed = Verdict("loop: labels", "pass", "-", "-")
    steps = [{"form": "cross_entropy", "loss_weight": 1.0, "classes": 20}] * 5
    half = [torch.arange(10).repeat(20)[i * 40:(i + 1) * 40] for i in range(5)]  # 0..9 of 20 outputs: read
    assert wider_than_labels(passed, half, steps, False, None).status == "warn"
    eleven = [y.clamp_max(8) for y in half] + [torch.tensor([10] * 40)]  # 0..10 with 9 missing: a gap, left alone
    assert wider_than_labels(passed, eleven, steps, False, None) is passed
    assert wider_than_labels(passed, half, steps, True, None) is passed  # several heads: widths differ
    wide = [{**s, "classes": 18} for s in steps]  # 10 of 18 outputs: more than half used
    assert wider_than_labels(passed, half, wide, False, None) is passed
