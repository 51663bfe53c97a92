"""A classifier whose last Linear layer is followed by a BatchNorm1d on its scores: in training each class's score
is normalized over the batch (mean beta, std |gamma|), so the scores' range is gamma's. doctor.check names it as
the output layer under a loss that wants logits, and doctor.watch as `loop: output layer` whatever the loss's own
verdict (a sum, a loss counted twice); a BatchNorm between hidden layers, and an embedding model ending in a
BatchNorm under a regression-style metric loss, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

pytestmark = pytest.mark.slow  # each test trains a user's loop (0.1-0.6 s): the fast set keeps its budget

NAME = "output layer"
LOOP_NAME = "loop: output layer"


def _blobs(n=256, d=8, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(classes, d, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


class Classifier(nn.Module):
    """Two hidden layers; ``norm`` places a BatchNorm1d on the scores ("scores") or on the hidden units
    ("hidden")."""

    def __init__(self, norm: str, outputs: int = 4):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 64), nn.Linear(64, 64)
        self.bn_hidden = nn.BatchNorm1d(64) if norm == "hidden" else nn.Identity()
        self.head = nn.Linear(64, outputs)
        self.bn_out = nn.BatchNorm1d(outputs) if norm == "scores" else None

    def forward(self, x):
        h = F.relu(self.bn_hidden(self.fc2(F.relu(self.fc1(x)))))
        z = self.head(h)
        return self.bn_out(z) if self.bn_out is not None else z


def _output_layer(report):
    return next((v for v in report if v.check == NAME), None)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
@pytest.mark.parametrize("norm", ["scores", "hidden", "none"])
def test_a_batchnorm_after_the_last_linear_is_named_under_cross_entropy(norm):
    torch.manual_seed(0)
    x, y = _blobs()
    model = Classifier(norm)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3))
    verdict = _output_layer(report)
    if norm == "scores":
        assert verdict is not None and verdict.status == "warn"
        assert "BatchNorm1d module 'bn_out'" in verdict.value
        assert "remove the BatchNorm after the last layer" in verdict.advice
        initial = next(v for v in report if v.check == "initial loss")
        assert initial.status == "pass" or f"see '{NAME}'" in initial.advice  # not blamed on an init or a scaling
        model.train()  # the oracle: in training the scores' std over the batch is |gamma| per class
        with torch.no_grad():
            z = model(x)
        assert torch.allclose(z.std(0, unbiased=False), model.bn_out.weight.abs(), atol=1e-3)
    else:
        assert verdict is None


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_multi_label_scores_under_bce_with_logits_are_named_too():
    torch.manual_seed(0)
    x, labels = _blobs()
    y = F.one_hot(labels, 4).float()
    y[:, 0] = (x[:, 0] > 0).float()  # a second label on some rows
    model = Classifier("scores")
    report = doctor.check(model, x, y, nn.BCEWithLogitsLoss())
    verdict = _output_layer(report)
    assert verdict is not None and verdict.status == "warn" and "BCE with logits" in verdict.advice


def test_an_embedding_ending_in_a_batchnorm_under_a_regression_loss_passes():
    torch.manual_seed(0)
    x, _ = _blobs()
    target = torch.randn(len(x), 16, generator=torch.Generator().manual_seed(5))
    model = Classifier("scores", outputs=16)  # a BNNeck-style embedding: its batch-normalized features are the output
    report = doctor.check(model, x, target, nn.MSELoss())
    assert _output_layer(report) is None


def _watch(model, loss_fn, x, y, epochs=2, opt=None):
    """A user's loop under doctor.watch: Adam (or ``opt``), a shuffled DataLoader, the loss given to w.step."""
    opt = opt or torch.optim.Adam(model.parameters(), 1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for xb, yb in loader:
                loss = loss_fn(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w.report()


def _loop_output_layer(report):
    return next((v for v in report if v.check == LOOP_NAME), None)


@pytest.mark.parametrize("norm", ["scores", "hidden", "none"])
def test_watch_names_a_batchnorm_after_the_last_linear_under_cross_entropy(norm):
    torch.manual_seed(0)
    x, y = _blobs()
    report = _watch(Classifier(norm), F.cross_entropy, x, y)
    assert report["loop: loss"].status == "pass", report["loop: loss"]  # the loss itself is a plain mean
    verdict = _loop_output_layer(report)
    if norm == "scores":
        assert verdict is not None and verdict.status == "warn", verdict
        assert "BatchNorm1d module 'bn_out'" in verdict.value and "cross-entropy" in verdict.advice
        assert "remove the BatchNorm after the last layer" in verdict.advice
    else:
        assert verdict is None, verdict


@pytest.mark.parametrize("norm", ["scores", "none"])
def test_watch_names_it_under_bce_with_logits(norm):
    torch.manual_seed(0)
    x, labels = _blobs()
    y = F.one_hot(labels, 4).float()
    y[:, 0] = (x[:, 0] > 0).float()
    report = _watch(Classifier(norm), nn.BCEWithLogitsLoss(), x, y)
    assert report["loop: loss"].status == "pass", report["loop: loss"]
    verdict = _loop_output_layer(report)
    if norm == "scores":
        assert verdict is not None and verdict.status == "warn" and "BCE with logits" in verdict.advice, verdict
        assert "'bn_out'" in verdict.value
    else:
        assert verdict is None, verdict


@pytest.mark.parametrize("norm", ["scores", "hidden"])
def test_watch_names_it_beside_a_summed_cross_entropy(norm):
    """``reduction='sum'`` makes the loss's own verdict an info; the BatchNorm on the scores is named all the
    same, and one between hidden layers is not."""
    torch.manual_seed(0)
    x, y = _blobs()
    model = Classifier(norm)
    opt = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9)  # 0.1 / 32 for the summed loss
    report = _watch(model, nn.CrossEntropyLoss(reduction="sum"), x, y, opt=opt)
    loss = report["loop: loss"]
    assert loss.status == "info" and "reduction='sum'" in loss.value, loss
    verdict = _loop_output_layer(report)
    if norm == "scores":
        assert verdict is not None and verdict.status == "warn" and "'bn_out'" in verdict.value, verdict
    else:
        assert verdict is None, verdict


@pytest.mark.parametrize("norm", ["scores", "none"])
def test_watch_names_it_beside_a_loss_counted_twice(norm):
    """A loss counted twice is ``loop: loss``'s own warning; the BatchNorm on the scores is a second cause, named
    beside it."""
    torch.manual_seed(0)
    x, y = _blobs()
    report = _watch(Classifier(norm), lambda out, t: F.cross_entropy(out, t) + F.cross_entropy(out, t), x, y)
    loss = report["loop: loss"]
    assert loss.status == "warn" and "2x that of its mean" in loss.value, loss
    verdict = _loop_output_layer(report)
    assert (verdict is not None and verdict.status == "warn") if norm == "scores" else verdict is None, verdict


def _nt_xent(z1, z2, temperature=0.5):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z1)
    return F.cross_entropy(sim, torch.cat([torch.arange(b, 2 * b), torch.arange(b)]))


