"""Early stopping written by hand: keep the weights of the best validation epoch, restore them after the loop.
``best = model.state_dict()`` keeps references to the live weights, so ``model.load_state_dict(best)`` restores
nothing (the model ends with its last weights): watch names it, also when the restore runs after the loop inside
the ``with`` block. A deep copy, cloned tensors and a checkpoint read back with ``torch.load`` pass."""

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: restored weights"


def _verdict(report):
    return next((v for v in report if v.check == NAME), None)


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (n,), generator=g)
    return centers[y] + torch.randn(n, 6, generator=g), y


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(6, 32)
        self.norm = nn.BatchNorm1d(32)
        self.out = nn.Linear(32, 3)

    def forward(self, x):
        return self.out(F.relu(self.norm(self.hidden(x))))


def _keep(model, how):
    state = model.state_dict()
    if how == "deepcopy":
        return copy.deepcopy(state)
    if how == "clone":
        return {k: v.clone() for k, v in state.items()}
    if how == "saved":
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        return torch.load(buffer)
    return state  # by reference


def _train(how, restore_inside=True):
    torch.manual_seed(0)
    x, y = _data(512, 0)
    xv, yv = _data(128, 1)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = Classifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    best, best_loss = None, float("inf")
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(4):
            model.train()
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            with torch.no_grad():
                val = float(F.cross_entropy(model(xv), yv))
            w.validate(val)
            if val < best_loss:
                best, best_loss = _keep(model, how), val
        if restore_inside:
            model.load_state_dict(best)
    if not restore_inside:
        model.load_state_dict(best)
    return w.report(), model, best


@pytest.mark.parametrize("how", ["reference", "deepcopy", "clone", "saved"])
@pytest.mark.slow  # 0.19 s each on a 2-core CPU (RESULTS §51)
def test_a_best_state_kept_by_reference_is_named_at_its_restore(how):
    report, model, best = _train(how)
    verdict = _verdict(report)
    restored = all(torch.equal(model.state_dict()[k], best[k]) for k in best)
    assert restored  # the load itself succeeds either way: only the kept copy differs
    if how == "reference":
        assert verdict is not None and verdict.status == "warn"
        assert "copy.deepcopy(model.state_dict())" in verdict.advice and "clone()" in verdict.advice
        assert "no-op" in verdict.value and "6 of 6 parameters" in verdict.value
        assert not any(best[k] is model.state_dict()[k] for k in best)  # detached views, not the parameters
        assert all(best[k].data_ptr() == p.data_ptr() for k, p in model.named_parameters())  # the oracle
    else:
        assert verdict is None
        assert all(best[k].data_ptr() != p.data_ptr() for k, p in model.named_parameters())


@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
def test_a_restore_after_the_with_block_is_not_read_and_leaves_nothing_patched():
    report, _, _ = _train("reference", restore_inside=False)
    assert _verdict(report) is None
    assert nn.Module.load_state_dict.__qualname__ == "Module.load_state_dict"


def test_a_target_network_synced_from_the_watched_model_passes():
    torch.manual_seed(0)
    policy, target = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), \
        nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    x = torch.randn(64, 4)
    with doctor.watch(policy, opt, every=5) as w:
        for step in range(20):
            with torch.no_grad():
                goal = target(x).max(1).values
            loss = F.mse_loss(policy(x).max(1).values, goal + 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            if step % 5 == 4:
                target.load_state_dict(policy.state_dict())  # another module's weights: copied, as intended
    assert _verdict(w.report()) is None


def test_early_stopping_that_keeps_the_highest_validation_loss_is_named():
    """``best_loss = -inf; if val > best_loss:`` (an accuracy's comparison) restores the worst epoch's weights."""
    torch.manual_seed(0)
    x, y = _data(256, 0)
    xv, yv = _data(128, 1)
    reports, kept = {}, {}
    for compare in ("accuracy's", "loss's"):
        torch.manual_seed(0)
        model = Classifier()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        best, best_loss, vals = None, -math.inf if compare == "accuracy's" else math.inf, []
        with doctor.watch(model, opt, every=4) as w:
            for _ in range(4):
                model.train()
                for start in range(0, 256, 32):
                    loss = F.cross_entropy(model(x[start : start + 32]), y[start : start + 32])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss, y=y[start : start + 32])
                model.eval()
                with torch.no_grad():
                    val = float(F.cross_entropy(model(xv), yv))
                w.validate(val)
                vals.append(val)
                if (val > best_loss) if compare == "accuracy's" else (val < best_loss):
                    best, best_loss = copy.deepcopy(model.state_dict()), val
            model.load_state_dict(best)
        reports[compare], kept[compare] = _verdict(w.report()), (best_loss, vals)
    worst, vals = kept["accuracy's"]
    assert worst == max(vals) > 1.1 * min(vals)  # the oracle: the restored weights were the worst epoch's
    verdict = reports["accuracy's"]
    assert verdict is not None and verdict.status == "warn"
    assert f"validation {vals.index(worst) + 1} of 4" in verdict.value and "val_loss < best_loss" in verdict.advice
    assert reports["loss's"] is None


def test_early_stopping_on_accuracy_that_keeps_the_last_epoch_passes():
    """Weights kept for their validation accuracy (>=, the later of ties) while an overconfident model's validation
    loss climbs: the last epoch's weights are kept, the loss's highest, by a comparison that is right."""
    x, y = torch.ones(64, 1), torch.ones(64, 1)  # separable: the one weight grows at every step
    xv, yv = torch.ones(100, 1), torch.cat([torch.ones(70, 1), torch.zeros(30, 1)])  # 30% labelled otherwise
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, 0.5)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    best, best_acc, vals = None, -1.0, []
    with doctor.watch(model, opt, every=2) as w:
        for _ in range(5):
            for start in range(0, 64, 16):
                loss = F.binary_cross_entropy_with_logits(model(x[start : start + 16]), y[start : start + 16])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            with torch.no_grad():
                out = model(xv)
                val = float(F.binary_cross_entropy_with_logits(out, yv))
                acc = float(((out > 0).float() == yv).float().mean())
            w.validate(val)
            vals.append(val)
            if acc >= best_acc:
                best, best_acc = copy.deepcopy(model.state_dict()), acc
        model.load_state_dict(best)
    # the oracle: the validation loss rose at every epoch (0.66 -> 0.95) and the last epoch's weights were kept
    assert all(a < b for a, b in zip(vals, vals[1:], strict=False)) and vals[-1] > 1.1 * vals[0]
    assert torch.equal(best["weight"], model.weight.detach())
    assert _verdict(w.report()) is None
