"""The doctor on fine-tuning with a frozen backbone that holds BatchNorm: ``model.train()`` puts the frozen
BatchNorm layers in train mode too, so their running statistics move with every batch (the backbone no longer
normalizes as it was trained to); ``backbone.eval()`` after ``model.train()`` keeps them. Healthy full fine-tuning
(BatchNorm trainable, in train mode) and a frozen backbone in eval mode pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

D = 16


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(D, 32), nn.BatchNorm1d(32), nn.ReLU(),
                                      nn.Linear(32, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


def _data(n=256):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, D, generator=g) * 2.0 + 1.0  # the new task's inputs: other statistics than pretraining's
    return x, (x[:, 0] > 1.0).long() + (x[:, 1] > 1.0).long()


def _fine_tune(model, opt, mode, epochs=3, batch=8):
    """The user's loop: model.train() each epoch, then ``mode(model)`` (the backbone's own mode, or nothing)."""
    x, y = _data()
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            model.train()
            mode(model)
            for i in range(0, len(x), batch):
                loss = F.cross_entropy(model(x[i : i + batch]), y[i : i + batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[i : i + batch])
    return w.report()


def _frozen(model):
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    return torch.optim.SGD(model.head.parameters(), lr=0.05, momentum=0.9)


def test_a_frozen_backbone_whose_batchnorm_trains_is_named_with_its_fix():
    model = Net()
    opt = _frozen(model)
    before = model.backbone[1].running_mean.clone()
    report = _fine_tune(model, opt, lambda m: None)
    assert (model.backbone[1].running_mean - before).norm() > 0.5  # the oracle: the frozen statistics moved
    v = report["loop: train/eval mode"]
    assert v.status == "warn"
    assert "backbone.1" in v.value and "backbone.4" in v.value
    assert "model.backbone.eval()" in v.advice
    # the loss curve's reading follows from it: no learning-rate advice
    assert report["learning rate (loss curve)"].status == "info"
    assert "train/eval mode" in report["learning rate (loss curve)"].value


@pytest.mark.slow  # ~0.5 s: a watched loop or check run
@pytest.mark.parametrize("setup", ["frozen, backbone.eval()", "full fine-tuning"])
def test_frozen_batchnorm_in_eval_mode_and_full_fine_tuning_pass_where_train_mode_warns(setup):
    """The fix (backbone.eval() after model.train()) and full fine-tuning (BatchNorm trains with the rest) pass;
    the same loop with the frozen backbone left in train mode warns."""
    model = Net()
    opt = _frozen(model) if setup.startswith("frozen") else torch.optim.SGD(model.parameters(), lr=0.05)
    before = model.backbone[1].running_mean.clone()
    report = _fine_tune(model, opt, (lambda m: m.backbone.eval()) if setup.startswith("frozen") else
                        (lambda m: None), epochs=1)
    if setup.startswith("frozen"):
        assert torch.equal(model.backbone[1].running_mean, before)
    assert report["loop: train/eval mode"].status == "pass"
    model = Net()
    assert _fine_tune(model, _frozen(model), lambda m: None, epochs=1)["loop: train/eval mode"].status == "warn"


def test_batchnorm_left_out_of_the_optimizer_counts_as_frozen():
    model = Net()
    opt = torch.optim.SGD(model.head.parameters(), lr=0.05)  # requires_grad left on, the backbone never stepped
    report = _fine_tune(model, opt, lambda m: None, epochs=1)
    assert report["loop: train/eval mode"].status == "warn"


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_frozen_batchnorm_between_trained_layers_gets_the_layer_wise_fix():
    """The BatchNorm layers frozen, the Linear layers around them trained: eval() on the backbone would be wrong
    advice (its common module trains), so the advice names the frozen layers; one frozen layer is named itself."""
    model = Net()
    model.backbone[1].requires_grad_(False)
    model.backbone[4].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    v = _fine_tune(model, opt, lambda m: None, epochs=1)["loop: train/eval mode"]
    assert v.status == "warn" and "backbone.1, backbone.4" in v.value
    assert "model.backbone.eval()" not in v.advice and "each frozen BatchNorm layer" in v.advice
    model = Net()
    model.backbone[4].requires_grad_(False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    v = _fine_tune(model, opt, lambda m: None, epochs=1)["loop: train/eval mode"]
    assert v.status == "warn" and "model.backbone[4].eval()" in v.advice


class OnlineAndTarget(nn.Module):
    """BYOL: an online network and predictor, and a target network, a moving average of the online one, held as a
    submodule with requires_grad off and run in train mode under no_grad (its batch statistics, as the method
    has it)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.online = nn.Sequential(nn.Linear(D, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))
        self.predictor = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 16))
        self.target = __import__("copy").deepcopy(self.online)
        self.target.requires_grad_(False)

    def forward(self, v1, v2):
        p1, p2 = self.predictor(self.online(v1)), self.predictor(self.online(v2))
        with torch.no_grad():
            t1, t2 = self.target(v1), self.target(v2)
        return (4 - 2 * F.cosine_similarity(p1, t2, dim=-1) - 2 * F.cosine_similarity(p2, t1, dim=-1)).mean()

    @torch.no_grad()
    def update_target(self, momentum=0.99):
        for t, o in zip(self.target.parameters(), self.online.parameters(), strict=True):
            t.mul_(momentum).add_(o, alpha=1 - momentum)


def test_a_moving_average_target_network_in_train_mode_is_not_a_frozen_batchnorm():
    x, _ = _data()
    model = OnlineAndTarget()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    before = model.target[1].weight.detach().clone()
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(2):
            model.train()
            for i in range(0, len(x), 32):
                xb = x[i : i + 32]
                loss = model(xb + 0.3 * torch.randn_like(xb), xb + 0.3 * torch.randn_like(xb))
                opt.zero_grad()
                loss.backward()
                opt.step()
                model.update_target()
                w.step(loss)
    assert not torch.equal(before, model.target[1].weight)  # the oracle: the target's weights moved
    assert w.report()["loop: train/eval mode"].status == "pass"