def test_watch_passes_an_embedding_ending_in_a_batchnorm_under_a_contrastive_loss():
    torch.manual_seed(0)
    x, _ = _blobs()
    model = Classifier("scores", outputs=16)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    with doctor.watch(model, opt) as w:
        for _ in range(2):
            for (xb,) in torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=32, shuffle=True):
                loss = _nt_xent(model(xb + 0.1 * torch.randn_like(xb)), model(xb + 0.1 * torch.randn_like(xb)))
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    verdicts = w.report().verdicts
    assert not any("BatchNorm1d module" in v.value for v in verdicts), verdicts


def test_watch_passes_an_embedding_ending_in_a_batchnorm_under_a_regression_loss():
    torch.manual_seed(0)
    x, _ = _blobs()
    target = torch.randn(len(x), 16, generator=torch.Generator().manual_seed(5))
    verdicts = _watch(Classifier("scores", outputs=16), F.mse_loss, x, target).verdicts
    assert not any("BatchNorm1d module" in v.value for v in verdicts), verdicts


def test_a_first_loss_far_above_ln_c_defers_to_the_batchnorm_on_the_scores():
    """gamma = 10 gives the scores std 10 per class at the first step, so the first loss stands far above ln 4: the
    BatchNorm explains it, and `loop: loss` says so instead of blaming the init."""
    torch.manual_seed(0)
    x, y = _blobs()
    model = Classifier("scores")
    with torch.no_grad():
        model.bn_out.weight.fill_(10.0)
    report = _watch(model, F.cross_entropy, x, y, epochs=1)
    loss = report["loop: loss"]
    assert loss.status == "info" and loss.value.startswith("first loss"), loss
    assert f"explained by '{LOOP_NAME}'" in loss.value
    assert _loop_output_layer(report).status == "warn"
