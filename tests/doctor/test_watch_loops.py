"""doctor.watch on loops written the way users write them beyond the planted-bug benchmark: several optimizers,
mixed precision with a GradScaler, gradient accumulation, a DataLoader with a short last batch, inputs normalized
inside the model, a bounded last layer, regression targets in raw units, w.step() per micro-batch, and a
torch.compile'd model. Each healthy loop gets no warn/fail from the loop's checks; each bug is named by its cause.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

C = 4


def _blobs(n=1024, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = 2.5 * torch.randn(C, d, generator=torch.Generator().manual_seed(123))
    y = torch.randint(0, C, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def _mlp(d=8, out=C, head=None):
    layers = [nn.Linear(d, 64), nn.ReLU(), nn.Linear(64, out)]
    return nn.Sequential(*layers, *([head] if head is not None else []))


def _loop_alarms(report):
    return [v for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]


def _train(model, opt, x, y, *, epochs=3, batch=64, every=10, step=None, loss_fn=F.cross_entropy):
    """A plain loop; ``step(model, opt, xb, yb, w)`` replaces the inner step when given."""
    torch.manual_seed(1)
    with doctor.watch(model, opt, every=every) as w:
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x) - batch + 1, batch):
                idx = perm[i : i + batch]
                if step is not None:
                    step(model, opt, x[idx], y[idx], w)
                    continue
                loss = loss_fn(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return w


class SparseBag(nn.Module):
    def __init__(self, vocab=200, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, sparse=True)
        self.fc = nn.Linear(dim, C)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(1))


def _sparse_loop(optimizers):
    torch.manual_seed(0)
    ids = torch.randint(0, 200, (512, 6))
    y = ids[:, 0] % C
    model = SparseBag()
    sparse_opt = torch.optim.SparseAdam(list(model.emb.parameters()), lr=0.01)
    dense_opt = torch.optim.Adam(model.fc.parameters(), lr=0.01)
    both = [sparse_opt, dense_opt]

    def step(model, opt, xb, yb, w):
        loss = F.cross_entropy(model(xb), yb)
        for o in both:
            o.zero_grad()
        loss.backward()
        for o in both:
            o.step()
        w.step(loss, y=yb)

    chosen = both if optimizers == "both" else [sparse_opt]
    return _train(model, chosen, ids, y, step=step).report()


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_several_optimizers_stepped_together_hold_every_parameter():
    report = _sparse_loop("both")
    assert report["loop: optimizer holds the parameters"].status == "pass"
    assert not _loop_alarms(report), _loop_alarms(report)
    only_one = _sparse_loop("sparse")  # the dense layer's optimizer not given: its parameters look unheld, but move
    verdict = only_one["loop: optimizer holds the parameters"]
    assert verdict.status == "warn" and "fc" in verdict.value and "list of optimizers" in verdict.advice
    assert "not given to doctor.watch" in verdict.value


def test_watch_refuses_what_is_not_an_optimizer():
    model = _mlp()
    with pytest.raises(TypeError, match="not a torch optimizer"):
        doctor.watch(model, [torch.optim.SGD(model.parameters(), lr=0.1), "adam"])


def _amp_step(scaler, *, twice=False):
    def step(model, opt, xb, yb, w):
        with torch.autocast("cpu", dtype=torch.float16):
            loss = F.cross_entropy(model(xb), yb)
            if twice:
                loss = loss + F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        w.step(loss, y=yb)
    return step


@pytest.mark.slow  # 0.53 s each on a 2-core CPU (RESULTS §51)
def test_float16_autocast_with_a_grad_scaler_is_a_mean_loss_not_one_counted_65536_times():
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    report = _train(model, opt, x, y, step=_amp_step(torch.amp.GradScaler("cpu"))).report()
    loss = report["loop: loss"]
    assert loss.status == "pass" and "65536" in loss.value, loss
    assert not _loop_alarms(report), _loop_alarms(report)
    # the scale is divided out, not ignored: a loss counted twice still reads as twice the mean
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    twice = _train(model, opt, x, y, step=_amp_step(torch.amp.GradScaler("cpu"), twice=True)).report()
    assert twice["loop: loss"].status == "warn" and "2x" in twice["loop: loss"].value


@pytest.mark.slow  # 0.36 s each on a 2-core CPU (RESULTS §51)
def test_steps_a_grad_scaler_skips_are_neither_accumulation_nor_w_step_misuse():
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**30)  # overflows float16 at first: steps are skipped
    w = _train(model, opt, x, y, every=1, step=_amp_step(scaler))
    assert w.probe.skipped >= 3 and w.probe.opt_steps < w._calls
    report = w.report()
    flow = report["loop: gradients at optimizer.step()"]
    assert flow.status == "pass" and "backward() passes" not in flow.value, flow
    assert not _loop_alarms(report), _loop_alarms(report)
    # the monitors observe steps that updated: the skipped steps' infinite gradients are not a verdict
    assert w.monitor.records[0]["step"] > w.probe.skipped
    monitors = [v for v in report if v.check.startswith("monitor")]
    assert not [v for v in monitors if "non-finite" in v.check or "vanishing" in v.check or
                "median update/weight 0 " in v.value], monitors


def _accumulate(k, *, logged="divided", w_step_per_micro=False, zero_each=False):
    def step(model, opt, xb, yb, w):
        opt.zero_grad()
        for part_x, part_y in zip(xb.chunk(k), yb.chunk(k), strict=True):
            loss = F.cross_entropy(model(part_x), part_y)
            if zero_each:
                opt.zero_grad()
            (loss / k).backward()
            if w_step_per_micro:
                w.step(loss / k, y=part_y)
        opt.step()
        if not w_step_per_micro:
            w.step(loss if logged == "full" else loss / k, y=yb)
    return step


@pytest.mark.parametrize("logged", ["divided", "full"])
@pytest.mark.slow  # 0.51 s each on a 2-core CPU (RESULTS §51)
def test_gradient_accumulation_is_clean_whichever_loss_is_logged(logged):
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp()
    report = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, step=_accumulate(4, logged=logged)) \
        .report()
    assert not _loop_alarms(report), _loop_alarms(report)
    assert "4 backward() passes per step" in report["loop: gradients at optimizer.step()"].value


def _sharpness_aware(model, opt, xb, yb, w, rho=0.05):
    """SAM (Foret et al. 2021): a backward() at the weights, an ascent step by hand, zero_grad(), the backward()
    whose gradient the optimizer applies, at the weights put back."""
    loss = F.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
        moves = [p.grad * rho / (norm + 1e-12) for p in params]
        for p, e in zip(params, moves, strict=True):
            p.add_(e)
    opt.zero_grad()
    F.cross_entropy(model(xb), yb).backward()
    with torch.no_grad():
        for p, e in zip(params, moves, strict=True):
            p.sub_(e)
    opt.step()
    w.step(loss, y=yb)


@pytest.mark.slow  # ~0.7 s: a watched loop or check run
@pytest.mark.parametrize("loop, status", [("zero once", "pass"), ("zero each", "fail"), ("sam", "pass")])
def test_zero_grad_before_every_micro_batch_is_named_as_gradients_thrown_away(loop, status):
    x, y = _blobs(512)
    torch.manual_seed(0)
    model = _mlp()
    step = _sharpness_aware if loop == "sam" else _accumulate(4, zero_each=loop == "zero each")
    w = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, epochs=2, step=step)
    verdict = w.report()["loop: gradients at optimizer.step()"]
    assert verdict.status == status, verdict
    if loop == "zero each":
        assert "only the last 1 of 4 backward() passes" in verdict.value and "zero_grad()" in verdict.advice
    elif loop == "zero once":
        assert "4 backward() passes per step" in verdict.value


class TwoStepSAM(torch.optim.Optimizer):
    """SAM as published (Foret et al. 2021; github.com/davda54/sam): the loop calls first_step() and second_step();
    the base optimizer inside, sharing the param groups, makes the update."""

    def __init__(self, params, base_optimizer, rho=0.05, **kwargs):
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups

    @torch.no_grad()
    def first_step(self, zero_grad=False):
        norm = torch.norm(torch.stack([p.grad.norm() for g in self.param_groups for p in g["params"]
                                       if p.grad is not None]))
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.state[p]["old_p"] = p.data.clone()
                    p.add_(p.grad * group["rho"] / (norm + 1e-12))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad=False):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.data = self.state[p]["old_p"]
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()


@pytest.mark.parametrize("watched", ["sam", "its base optimizer"])
def test_sam_stepped_through_first_and_second_step_is_a_healthy_loop(watched):
    x, y = _blobs(512)
    torch.manual_seed(0)
    model = _mlp()
    sam = TwoStepSAM(model.parameters(), torch.optim.SGD, lr=0.05, momentum=0.9)
    with doctor.watch(model, sam if watched == "sam" else sam.base_optimizer, every=5) as w:
        for _ in range(2):
            for i in range(0, len(x), 64):
                xb, yb = x[i : i + 64], y[i : i + 64]
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                sam.first_step(zero_grad=True)
                F.cross_entropy(model(xb), yb).backward()  # the same batch at the perturbed weights
                sam.second_step(zero_grad=True)
                w.step(loss, y=yb)
    report = w.report()
    assert not _loop_alarms(report), _loop_alarms(report)
    assert report["loop: loss"].value.startswith("mean cross-entropy (weights sum to 1"), report["loop: loss"]


class ScaledMLP(nn.Module):
    """An MLP whose input scale is a trainable tensor kept as a plain attribute when ``registered`` is False (the
    bug: model.parameters() does not list it)."""

    def __init__(self, registered=True):
        super().__init__()
        scale = torch.ones(8, requires_grad=True)
        self.scale = nn.Parameter(scale) if registered else scale
        self.body = _mlp()

    def forward(self, x):
        return self.body(x * self.scale)


def _input_gradient_penalty(model, steps=30, penalty=True):
    """Double backpropagation (Drucker & LeCun 1992): the input requires a gradient, torch.autograd.grad of the
    cross-entropy gives it, and its squared norm joins the loss."""
    x, y = _blobs(512)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with warnings.catch_warnings(record=True) as caught, doctor.watch(model, opt, every=5) as w:
        warnings.simplefilter("always")
        for s in range(steps):
            i = (s * 64) % len(x)
            xb, yb = x[i : i + 64].clone().requires_grad_(penalty), y[i : i + 64]
            ce = F.cross_entropy(model(xb), yb)
            loss = ce
            if penalty:
                g, = torch.autograd.grad(ce, xb, create_graph=True)
                loss = ce + 0.1 * g.pow(2).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return w.report(), [str(c.message) for c in caught]


@pytest.mark.parametrize("registered", [True, False])
@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
def test_an_input_that_requires_grad_for_a_penalty_is_the_batch_not_a_parameter(registered):
    torch.manual_seed(0)
    report, caught = _input_gradient_penalty(ScaledMLP(registered))
    if registered:
        assert "parameters registered" not in report.checks, report["parameters registered"]
    else:  # the plain attribute is still named, the input beside it is not
        verdict = report["parameters registered"]
        assert verdict.status == "fail" and "scale" in verdict.value and "outside the model" not in verdict.value
    assert not [m for m in caught if "requires_grad=True to a scalar" in m], caught


@pytest.mark.parametrize("penalty", [True, False])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_an_input_gradient_penalty_does_not_count_the_cross_entropy_twice(penalty):
    torch.manual_seed(0)
    report, _ = _input_gradient_penalty(ScaledMLP(), penalty=penalty)
    loss = report["loop: loss"]
    assert loss.status == "pass" and loss.value.startswith("mean cross-entropy"), loss
    assert not _loop_alarms(report), _loop_alarms(report)


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("validate_in_eval, status", [(True, "pass"), (False, "fail")])
def test_a_leftover_micro_batch_before_validation_is_not_a_validation_in_train_mode(validate_in_eval, status):
    # 4 micro-batches per step over 9 batches an epoch: the 9th runs forward and backward in train mode, and its
    # gradient is dropped by the next epoch's zero_grad(); then the model is validated
    x, y = _blobs(9 * 32)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(3):
            model.train()
            opt.zero_grad()
            for i in range(0, len(x), 32):
                loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32]) / 4
                loss.backward()
                if (i // 32 + 1) % 4 == 0:
                    opt.step()
                    opt.zero_grad()
                    w.step(loss, y=y[i : i + 32])
            if validate_in_eval:
                model.eval()
            with torch.no_grad():
                w.validate(float(F.cross_entropy(model(x), y)))
    verdict = w.report()["loop: train/eval mode"]
    assert verdict.status == status, verdict
    assert (verdict.status == "fail") == ("3 of 3 validations ran in train mode" in verdict.value)


@pytest.mark.slow  # 0.49 s each on a 2-core CPU (RESULTS §51)
def test_w_step_per_micro_batch_is_named_and_the_update_ratio_defers_to_it():
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp()
    w = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, every=5,
               step=_accumulate(4, w_step_per_micro=True))
    report = w.report()
    verdict = report["loop: optimizer.step() runs"]
    assert verdict.status == "warn" and f"{w._calls} times, {w.probe.idle_calls} of them" in verdict.value
    assert w._calls == 4 * w.probe.opt_steps and w.probe.idle_calls == w._calls - w.probe.opt_steps + 1  # 1st call
    ratio = [v for v in report if v.check == "monitor: update/weight ratio"]
    assert all(v.status in ("pass", "info") for v in ratio), ratio


def _sorted_loader_loop(n):
    x, y = _blobs(n)
    order = y.argsort(stable=True)
    loader = DataLoader(TensorDataset(x[order], y[order]), batch_size=64, shuffle=False)  # drop_last=False
    torch.manual_seed(0)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("n", [1024, 1025, 1027])  # a last batch of 64, of 1, of 3 examples
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_data_sorted_by_label_is_named_also_with_a_short_last_batch(n):
    verdict = _sorted_loader_loop(n)["loop: labels"]
    assert verdict.status == "warn" and "label mix" in verdict.value, verdict


class Normalizing(nn.Module):
    """0..255 pixels in, normalized by the model's first operation (torchvision style)."""

    def __init__(self, mean, std, inside=True):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.inside = inside
        self.net = _mlp()

    def forward(self, x):
        return self.net((x - self.mean) / self.std if self.inside else x)


