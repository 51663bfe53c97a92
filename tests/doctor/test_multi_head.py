"""The doctor on a user's multi-task model: its other heads (a second task's class scores in a tuple or a dict) are
read for a softmax or a bound before their cross-entropy, as the class scores are; healthy heads pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


def _data(n=256, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    digit = (x[:, :4].argmax(1) + 4 * (x[:, 4] > 0)).long()  # 8 classes
    group = x[:, 5:8].argmax(1)  # 3 classes
    parity = (x[:, 8] > 0).long()  # 2 classes
    return x, digit, group, parity


class TwoTasks(nn.Module):
    """A shared body, the 8-class scores and a second head; ``end``: the module the second head ends with."""

    def __init__(self, second: int, end: nn.Module | None = None, as_dict: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(12, 32), nn.ReLU())
        self.scores = nn.Linear(32, 8)
        self.second = nn.Sequential(nn.Linear(32, second), *([end] if end is not None else []))
        self.as_dict = as_dict

    def forward(self, x):
        h = self.body(x)
        a, b = self.scores(h), self.second(h)
        return {"logits": a, "task2": b} if self.as_dict else (a, b)


def _loss_verdict(model, second_targets):
    x, digit, *_ = _data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, len(x), 32):
            out = model(x[i : i + 32])
            a, b = (out["logits"], out["task2"]) if isinstance(out, dict) else out
            loss = F.cross_entropy(a, digit[i : i + 32]) + F.cross_entropy(b, second_targets[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=digit[i : i + 32])
    return next(v for v in w.report().verdicts if v.check == "loop: loss")


@pytest.mark.parametrize("as_dict", [False, True])
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_a_softmax_ending_a_second_three_class_head_is_a_fail_naming_the_head(as_dict):
    _, _, group, _ = _data()
    verdict = _loss_verdict(TwoTasks(3, nn.Softmax(dim=1), as_dict), group)
    head = "out['task2']" if as_dict else "out[1]"
    assert verdict.status == "fail" and f"probabilities on {head}" in verdict.value
    assert _loss_verdict(TwoTasks(3, None, as_dict), group).status == "pass"


@pytest.mark.parametrize("end, status, bound", [(nn.Softmax(dim=1), "warn", "each row summing to 1 (a Softmax"),
                                                (nn.Sigmoid(), "warn", "(a Sigmoid"), (None, "pass", "")])
def test_a_squashed_second_two_class_head_is_a_warning(end, status, bound):
    _, _, _, parity = _data()
    verdict = _loss_verdict(TwoTasks(2, end), parity)
    assert verdict.status == status and bound in verdict.value
    if status == "warn":
        assert "out[1]'s outputs" in verdict.value


def test_the_class_scores_own_failure_comes_before_a_heads():
    _, _, group, _ = _data()

    class Both(TwoTasks):
        def forward(self, x):
            a, b = super().forward(x)
            return a.softmax(1), b

    verdict = _loss_verdict(Both(3, nn.Softmax(dim=1)), group)
    assert verdict.status == "fail" and "on out[1]" not in verdict.value
    assert verdict.value.startswith("cross-entropy is applied to probabilities")


def test_a_regression_head_in_unit_range_beside_the_scores_is_not_read_as_class_scores():
    x, digit, *_ = _data()
    box = torch.rand(len(x), 4)
    model = TwoTasks(4, nn.Sigmoid())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, len(x), 32):
            a, b = model(x[i : i + 32])
            loss = F.cross_entropy(a, digit[i : i + 32]) + F.mse_loss(b, box[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    verdict = next(v for v in w.report().verdicts if v.check == "loop: loss")
    assert verdict.status == "pass", verdict


class BoxAndClass(nn.Module):
    """A detector's two heads on one trunk: class scores and a box (x1, y1, x2, y2) as a dict."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(12, 32), nn.ReLU())
        self.cls, self.box = nn.Linear(32, 5), nn.Linear(32, 4)

    def forward(self, x):
        h = self.trunk(x)
        return {"logits": self.cls(h), "boxes": self.box(h)}


@pytest.mark.parametrize("pixels, status", [(False, "pass"), (True, "warn")])
def test_watch_reads_box_targets_given_beside_labels_for_their_scale(pixels, status):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 12, generator=g)
    labels = x[:, :5].argmax(1)
    boxes = torch.sigmoid(x[:, 5:9]) * (224 if pixels else 1)  # in pixels of a 224-wide image, or in [0, 1]
    model = BoxAndClass()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, len(x), 32):
            out, c, b = model(x[i : i + 32]), labels[i : i + 32], boxes[i : i + 32]
            loss = F.cross_entropy(out["logits"], c) + F.smooth_l1_loss(out["boxes"], b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=(c, b))
    verdict = w.report()["loop: labels"]
    assert verdict.status == status, verdict
    if pixels:
        assert verdict.value.startswith("targets [1]: floating-point targets far from unit scale")
