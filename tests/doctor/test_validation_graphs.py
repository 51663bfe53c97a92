"""Validation forwards in eval mode with gradients enabled (``model.eval()`` without ``torch.no_grad()``) build
graphs no backward pass uses. Validation under ``no_grad``/``inference_mode``, Monte Carlo dropout (train mode under
``no_grad``), and eval-mode forwards that a backward reaches (frozen BatchNorm statistics while fine-tuning,
adversarial examples from input gradients) pass; so does a teacher in eval mode under ``no_grad``."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

CHECK = "loop: validation without no_grad"


def _data():
    torch.manual_seed(0)
    x, xv = torch.randn(192, 10), torch.randn(128, 10)
    return x, (x[:, 0] + x[:, 1] > 0).long(), xv, (xv[:, 0] + xv[:, 1] > 0).long()


def _model():
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def _run(validate, train_mode=True, attack=False, epochs=2, batch=32):
    """A plain loop; ``validate(model, xv, yv)`` returns the validation loss (a float)."""
    x, y, xv, yv = _data()
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            model.train(train_mode)  # eval mode while training: BatchNorm's statistics frozen for fine-tuning
            for i in range(0, len(x), batch):
                xb, yb = x[i : i + batch], y[i : i + batch]
                if attack:  # FGSM in eval mode: the input gradient of the loss
                    model.eval()
                    xa = xb.clone().requires_grad_(True)
                    (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yb), xa)
                    xb = (xb + 0.1 * g.sign()).detach()
                    model.train()
                opt.zero_grad()
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
            model.eval()
            w.validate(validate(model, xv, yv))
    return [v for v in w.report().verdicts if v.check == CHECK]


def _batches(xv, yv):
    return zip(xv.split(32), yv.split(32), strict=True)


def _with_grad(model, xv, yv):
    return sum(F.cross_entropy(model(xb), yb).item() for xb, yb in _batches(xv, yv)) / 4


def _summed_tensors(model, xv, yv):
    val_loss = 0
    for xb, yb in _batches(xv, yv):
        val_loss += F.cross_entropy(model(xb), yb)
    return val_loss / 4


def _no_grad(model, xv, yv):
    with torch.no_grad():
        return _with_grad(model, xv, yv)


def _inference_mode(model, xv, yv):
    with torch.inference_mode():
        return _with_grad(model, xv, yv)


def test_validation_with_gradients_enabled_is_named():
    found = _run(_with_grad)
    assert len(found) == 1 and found[0].status == "warn"
    assert found[0].value.startswith("8 of 8 validation forwards ran in eval mode with gradients enabled")
    assert "torch.no_grad()" in found[0].advice and "still alive" not in found[0].value


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # float(val_loss) in validate
def test_a_running_sum_of_validation_losses_keeping_every_graph_is_said_so():
    found = _run(_summed_tensors)
    assert len(found) == 1
    assert "in 2 of 2 validations every batch's graph was still alive at w.validate()" in found[0].value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_validation_under_no_grad_or_inference_mode_passes():
    assert not _run(_no_grad)
    assert not _run(_inference_mode, epochs=1)


def test_monte_carlo_dropout_under_no_grad_passes():
    def sampled(model, xv, yv):
        model.train()  # dropout on: the mean of 4 passes
        with torch.no_grad():
            return float(F.cross_entropy(torch.stack([model(xv) for _ in range(4)]).mean(0), yv))
    assert not _run(sampled, epochs=1)


def test_eval_mode_forwards_that_a_backward_reaches_pass():
    """Fine-tuning in eval mode (BatchNorm statistics frozen) and adversarial examples from input gradients, both
    in training and in the validation (FGSM on the validation inputs, then scored under no_grad)."""
    def adversarial(model, xv, yv):
        xa = xv.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.cross_entropy(model(xa), yv), xa)
        with torch.no_grad():
            return float(F.cross_entropy(model(xv + 0.1 * g.sign()), yv))
    assert not _run(_no_grad, train_mode=False, epochs=1)
    assert not _run(adversarial, attack=True, epochs=1)


def test_a_teacher_in_eval_mode_under_no_grad_passes():
    x, y, xv, yv = _data()
    teacher, student = _model().eval(), _model()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    with doctor.watch(student, opt) as w:
        for i in range(0, len(x), 32):
            with torch.no_grad():
                soft = F.softmax(teacher(x[i : i + 32]) / 2, dim=1)
            loss = F.kl_div(F.log_softmax(student(x[i : i + 32]) / 2, dim=1), soft, reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
        student.eval()
        w.validate(_no_grad(student, xv, yv))
    assert not [v for v in w.report().verdicts if v.check == CHECK]


SCRIPT = """
import sys
import contextlib
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
x, xv = torch.randn(192, 10), torch.randn(128, 10)
y, yv = (x[:, 0] + x[:, 1] > 0).long(), (xv[:, 0] + xv[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(4):
    model.train()
    for i in range(0, len(x), 32):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad() if sys.argv[1] == "no_grad" else contextlib.nullcontext():
        val = F.cross_entropy(model(xv), yv).item()  # the whole validation set in one forward
with torch.no_grad():  # the final accuracy on both splits
    accuracy = [(model(a).argmax(1) == b).float().mean().item() for a, b in ((x, y), (xv, yv))]
"""


@pytest.mark.slow  # 0.5 s: two short scripts under trainwell watch
def test_under_trainwell_watch_a_validation_with_gradients_in_one_forward_is_named(tmp_path):
    """``trainwell watch`` hands the validation over at the next step, after that step's training forward: the
    forward a backward reached is not counted as the validation's (else 4 of the 9 forwards would not be most).
    The last validation's count holds the final accuracy's forward on the training set; its forward on the
    validation set again begins a validation of its own (validation_passes.py), with no loss call: never handed
    over, so 4 of 5."""
    from trainwell.doctor.script_watch import watch_script

    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    (bug,), (fixed,) = (watch_script(str(path), [side], every=5) for side in ("with_grad", "no_grad"))
    assert bug[CHECK].status == "warn" and bug[CHECK].value.startswith("4 of 5 validation forwards")
    assert CHECK not in [v.check for v in fixed if v.status in ("warn", "fail")]
