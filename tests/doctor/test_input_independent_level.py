"""A loss that stops at the best input-independent predictor's loss, read by the watch from the loop alone (no
pre-flight): a regressor whose weights are all frozen but its output bias stops at its targets' variance and the
frozen weights are named; a classifier whose labels were shuffled apart from its inputs stays at the labels'
entropy while every layer learns at healthy steps, and the labels are named. The healthy loops beside them (the
intended freeze, aligned labels, labels half noise, a learning rate far too low) are not named so."""

import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.input_independent_level import NAME, label_entropy, target_variance
from trainwell.doctor.script_watch import ScriptWatch

REACH = "loop: every trainable parameter learns"


def _blobs(n, seed, classes=4):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(classes, 8, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + torch.randn(n, 8, generator=g), y


def _mlp(outputs):
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, outputs))


def _train(model, x, y, xv, yv, loss_fn, lr, epochs=5, batch=32):
    """The user's loop: shuffled mini-batches, a validation per epoch, the doctor's watch around it."""
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(epochs):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
            model.eval()
            with torch.no_grad():
                w.validate(loss_fn(model(xv), yv))
    return w.report()


def _targets(x):
    return x[:, 0] - x[:, 1] + 10


def _regression(freeze):
    """A regressor on targets x0 - x1 + 10; ``freeze``: the parameters frozen, by a slice of the list."""
    torch.manual_seed(0)
    (x, _), (xv, _) = _blobs(512, 0), _blobs(128, 1)
    model = _mlp(1)
    for p in freeze(list(model.parameters())):
        p.requires_grad = False
    return _train(model, x, _targets(x), xv, _targets(xv), lambda out, t: F.mse_loss(out.squeeze(1), t), lr=0.003)


def _classification(shuffle=False, noise=0.0, lr=0.1):
    """A classifier on four blobs; ``shuffle``: its labels permuted apart from the inputs; ``noise``: that share
    of the labels drawn at random."""
    torch.manual_seed(0)
    (x, y), (xv, yv) = _blobs(512, 0), _blobs(128, 1)
    if noise:
        g = torch.Generator().manual_seed(2)
        y = torch.where(torch.rand(len(y), generator=g) < noise, torch.randint(0, 4, y.shape, generator=g), y)
    if shuffle:
        y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(7))]
    return _train(_mlp(4), x, y, xv, yv, F.cross_entropy, lr=lr)


def _alarms(report):
    return {v.check: v for v in report if v.status in ("warn", "fail")}


def test_the_baselines_are_the_best_constant_output_s_loss():
    g = torch.Generator().manual_seed(0)
    y = torch.multinomial(torch.tensor([0.5, 0.3, 0.15, 0.05]), 400, replacement=True, generator=g)
    # the best constant scores: the log class frequencies, where the (convex) loss's gradient vanishes
    logits = (torch.bincount(y, minlength=4).double() / len(y)).log().requires_grad_(True)
    loss = F.cross_entropy(logits.expand(len(y), 4), y)
    loss.backward()
    assert float(logits.grad.abs().max()) < 1e-12
    fitted = float(loss.detach())
    padded = torch.cat([y, torch.full((50,), -100)])  # ignored positions are no labels
    assert label_entropy([padded[:225], padded[225:]], 4) == pytest.approx(fitted, rel=1e-6)
    assert label_entropy([y[:10]], 4) is None  # too few labels to say
    t = torch.randn(300, 2, generator=g) * torch.tensor([1.0, 3.0]) + 5
    assert target_variance([t[:100], t[100:]]) == pytest.approx(float(F.mse_loss(t.mean(0).expand_as(t), t)),
                                                                rel=1e-6)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_regressor_frozen_but_its_output_bias_is_named_by_its_frozen_weights():
    reach = _regression(lambda params: params[:-1])[REACH]  # meant [:2]: all but the output bias frozen
    assert reach.status == "warn" and "frozen" in reach.value and "only 4.bias (1) learns" in reach.value, reach
    level = float(reach.value.rsplit("gives ", 1)[1].split(" ")[0])  # every training target seen 5 times
    assert "the targets' variance" in reach.value and level == pytest.approx(
        float(_targets(_blobs(512, 0)[0]).var(unbiased=False)), rel=1e-3), reach
    assert "requires_grad=False" in reach.advice