@pytest.mark.parametrize("inside", [True, False])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_inputs_normalized_inside_the_model_are_of_unit_scale(inside):
    x, y = _blobs()
    pixels = (x - x.min()) / (x.max() - x.min()) * 255  # 0..255 floats
    torch.manual_seed(0)
    model = Normalizing(pixels.mean(0), pixels.std(0), inside)
    lr = 0.05 if inside else 1e-4
    report = _train(model, torch.optim.SGD(model.parameters(), lr=lr), pixels, y).report()
    verdict = report["loop: inputs"]
    if inside:
        assert verdict.status == "pass" and "normalized inside the model" in verdict.value, verdict
    else:
        assert verdict.status == "warn" and "far from unit scale" in verdict.value, verdict
        # the advice says by how much the gradients grow: by the inputs' std, which the value gives
        assert "weight gradients grow with them (the inputs' std times too large)" in verdict.advice, verdict


class Tabular(nn.Module):
    """A store id (embedded) and numeric features, concatenated into an MLP."""

    def __init__(self):
        super().__init__()
        self.store = nn.Embedding(10, 4)
        self.mlp = nn.Sequential(nn.Linear(4 + 2, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, store, numeric):
        return self.mlp(torch.cat([self.store(store), numeric], 1))


@pytest.mark.parametrize("standardized", [True, False])
def test_raw_numeric_features_beside_integer_ids_are_named(standardized):
    g = torch.Generator().manual_seed(0)
    store = torch.randint(0, 10, (512,), generator=g)
    income = torch.exp(10.5 + 0.5 * torch.randn(512, generator=g))  # dollars
    age = 18 + 60 * torch.rand(512, generator=g)  # years
    y = (income > income.median()).long()
    numeric = torch.stack([income, age], 1)
    if standardized:
        numeric = (numeric - numeric.mean(0)) / numeric.std(0)
    torch.manual_seed(0)
    model = Tabular()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 512, 32):
            loss = F.cross_entropy(model(store[i : i + 32], numeric[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    report = w.report()
    verdict = report["loop: inputs"]
    if standardized:
        assert verdict.status == "pass", verdict
    else:
        assert verdict.status == "warn" and "far from unit scale" in verdict.value, verdict
        assert "argument 2 of 2" in verdict.value
        monitors = [v for v in report if v.check.startswith("monitor:") and v.status == "warn"]
        assert not monitors, monitors  # dead units or vanishing gradients follow from the inputs' scale


@pytest.mark.slow  # 0.32 s each on a 2-core CPU (RESULTS §51)
def test_standardized_heavy_tailed_features_are_of_unit_scale():
    g = torch.Generator().manual_seed(0)
    raw = torch.exp(2.5 * torch.randn(4096, 8, generator=g))  # lognormal counts
    numeric = (raw - raw.mean(0)) / raw.std(0)  # std 1 per column; a few rows hold z-scores above 50
    assert float(numeric.abs().max()) > 50
    y = (numeric[:, 0] > numeric[:, 0].median()).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, 4096, 128):
            loss = F.cross_entropy(model(numeric[i : i + 128]), y[i : i + 128])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 128])
    verdict = w.report()["loop: inputs"]
    assert verdict.status == "pass", verdict


