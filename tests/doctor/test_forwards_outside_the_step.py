"""Forwards with gradients enabled that no backward pass uses (a validation in eval mode without ``torch.no_grad()``,
a second ``model(x)`` after the step to log the training accuracy) are not read as an observed step's training
forwards: the loop's verdicts are those of the same loop with the extra forwards under ``no_grad``. Gradient
accumulation, an L-BFGS closure and a two-forward (siamese) loss keep every forward they backpropagate."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

GRAD_CHECK = "loop: validation without no_grad"


def _agree(with_grad: dict, without: dict) -> bool:
    """The same verdicts, but for those that defer to the warning on the validation's gradients."""
    deferred = {check for check, (_, value) in with_grad.items() if GRAD_CHECK in str(value)}
    return {k: v for k, v in with_grad.items() if k not in deferred} == \
        {k: v for k, v in without.items() if k not in deferred}


def _data(task: str, n: int, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    if task == "mse":
        y = x[:, :1] * 2 + x[:, 1:2]
    else:
        y = (x[:, :1] > 0).float()
    return x * scale, y


def _loss(task: str, out, y):
    return F.mse_loss(out, y) if task == "mse" else F.binary_cross_entropy_with_logits(out, y)


def _run(task: str, grad: bool, *, log_accuracy: str | None = None, accumulate: int = 1, val_batch: int = 64,
         every: int = 5, val_scale: float = 1.0, dropout: float = 0.0):
    """A plain loop: a validation before training and after each epoch of 4 steps (with ``every=5`` the one after
    the first epoch comes just before the observed step 4), with or without gradients enabled; ``log_accuracy``:
    'after_step' (a second forward in train mode) or 'before_step' (in eval mode, between backward and step)."""
    torch.manual_seed(0)
    x, y = _data(task, 16 * 4 * accumulate, 1)
    xv, yv = _data(task, 128, 2, val_scale)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def validate() -> float:
        model.eval()
        with torch.set_grad_enabled(grad):
            total = sum(_loss(task, model(xb), yb).item() for xb, yb in zip(xv.split(val_batch),
                                                                            yv.split(val_batch), strict=True))
        model.train()
        return total / len(xv.split(val_batch))

    def accuracy(xb, yb) -> torch.Tensor:  # the training accuracy from a second forward, gradients left on
        model.train(log_accuracy == "after_step")
        with torch.set_grad_enabled(grad):
            correct = ((model(xb) > 0).float() == yb).float().mean()
        model.train()
        return correct

    with doctor.watch(model, opt, every=every) as w:
        w.validate(validate())
        for _ in range(2):
            for i in range(0, len(x), 16 * accumulate):
                opt.zero_grad()
                for j in range(i, i + 16 * accumulate, 16):
                    loss = _loss(task, model(x[j:j + 16]), y[j:j + 16]) / accumulate
                    loss.backward()
                if log_accuracy == "before_step":
                    accuracy(x[j:j + 16], y[j:j + 16])
                opt.step()
                if log_accuracy == "after_step":
                    accuracy(x[j:j + 16], y[j:j + 16])
                w.step(loss * accumulate, y=y[j:j + 16])
            w.validate(validate())
    return {v.check: (v.status, v.value) for v in w.report().verdicts if v.check != GRAD_CHECK}


@pytest.mark.parametrize("task", ["bce", "mse"])
def test_a_validation_without_no_grad_is_not_read_as_the_training_step(task):
    with_grad, without = _run(task, grad=True), _run(task, grad=False)
    assert _agree(with_grad, without)
    status, value = with_grad["loop: loss"]
    assert status == "pass"
    assert "mean squared error" in value if task == "mse" else "binary cross-entropy" in value


def test_a_training_accuracy_forward_with_gradients_is_not_read_as_the_training_step():
    with_grad = _run("bce", grad=True, log_accuracy="after_step")
    assert _agree(with_grad, _run("bce", grad=False, log_accuracy="after_step"))
    assert with_grad["loop: loss"][0] == "pass"


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_an_eval_mode_accuracy_forward_before_the_step_is_not_the_training_mode():
    with_grad = _run("bce", grad=True, log_accuracy="before_step", dropout=0.1)
    assert _agree(with_grad, _run("bce", grad=False, log_accuracy="before_step", dropout=0.1))
    assert with_grad["loop: train/eval mode"][0] == "pass"


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_validation_of_many_batches_does_not_take_the_steps_input_readings():
    with_grad, without = _run("mse", grad=True, val_batch=8), _run("mse", grad=False, val_batch=8)
    assert with_grad["loop: inputs"] == without["loop: inputs"]
    assert _agree(with_grad, without)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_accumulated_micro_batches_are_all_the_steps_forwards():
    with_grad, without = _run("mse", grad=True, accumulate=3), _run("mse", grad=False, accumulate=3)
    assert _agree(with_grad, without)
    assert with_grad["loop: loss"][0] == "pass"


def test_raw_validation_inputs_are_named_for_a_validation_without_no_grad():
    """Standardized training features beside validation features 8x their scale."""
    with_grad, without = _run("mse", grad=True, val_scale=8.0), _run("mse", grad=False, val_scale=8.0)
    assert with_grad["loop: validation inputs"][0] == "warn"
    assert with_grad["loop: validation inputs"] == without["loop: validation inputs"]


def _lbfgs(grad: bool) -> dict:
    torch.manual_seed(0)
    x, y = _data("mse", 64, 1)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=4)
    with doctor.watch(model, opt) as w:
        for _ in range(4):
            model.eval()
            with torch.set_grad_enabled(grad):
                w.validate(float(F.mse_loss(model(x[:32]), y[:32])))
            model.train()

            def closure():
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                return loss
            w.step(opt.step(closure).detach(), y=y)
    return {v.check: (v.status, v.value) for v in w.report().verdicts if v.check != GRAD_CHECK}


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_an_lbfgs_closures_forwards_are_the_steps():
    assert _agree(_lbfgs(True), _lbfgs(False))


def _siamese(grad: bool) -> dict:
    torch.manual_seed(0)
    a, b = torch.randn(96, 8), torch.randn(96, 8)
    same = (a[:, 0] * b[:, 0] > 0).float()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def validate() -> float:
        model.eval()
        with torch.set_grad_enabled(grad):
            d = (model(a[64:]) - model(b[64:])).pow(2).sum(1)
            loss = float(F.binary_cross_entropy_with_logits(1.0 - d, same[64:]))
        model.train()
        return loss

    with doctor.watch(model, opt) as w:
        w.validate(validate())
        for i in range(0, 64, 16):
            opt.zero_grad()
            d = (model(a[i:i + 16]) - model(b[i:i + 16])).pow(2).sum(1)
            loss = F.binary_cross_entropy_with_logits(1.0 - d, same[i:i + 16])
            loss.backward()
            opt.step()
            w.step(loss, y=same[i:i + 16])
        w.validate(validate())
    return {v.check: (v.status, v.value) for v in w.report().verdicts if v.check != GRAD_CHECK}


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_two_forward_loss_keeps_both_forwards():
    assert _agree(_siamese(True), _siamese(False))