def test_the_intended_freeze_of_the_first_layer_stays_information():
    report = _regression(lambda params: params[:2])
    assert report[REACH].status == "info" and "frozen: 0.*" in report[REACH].value, report[REACH]
    assert not _alarms(report), _alarms(report)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_labels_shuffled_apart_from_their_inputs_are_named_at_the_input_independent_baseline():
    report = _classification(shuffle=True)
    found = _alarms(report)[NAME]
    assert "input-independent baseline" in found.value and "shuffled separately" in found.advice, found
    assert report["learning rate (loss curve)"].status == "info", report["learning rate (loss curve)"]


@pytest.mark.slow  # ~0.6 s: a watched loop or check run
@pytest.mark.parametrize("loop", [{}, {"noise": 0.5}, {"lr": 1e-5}], ids=["aligned", "half_noise", "rate_too_low"])
def test_healthy_labels_noisy_labels_and_a_low_rate_are_not_read_as_shuffled(loop):
    report = _classification(**loop)
    assert NAME not in _alarms(report), report[NAME]
    if loop.get("lr"):  # the low rate is named by the loss curve, as before
        assert report["learning rate (loss curve)"].status == "warn"


SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
centers = 2.5 * torch.randn(4, 8, generator=g)
y = torch.randint(0, 4, (640,), generator=g)
x = centers[y] + torch.randn(640, 8, generator=g)
BUG = sys.argv[1]
if BUG == "shuffled":  # the labels permuted on their own
    y = y[torch.randperm(640)]
targets = (x[:, 0] - x[:, 1] + 10) if BUG.startswith("frozen") else y
train = DataLoader(TensorDataset(x[:512], targets[:512]), batch_size=32, shuffle=True)
val = DataLoader(TensorDataset(x[512:], targets[512:]), batch_size=64)
outputs = 1 if BUG.startswith("frozen") else 4
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, outputs))
if BUG == "frozen":
    for p in list(model.parameters())[:-1]:
        p.requires_grad = False
loss_fn = nn.MSELoss() if BUG.startswith("frozen") else nn.CrossEntropyLoss()
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.003 if outputs == 1 else 0.1,
                      momentum=0.9)
for epoch in range(5):
    model.train()
    for xb, yb in train:
        opt.zero_grad()
        out = model(xb)
        loss = loss_fn(out.squeeze(1) if outputs == 1 else out, yb)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for xb, yb in val:
            out = model(xb)
            loss_fn(out.squeeze(1) if outputs == 1 else out, yb)
"""


def _script_alarms(tmp_path, bug):
    """The alarms ``trainwell watch train.py BUG`` gives."""
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    runner = ScriptWatch(every=10)
    [report] = runner.run(str(path), [bug])
    assert runner.error is None, runner.error
    return _alarms(report)


@pytest.mark.slow  # ~2.5 s: two runs of an 80-step script
def test_trainwell_watch_names_the_frozen_weights_from_the_unchanged_script(tmp_path):
    frozen = _script_alarms(tmp_path, "frozen")[REACH]
    assert "frozen" in frozen.value and "the targets' variance" in frozen.value, frozen
    assert REACH not in _script_alarms(tmp_path, "frozen_none")


@pytest.mark.slow  # ~2.5 s: two runs of an 80-step script
def test_trainwell_watch_names_shuffled_labels_from_the_unchanged_script(tmp_path):
    assert "input-independent baseline" in _script_alarms(tmp_path, "shuffled")[NAME].value
    assert NAME not in _script_alarms(tmp_path, "aligned")


def test_a_loss_at_the_labels_entropy_defers_to_another_loop_cause():
    """Offsets that leave most of an EmbeddingBag's bags empty keep the loss at the labels' entropy too: where such
    a cause fired, the labels are not suspected (info naming it); alone, the warning stands."""
    from trainwell.doctor.input_independent_level import NAME
    from trainwell.doctor.loop_deferral import defer
    from trainwell.doctor.verdict import Verdict

    unmatched = Verdict(NAME, "warn", "the training loss stayed at the input-independent baseline", "-", "labels?")
    empty = Verdict("loop: inputs reach the outputs", "warn", "different inputs gave the same output", "-", "cumsum")
    read = {v.check: v for v in defer([unmatched, empty])}
    assert read[NAME].status == "info" and "explained by 'loop: inputs reach the outputs'" in read[NAME].value
    assert read["loop: inputs reach the outputs"].status == "warn"
    assert {v.check: v for v in defer([unmatched])}[NAME].status == "warn"