@pytest.mark.parametrize("head, named", [(nn.Sigmoid(), "Sigmoid"), (nn.ReLU(), "ReLU"), (None, None)])
@pytest.mark.slow  # 0.15 s each on a 2-core CPU (RESULTS §51)
def test_an_activation_after_the_last_layer_is_named(head, named):
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp(head=head)
    report = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y).report()
    verdict = report["loop: loss"]
    if named is None:
        assert verdict.status == "pass", verdict
    else:
        assert verdict.status == "warn" and named in verdict.value, verdict


@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_the_loss_form_is_read_under_bfloat16_autocast(softmax):
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp(head=nn.Softmax(dim=1) if softmax else None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(model, opt, xb, yb, w):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(xb)
        loss = F.cross_entropy(out.float(), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        w.step(loss, y=yb)

    verdict = _train(model, opt, x, y, step=step).report()["loop: loss"]
    if softmax:
        assert verdict.status == "fail" and "probabilities" in verdict.value, verdict
    else:
        assert verdict.status == "pass" and "mean cross-entropy" in verdict.value, verdict


@pytest.mark.parametrize("raw", [True, False])
def test_regression_targets_in_raw_units_are_named(raw):
    x, _ = _blobs()
    target = x[:, 0] - 0.5 * x[:, 1]
    y = target * 5e4 + 2e5 if raw else (target - target.mean()) / target.std()
    torch.manual_seed(0)
    model = _mlp(out=1)
    report = _train(model, torch.optim.SGD(model.parameters(), lr=1e-3), x, y,
                    loss_fn=lambda out, t: F.mse_loss(out.squeeze(1), t)).report()
    verdict = report["loop: labels"]
    if raw:
        assert verdict.status == "warn" and "far from unit scale" in verdict.value, verdict
        assert math.isclose(float(verdict.value.split("mean ")[1].split(",")[0]), float(y.mean()), rel_tol=0.05)
    else:
        assert verdict.status == "pass", verdict


COMPILED_LOOP = """
import torch, torch.nn.functional as F
from torch import nn
from trainwell import doctor
torch.manual_seed(0)
x, y = torch.randn(512, 8), torch.randint(0, 4, (512,))
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 4))
compiled = torch.compile(model, backend="eager")  # dynamo traces the module's hooks as with inductor
opt = torch.optim.SGD(model.parameters(), lr=0.1)
with doctor.watch(compiled, opt, every=5) as w:
    for i in range(0, 512, 32):
        loss = F.cross_entropy(compiled(x[i : i + 32]), y[i : i + 32])
        opt.zero_grad(); loss.backward(); opt.step()
        w.step(loss, y=y[i : i + 32])
report = w.report()
alarms = [v.check for v in report if v.check.startswith("loop:") and v.status in ("warn", "fail")]
print(report["monitors"].status, alarms)
"""


@pytest.mark.slow
def test_a_compiled_model_is_watched_without_graph_break_warnings():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", COMPILED_LOOP], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Graph break" not in done.stderr and "trainwell" not in done.stderr, done.stderr[-2000:]
    assert done.stdout.split()[0] == "pass" and done.stdout.strip().endswith("[]"), done.stdout


class Functional(nn.Module):
    """Activations called as functions in forward, as many hand-written modules do."""

    def __init__(self, act=F.relu, bias=0.0, scale=1.0):
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(8, 64), nn.Linear(64, 64), nn.Linear(64, C)
        self.act = act
        with torch.no_grad():
            self.fc1.bias.fill_(bias)
            self.fc1.weight.mul_(scale)

    def forward(self, x):
        return self.out(torch.tanh(self.fc2(self.act(self.fc1(x)))))


def _functional_watch(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    return _train(model, opt, x, y, epochs=1, every=5)


@pytest.mark.slow  # 0.34 s each on a 2-core CPU (RESULTS §51)
def test_functional_activations_are_monitored_by_the_layer_that_feeds_them():
    x, y = _blobs()
    torch.manual_seed(0)
    w = _functional_watch(Functional(bias=-50.0), x, y)  # every unit after fc1 negative: all dead
    record = w.monitor.records[-1]["activations"]
    assert set(record) == {"F.relu after fc1", "F.tanh after fc2"}
    assert record["F.relu after fc1"]["dead"] == 1.0 and "grad_hist" in record["F.tanh after fc2"]
    dead = w.report()["monitor: dead ReLUs"]
    assert dead.status == "warn" and dead.value.startswith("'F.relu after fc1'"), dead
    assert torch._C._len_torch_function_stack() == 0  # the mode ended with the block

    torch.manual_seed(0)
    saturating = _functional_watch(Functional(act=torch.sigmoid, scale=200.0), x, y).report()
    assert saturating["monitor: saturated units"].value.startswith("'F.sigmoid after fc1'")


def test_module_activations_are_not_counted_twice():
    x, y = _blobs()
    torch.manual_seed(0)
    w = _functional_watch(_mlp(), x, y)
    assert set(w.monitor.records[-1]["activations"]) == {"1"}  # the nn.ReLU module, not its F.relu call again


def test_the_functional_mode_ends_when_the_loop_raises():
    x, y = _blobs()
    model = Functional()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(KeyboardInterrupt), doctor.watch(model, opt, every=1) as w:
        for i in range(3):
            loss = F.cross_entropy(model(x[i * 8 : (i + 1) * 8]), y[i * 8 : (i + 1) * 8])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            if i == 1:
                raise KeyboardInterrupt
    assert torch._C._len_torch_function_stack() == 0
    assert not model._forward_hooks and not model._forward_pre_hooks and not model.fc1._forward_hooks


@pytest.mark.parametrize("bias, status", [(-50.0, "fail"), (0.0, "pass")])
@pytest.mark.slow  # 0.15-0.23 s each on a 2-core CPU (RESULTS §51)
def test_the_preflight_reads_dead_units_of_functional_relus(bias, status):
    x, y = _blobs(256)
    torch.manual_seed(0)
    model = Functional(bias=bias)
    verdict = doctor.check(model, x, y, F.cross_entropy)["dead units"]
    assert verdict.status == status and "'F.relu after fc1'" in verdict.value, verdict
    assert torch._C._len_torch_function_stack() == 0 and not model._forward_hooks


@pytest.mark.parametrize("head", [nn.Sigmoid(), None])
def test_two_class_cross_entropy_on_bounded_outputs_is_named(head):
    x, y = _blobs()
    y = y % 2
    torch.manual_seed(0)
    model = _mlp(out=2, head=head)
    verdict = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y).report()["loop: loss"]
    if head is None:
        assert verdict.status == "skip" and "2 classes" in verdict.value, verdict
    else:
        assert verdict.status == "warn" and "Sigmoid" in verdict.value, verdict


class EncoderHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.head = nn.Sequential(nn.Linear(8, 64), nn.ReLU()), nn.Linear(64, C)

    def forward(self, x):
        return self.head(self.encoder(x))


@pytest.mark.parametrize("mode", ["together", "alternate", "head_forgotten"])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_several_optimizers_stepped_together_in_turn_or_one_forgotten(mode):
    x, y = _blobs()
    torch.manual_seed(0)
    model = EncoderHead()
    enc = torch.optim.SGD(model.encoder.parameters(), lr=0.1)
    head = torch.optim.SGD(model.head.parameters(), lr=0.1)
    turn = [0]

    def step(model, opt, xb, yb, w):
        loss = F.cross_entropy(model(xb), yb)
        enc.zero_grad()
        head.zero_grad()
        loss.backward()
        if mode == "together":
            enc.step()
            head.step()
        elif mode == "alternate":
            (enc, head)[turn[0] % 2].step()
            turn[0] += 1
        else:
            enc.step()
        w.step(loss, y=yb)

    report = _train(model, [enc, head], x, y, step=step).report()
    held = report["loop: optimizer holds the parameters"]
    if mode == "head_forgotten":
        assert held.status == "fail" and "optimizer 2 of 2 never stepped" in held.value and "head" in held.value
    else:
        assert not _loop_alarms(report), _loop_alarms(report)
        assert not [v for v in report if v.check.startswith("monitor") and v.status in ("warn", "fail")]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_a_softmax_applied_in_the_loop_under_autocast_is_a_double_softmax(dtype):
    x, y = _blobs()
    torch.manual_seed(0)
    model = _mlp(out=10)  # 10 outputs (4 used): near-uniform probabilities, whose gradient almost fits plain CE
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu")

    def step(model, opt, xb, yb, w):
        with torch.autocast("cpu", dtype=dtype):
            loss = F.cross_entropy(model(xb).softmax(1), yb)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        w.step(loss, y=yb)

    verdict = _train(model, opt, x, y, step=step).report()["loop: loss"]
    assert verdict.status == "fail" and "probabilities" in verdict.value, verdict


class Mixed(nn.Module):
    """An activation module and activation functions in one model."""

    def __init__(self, bias=0.0):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc1, self.act1, self.fc2, self.out = nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.Linear(80, C)
        with torch.no_grad():
            self.fc2.bias.fill_(bias)

    def forward(self, x):
        ids = (x[:, 0].abs() * 10).long().clamp_max(49)
        h = F.relu(self.fc2(self.act1(self.fc1(x))))
        return self.out(torch.cat([h, F.leaky_relu(self.emb(ids), 0.1)], 1))


@pytest.mark.slow  # seconds each
def test_a_model_mixing_modules_and_functions_reads_both_and_leaky_relu_is_never_dead():
    x, y = _blobs(256)
    torch.manual_seed(0)
    dead = doctor.check(Mixed(bias=-100.0), x, y, F.cross_entropy)["dead units"]
    assert dead.status == "fail" and "'F.relu after fc2'" in dead.value and "of 2 layers" in dead.value, dead
    torch.manual_seed(0)
    model = Mixed(bias=-100.0)
    w = _functional_watch(model, *_blobs())
    acts = w.monitor.records[-1]["activations"]
    assert set(acts) == {"act1", "F.relu after fc2", "F.leaky_relu after emb"}
    assert acts["F.relu after fc2"]["dead"] == 1.0 and "dead" not in acts["F.leaky_relu after emb"]
    assert w.report()["monitor: dead ReLUs"].value.startswith("'F.relu after fc2'")


def test_units_are_not_called_dead_on_a_short_batch():
    from trainwell.doctor.activation_statistics import DEAD_MIN_ROWS, activation_stats

    torch.manual_seed(0)
    out = torch.randn(64, 32).relu()  # healthy: each unit on for about half the examples
    assert activation_stats(nn.ReLU(), out)["dead"] == 0.0
    assert "dead" not in activation_stats(nn.ReLU(), out[: DEAD_MIN_ROWS - 1])  # about half would "die" on one
    assert activation_stats(nn.ReLU(), out[:1].expand(DEAD_MIN_ROWS, 32))["dead"] > 0.3  # the rule itself holds


@pytest.mark.parametrize("last, loss_fn, status", [(nn.Softmax(dim=1), F.cross_entropy, "warn"),
                                                   (None, F.cross_entropy, "pass"),
                                                   (nn.LogSoftmax(dim=1), F.nll_loss, "pass")])
def test_the_preflight_names_cross_entropy_on_probabilities(last, loss_fn, status):
    x, y = _blobs(256)
    torch.manual_seed(0)
    verdict = doctor.check(_mlp(head=last), x, y, loss_fn)["initial loss"]
    assert verdict.status == status, verdict
    if status == "warn":
        assert "probabilities" in verdict.advice and "Softmax" in verdict.advice


@pytest.mark.parametrize("drop_last", [False, True])
def test_a_last_batch_of_one_example_through_batchnorm_is_named(drop_last):
    torch.manual_seed(0)
    x = torch.randn(65, 1, 8, 8)  # 65 % 16 == 1: a DataLoader's last batch holds one image
    y = (x.mean((1, 2, 3)) > 0).long()
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, drop_last=drop_last)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(3):
            for xb, yb in loader:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    found = [v for v in w.report().verdicts if v.check == "loop: batch of one"]
    assert (found[0].status, found[0].value.startswith("3 training batches of 1 example")) == ("warn", True) \
        if not drop_last else not found
    assert "drop_last=True" in (found[0].advice if found else "drop_last=True")


@pytest.mark.parametrize("detached", [False, True])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_lbfgs_stepped_with_a_closure_is_read_after_its_step(detached):
    torch.manual_seed(0)
    x = torch.randn(128, 5)
    y = x[:, :1] * 2 - x[:, 1:2]
    first, second = nn.Linear(5, 16), nn.Linear(16, 1)
    opt = torch.optim.LBFGS([*first.parameters(), *second.parameters()], lr=1, max_iter=5)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = first, second

        def forward(self, v):
            h = torch.tanh(self.first(v))
            return self.second(h.detach() if detached else h)  # detached: the first layer never learns

    model = Net()
    with doctor.watch(model, opt, every=4) as w:
        for _ in range(8):
            def closure():
                opt.zero_grad()
                loss = F.mse_loss(model(x), y)
                loss.backward()
                return loss

            w.step(opt.step(closure))
    alarms = {v.check: v for v in w.report().verdicts if v.check.startswith("loop:") and v.status in ("warn", "fail")}
    if detached:
        assert "first.*" in str(alarms["loop: every trainable parameter learns"].value)
    else:
        assert not alarms, alarms
