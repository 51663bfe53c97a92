"""The doctor on loops and data users write beyond a plain supervised fit: a GAN's two players (no supervised
advice for a game's loss), a loss that raises on the data (a fail, not a pass of skipped checks), NLL on raw
scores, one-hot float targets for cross-entropy, NaN in the data. Each bug is named by its cause; each healthy
twin gets no false fail."""

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.diagnosis import learning_rate_diagnosis

from .user_loop import epoch as _epoch
from .user_loop import steps as _steps

C = 4


def _data(n=256, d=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :C].argmax(1)


def _mlp(d=20, out=C):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, out))


def _gan():
    torch.manual_seed(0)
    return (nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2)),
            nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1)))


def _gan_round(G, D, opt_g, opt_d, real):
    bce = nn.BCEWithLogitsLoss()
    fake = G(torch.randn(64, 8))
    d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake.detach()), torch.zeros(64, 1))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = bce(D(fake), torch.ones(64, 1))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss, g_loss


def _real(step):
    g = torch.Generator().manual_seed(step)
    return torch.randn(64, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])


def _not_judged(report):
    lr = report["learning rate (loss curve)"]
    assert lr.status in ("pass", "info"), lr
    if lr.status == "info":
        assert "not judged" in str(lr.value) or "explained by" in str(lr.value)


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
def test_a_gans_players_watched_apart_get_no_registration_fail_and_no_supervised_lr_advice():
    G, D = _gan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with doctor.watch(G, opt_g, every=20) as wg, doctor.watch(D, opt_d, every=20) as wd:
        for step in range(60):
            d_loss, g_loss = _gan_round(G, D, opt_g, opt_d, _real(step))
            wd.step(d_loss)
            wg.step(g_loss)
    for w, why in ((wg, "another model's parameters"), (wd, "inputs come from another model")):
        report = w.report()
        assert "parameters registered" not in report.checks  # the discriminator's are its own, registered
        assert why in w.probe.game
        _not_judged(report)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_generator_watched_with_both_optimizers_gets_no_supervised_lr_advice():
    G, D = _gan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with doctor.watch(G, [opt_g, opt_d], every=20) as w:
        for step in range(60):
            _, g_loss = _gan_round(G, D, opt_g, opt_d, _real(step))
            w.step(g_loss)
    assert "another optimizer steps on its own loss" in w.probe.game
    _not_judged(w.report())


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_mixup_targets_are_read_above_their_entropy():
    torch.manual_seed(0)
    x = torch.randn(1024, 20)
    y = F.one_hot(x[:, :5].argmax(1), 5).float()
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mix = torch.distributions.Beta(0.4, 0.4)
    with doctor.watch(model, opt, every=50) as w:
        for _ in range(300):
            i = torch.randint(0, 1024, (64,))
            lam, j = float(mix.sample()), torch.randperm(64)  # mixup (Zhang et al. 2018)
            xb, yb = lam * x[i] + (1 - lam) * x[i][j], lam * y[i] + (1 - lam) * y[i][j]
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    verdict = w.report()["learning rate (loss curve)"]
    assert verdict.status == "pass" and "towards the floor" in verdict.value, verdict


def _gan_round_not_detached(G, D, opt_g, opt_d, real, zero_first):
    """A D step on fakes that are not detached (its loss reaches G too), then the G step."""
    bce = nn.BCEWithLogitsLoss()
    fake = G(torch.randn(64, 8))
    if zero_first:  # both players zeroed up front: D's loss stays in G's .grad at G's step
        opt_d.zero_grad()
        opt_g.zero_grad()
    d_loss = bce(D(real), torch.ones(64, 1)) + bce(D(fake), torch.zeros(64, 1))
    if not zero_first:
        opt_d.zero_grad()
    d_loss.backward(retain_graph=True)
    opt_d.step()
    g_loss = bce(D(fake), torch.ones(64, 1))
    if not zero_first:
        opt_g.zero_grad()  # after D's step: G's .grad holds its own loss only
    g_loss.backward()
    opt_g.step()
    return g_loss


@pytest.mark.parametrize("zero_first, status", [(False, "pass"), (True, "warn")])
def test_a_discriminator_loss_left_in_the_generators_grad_is_named(zero_first, status):
    G, D = _gan()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with doctor.watch(G, opt_g, every=10) as w:
        for step in range(30):
            w.step(_gan_round_not_detached(G, D, opt_g, opt_d, _real(step), zero_first))
    verdict = w.report()["loop: gradients at optimizer.step()"]
    assert verdict.status == status, verdict
    if zero_first:
        assert "from before another optimizer's step" in verdict.value and "detach" in verdict.advice


def test_a_gan_in_one_module_with_its_two_optimizers_is_read_as_a_game():
    G, D = _gan()
    gan = nn.ModuleDict({"G": G, "D": D})
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with doctor.watch(gan, [opt_d, opt_g], every=20) as w:
        for step in range(60):
            d_loss, _ = _gan_round(G, D, opt_g, opt_d, _real(step))
            w.step(d_loss)
    assert "optimizer 2 of 2 steps parameters this loss never reaches" in w.probe.game
    _not_judged(w.report())


@pytest.mark.parametrize("order", ["d_first", "g_first"])
def test_a_gan_in_one_module_watched_on_its_generators_loss_is_read_as_a_game(order):
    G, D = _gan()
    gan = nn.ModuleDict({"G": G, "D": D})
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
    with doctor.watch(gan, [opt_d, opt_g] if order == "d_first" else [opt_g, opt_d], every=20) as w:
        for step in range(60):
            _, g_loss = _gan_round(G, D, opt_g, opt_d, _real(step))
            w.step(g_loss)
    assert "step in turn" in w.probe.game
    _not_judged(w.report())


def test_a_supervised_loop_with_two_optimizers_on_one_loss_is_not_a_game():
    x, y = _data()
    model = _mlp()
    opts = [torch.optim.SGD(model[0].parameters(), lr=0.1), torch.optim.SGD(model[2].parameters(), lr=0.1)]
    with doctor.watch(model, opts, every=5) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o in opts:
                o.step()
            w.step(loss)
    assert w.probe.game is None


@pytest.mark.parametrize("data, fragment", [
    (lambda x, y: (x, y[:, None]), r"shape \(N,\) \(y\.squeeze\(1\)\)"),
    (lambda x, y: (x, y.int()), r"int32; torch's loss takes int64: y\.long\(\)"),
    (lambda x, y: (x.double(), y), r"float64 \(NumPy's default\) but the model's parameters are float32"),
    (lambda x, y: ((x * 40).clamp(0, 255).byte(), y), r"uint8.*x\.float\(\) / 255"),
])
def test_check_fails_first_when_the_users_loss_or_forward_raises_on_the_data(data, fragment):
    x, y = data(*_data())
    model = _mlp()
    with pytest.raises(RuntimeError):  # what the user's own loop does with this data
        nn.CrossEntropyLoss()(model(x), y)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    first = report.verdicts[0]
    assert report.status == "fail" and first.check == "forward and loss run" and first.status == "fail"
    assert "RuntimeError" in first.value
    assert __import__("re").search(fragment, first.advice), first.advice


def test_check_takes_numpy_targets_and_runs_clean_on_healthy_data():
    x, y = _data()
    report = doctor.check(_mlp(), x, y.numpy(), nn.CrossEntropyLoss())
    assert "forward and loss run" not in [v.check for v in report.verdicts]
    assert report["initial loss"].status == "pass"


class LogSoftmaxNet(nn.Module):
    def __init__(self, log_softmax):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.log_softmax = _mlp(), log_softmax

    def forward(self, x):
        z = self.body(x)
        return F.log_softmax(z, dim=1) if self.log_softmax else z


def _watch_plain(model, loss_fn, x, y, steps=40, lr=0.05):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(steps):
            i = (s * 32) % len(x)
            loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    return w.report()


@pytest.mark.parametrize("log_softmax", [False, True])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_nll_on_raw_scores_is_named_by_check_and_watch(log_softmax):
    x, y = _data()
    model = LogSoftmaxNet(log_softmax)
    initial = doctor.check(model, x, y, nn.NLLLoss())["initial loss"]
    loop = _watch_plain(model, nn.NLLLoss(), x, y)["loop: loss"]
    if log_softmax:
        assert initial.status == "pass" and loop.status == "pass"
    else:
        assert initial.status == "fail" and "not log-probabilities" in initial.advice
        assert loop.status == "fail" and "not log-probabilities" in loop.value


def _masked_regression(x, tasks_and_targets):
    """A user's masked multi-task regression: each row has one measured property (positive values), the loss
    regresses the output gathered at that property."""
    task, target = tasks_and_targets
    return F.mse_loss(x.gather(1, task[:, None]).squeeze(1), target)


def _label_squared_hinge(z, y):
    """A squared hinge on the label's score alone: relu(1 - z_y)^2."""
    return (F.relu(1 - z.gather(1, y[:, None]).squeeze(1)) ** 2).mean()


def _log_of_softmax_output(p, y):
    """Cross-entropy on a model that ends in nn.Softmax, the log taken in the loss."""
    return F.nll_loss(torch.log(p + 1e-8), y)


def _watch_tuple_targets(model, loss_fn, x, y, steps=30, lr=0.02):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(steps):
            i = slice((s * 32) % len(x), (s * 32) % len(x) + 32)
            loss = loss_fn(model(x[i]), tuple(t[i] for t in y) if isinstance(y, tuple) else y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()["loop: loss"]


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_one_gathered_output_per_row_with_unequal_weights_is_not_nll():
    """NLL's gradient pushes the label's output up with one weight per row (or per label): a regression of one
    gathered output towards positive targets, or a squared hinge on the label's score, pushes one output per row up
    too, with weights that follow each row's error; neither is NLL on raw scores."""
    x, y = _data()
    task = y  # the measured property of each row
    target = 1.0 + x[:, 4].abs() + 0.5 * torch.sigmoid(x[:, 5])  # all above the outputs at the start
    regression = _watch_tuple_targets(_mlp(), _masked_regression, x, (task, target))
    hinge = _watch_tuple_targets(_mlp(), _label_squared_hinge, x, y)
    assert regression.status != "fail" and "not log-probabilities" not in regression.value
    assert hinge.status != "fail" and "not log-probabilities" not in hinge.value
    # the twins: NLL on raw scores, with class weights too, is still named
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    raw = _watch_tuple_targets(_mlp(), functools.partial(F.nll_loss, weight=weights), x, y)
    assert raw.status == "fail" and "not log-probabilities" in raw.value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_softmax_output_with_the_log_taken_in_the_loss_passes():
    """A model ending in nn.Softmax trained with nll_loss(log(p), y) is cross-entropy on its probabilities: the
    gradient -1 / (N p_label) weighs each row by 1 / p(label). NLLLoss on the probabilities themselves is not."""
    x, y = _data()
    model = nn.Sequential(_mlp(), nn.Softmax(dim=1))
    logged = _watch_tuple_targets(model, _log_of_softmax_output, x, y)
    assert logged.status == "pass" and "the log taken in the loss" in logged.value
    assert "weights sum to 1" in logged.value
    on_probabilities = _watch_tuple_targets(nn.Sequential(_mlp(), nn.Softmax(dim=1)), F.nll_loss, x, y)
    assert on_probabilities.status == "fail" and "not log-probabilities" in on_probabilities.value


def test_one_hot_float_targets_for_cross_entropy_are_class_targets_to_the_overfit_check():
    x, y = _data()
    onehot = F.one_hot(y, C).float()
    report = doctor.check(_mlp(), x, onehot, nn.CrossEntropyLoss())
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]


def test_a_first_loss_that_is_not_finite_is_not_blamed_on_the_learning_rate():
    verdict = learning_rate_diagnosis([math.nan] + [1.0] * 30)
    assert verdict.status == "fail" and "before any update" in verdict.value
    assert "not the learning rate" in verdict.advice and "lower" not in verdict.advice


@pytest.mark.parametrize("where", ["a whole column", "rows of an unobserved step"])
def test_nan_in_the_data_is_named_as_the_data_not_the_learning_rate(where):
    x, y = _data()
    x = x.clone()
    if where == "a whole column":  # standardizing a constant feature: 0 / 0
        x[:, 5] = math.nan
    else:  # step 4 (not observed: steps 0-2 and every 10th are) meets NaN rows
        x[4 * 32 + 3 : 4 * 32 + 6, 7] = math.nan
    report = _watch_plain(_mlp(), F.cross_entropy, x, y)
    inputs = report["loop: inputs"]
    assert inputs.status == "fail" and "NaN" in inputs.value
    if where != "a whole column":
        assert "at step 4" in inputs.value
    assert report["learning rate (loss curve)"].status == "info"
    assert not [v for v in report.verdicts if v.check.startswith("monitor: non-finite") and v.status == "fail"]


def _loop(model, x, y, order, *, steps=40, every=10, extra=None):
    """A plain loop whose step runs ``order`` (a string of z: zero_grad, f: forward+loss, b: backward, s: step);
    ``extra(model, step)`` runs after each step when given."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with doctor.watch(model, opt, every=every) as w:
        for k in range(steps):
            i = (k * 32) % len(x)
            loss = None
            for op in order:
                if op == "z":
                    opt.zero_grad()
                elif op == "f":
                    loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
                elif op == "b":
                    loss.backward()
                elif op == "s":
                    opt.step()
            w.step(loss)
            if extra is not None:
                extra(model, opt, k)
    return w.report()


@pytest.mark.parametrize("order, fragment", [("zfsb", "optimizer.step() ran before loss.backward()"),
                                             ("fbzs", "zero_grad() runs between loss.backward() and optimizer.step()"),
                                             ("zfbs", None)])
def test_a_step_before_backward_is_told_apart_from_zero_grad_in_between(order, fragment):
    x, y = _data()
    verdict = _loop(_mlp(), x, y, order)["loop: gradients at optimizer.step()"]
    if fragment is None:
        assert verdict.status == "pass"
    else:
        assert verdict.status == "fail" and fragment in (verdict.value + verdict.advice)


class FunctionalDropout(nn.Module):
    def __init__(self, follow_mode):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2, self.follow_mode = nn.Linear(20, 32), nn.Linear(32, C), follow_mode

    def forward(self, x):
        h = F.relu(self.fc1(x))
        h = F.dropout(h, 0.5, training=self.training) if self.follow_mode else F.dropout(h, 0.5)
        return self.fc2(h)


@pytest.mark.parametrize("follow_mode", [False, True])
def test_functional_dropout_left_on_in_eval_is_named_not_blamed_on_backward_code(follow_mode):
    x, y = _data()
    verdict = doctor.check(FunctionalDropout(follow_mode), x, y, nn.CrossEntropyLoss())["gradient check (data loss)"]
    if follow_mode:
        assert verdict.status == "pass"
    else:
        # the backward checks out with the noise held fixed; the random eval-mode forward is named
        assert verdict.status == "warn" and "training=self.training" in verdict.advice
        assert "F.dropout runs with training=True in eval mode" in verdict.value
        assert "custom backward" not in verdict.advice


class SequenceTagger(nn.Module):
    def __init__(self, batch_first):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(6, 16, batch_first=batch_first)
        self.head = nn.Linear(16, C)

    def forward(self, x):  # x: (B, T, F)
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_a_recurrence_over_the_batch_axis_is_found_from_the_last_sample(batch_first):
    x = torch.randn(32, 5, 6, generator=torch.Generator().manual_seed(0))
    verdict = doctor.check(SequenceTagger(batch_first), x, x[:, 0, :C].argmax(1),
                           nn.CrossEntropyLoss())["batch independence"]
    if batch_first:
        assert verdict.status == "pass"
    else:
        assert verdict.status == "fail" and "batch_first=True" in verdict.advice


def _dropout_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, C))


@pytest.mark.parametrize("back_to_train", [False, True])
def test_a_validation_mid_epoch_that_leaves_eval_mode_on_is_named(back_to_train):
    x, y = _data()

    def validate_every_16(model, opt, k):
        if k % 16 == 11:
            model.eval()
            with torch.no_grad():
                model(x[:64])
            if back_to_train:
                model.train()
        if k % 16 == 15:  # "the start of an epoch"
            model.train()

    verdict = _loop(_dropout_mlp(), x, y, "zfbs", steps=64, extra=validate_every_16)["loop: train/eval mode"]
    if back_to_train:
        assert verdict.status == "pass" and "train mode in 64 of 64 steps" in verdict.value
    else:
        assert verdict.status == "warn" and "of 64 training steps ran in eval mode" in verdict.value


def test_optimizer_step_twice_per_batch_is_named():
    x, y = _data()
    verdict = _loop(_mlp(), x, y, "zfbss")["loop: optimizer.step() runs"]
    assert verdict.status == "warn" and "ran 80 times in 40 w.step() calls" in verdict.value
    assert "loop: optimizer.step() runs" not in _loop(_mlp(), x, y, "zfbs").checks


class Finetuned(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Sequential(nn.Linear(20, 32), nn.ReLU()), nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.mark.slow  # ~0.4 s: a watched loop or check run
@pytest.mark.parametrize("replaced_after", [True, False])
def test_a_head_replaced_after_the_optimizer_is_named_by_check_and_not_called_accumulation(replaced_after):
    x, y = _data()
    model = Finetuned()
    if not replaced_after:
        model.head = nn.Linear(32, C)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if replaced_after:
        model.head = nn.Linear(32, C)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss(), optimizer=opt)
    w = _epoch(model, opt, x, y)
    watched = w.report()
    if replaced_after:
        held = report["optimizer holds the parameters"]
        assert held.status == "fail" and "head.*" in held.value and "2 tensors the model no longer has" in held.value
        assert watched["loop: optimizer holds the parameters"].status == "fail"
        assert watched["loop: gradients at optimizer.step()"].status == "pass"  # not "call zero_grad"
    else:
        assert "optimizer holds the parameters" not in report.checks
        assert watched["loop: optimizer holds the parameters"].status == "pass"


@pytest.mark.parametrize("last", [True, False])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_dropout_after_the_last_layer_is_named_by_check_and_watch(last):
    torch.manual_seed(0)
    layers = [nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C), nn.Dropout(0.3)] if last else \
        [nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, C)]
    model = nn.Sequential(*layers)
    x, y = _data()
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    loop = _watch_plain(model, F.cross_entropy, x, y)["loop: loss"]
    if last:
        assert report["output layer"].status == "fail" and "'3'" in report["output layer"].value
        assert loop.status == "fail" and "dropout module '3'" in loop.value
    else:
        assert "output layer" not in report.checks and loop.status == "pass"


def test_a_loss_rebuilt_from_item_reaches_no_parameter_and_fails():
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w = _epoch(model, opt, x, y, lambda out, t: torch.tensor(F.cross_entropy(out, t).item(), requires_grad=True))
    verdict = w.report()["loop: every trainable parameter learns"]
    assert verdict.status == "fail" and "no parameter ever received a gradient" in verdict.value


@pytest.mark.parametrize("wd, status", [(0.5, "warn"), (5e-4, "pass"), (0.0, None)])
def test_weight_decay_that_outpulls_the_gradient_is_named(wd, status):
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=wd)
    w = _epoch(model, opt, x, y)
    report = w.report()
    if status is None:
        assert "loop: weight decay" not in report.checks
    else:
        assert report["loop: weight decay"].status == status


def test_a_summed_loss_that_diverges_is_told_to_use_the_mean():
    from trainwell.doctor import loop_deferral as lv
    from trainwell.doctor.verdict import Verdict

    x, y = _data(n=512)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for k in range(12):
            i = (k * 128) % 512
            loss = F.cross_entropy(model(x[i : i + 128]), y[i : i + 128], reduction="sum")
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    summed = w.report()["loop: loss"]
    assert summed.status == "info" and summed.value.startswith("summed cross-entropy over 128 examples")
    rising = Verdict("learning rate (loss curve)", "fail", "too high: the loss rose", "-", "lower the learning rate")
    (_, read) = lv.defer([summed, rising])
    assert read.status == "fail"
    assert read.advice.endswith("use reduction='mean', or divide a learning rate tuned for the mean by 128")


def _soft_ce(sign):
    def loss(logits, target):
        soft = F.one_hot(target, C).float() * 0.9 + 0.1 / C  # label smoothing by hand
        return sign * -(soft * F.log_softmax(logits, dim=1)).sum(1).mean()
    return loss


@pytest.mark.parametrize("sign", [-1.0, 1.0])
@pytest.mark.slow  # 0.22 s each on a 2-core CPU (RESULTS §51)
def test_a_hand_written_cross_entropy_missing_its_minus_sign_is_named(sign):
    x, y = _data()
    initial = doctor.check(_mlp(), x, y, _soft_ce(sign))["initial loss"]
    report = _watch_plain(_mlp(), _soft_ce(sign), x, y)
    if sign < 0:
        assert initial.status == "fail" and "minus a cross-entropy" in initial.advice
        assert report["loop: loss"].status == "fail" and "-ln C" in report["loop: loss"].value
    else:
        assert initial.status == "pass"
        verdict = report["loop: loss"]  # a mean cross-entropy, smoothed by hand with epsilon 0.1
        assert verdict.status == "pass" and "label smoothing 0.1" in verdict.value


@pytest.mark.parametrize("repeated", [True, False])
def test_one_layer_repeated_in_a_sequential_is_named(repeated):
    torch.manual_seed(0)
    block = [nn.Linear(32, 32), nn.Tanh()]
    body = block * 3 if repeated else [m for _ in range(3) for m in (nn.Linear(32, 32), nn.Tanh())]
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), *body, nn.Linear(32, C))
    x, y = _data()
    verdict = doctor.check(model, x, y, nn.CrossEntropyLoss())["parameters registered"]
    if repeated:
        assert verdict.status == "warn" and "positions 2, 4, 6 of the model" in verdict.value
    else:
        assert verdict.status == "pass"


@pytest.mark.parametrize("module", [True, False])
@pytest.mark.parametrize("ignore, named", [(0, True), (-100, False)])
def test_ignore_index_on_a_real_class_is_named(ignore, named, module):
    x, y = _data()
    loss_fn = nn.CrossEntropyLoss(ignore_index=ignore) if module else \
        (lambda out, t: F.cross_entropy(out, t, ignore_index=ignore))  # a closure: read by what it does
    report = doctor.check(_mlp(), x, y, loss_fn)
    if named:
        assert report["targets"].status == "fail" and "ignore_index=0, one of the model's 4 classes" in \
            report["targets"].value
    else:
        assert "targets" not in report.checks


class _LogSoftmaxNet(nn.Module):
    """The pytorch/examples MNIST pattern: log_softmax at the end of forward, F.nll_loss as the loss."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, C)

    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


@pytest.mark.parametrize("ignore, named", [(0, True), (-100, False)])
def test_nll_loss_as_a_function_is_probed_with_uniform_log_probabilities(ignore, named):
    x, y = _data()
    loss_fn = F.nll_loss if ignore == -100 else functools.partial(F.nll_loss, ignore_index=ignore)
    report = doctor.check(_LogSoftmaxNet(), x, y, loss_fn)
    if named:
        assert report["targets"].status == "fail" and "ignore_index=0, one of the model's 4 classes" in \
            report["targets"].value
    else:
        assert "targets" not in report.checks


@pytest.mark.parametrize("head, named", [(nn.Sigmoid(), True), (None, False)])
@pytest.mark.slow  # 0.21-0.32 s each on a 2-core CPU (RESULTS §51)
def test_ratings_beyond_a_sigmoid_output_are_named(head, named):
    x, _ = _data()
    ratings = 1.0 + (x[:, :3].sum(1) > 0).float() * 2 + (x[:, 3] > 0).float() * 2  # 1..5
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0), *([head] if head else []))
    report = doctor.check(model, x, ratings, nn.MSELoss())
    if named:
        assert report["targets"].status == "fail" and "pass through Sigmoid ('4') last: in [0, 1]" in \
            report["targets"].value
    else:
        assert "targets" not in report.checks


def test_padding_id_0_ignored_in_sequence_targets_is_not_a_real_class():
    torch.manual_seed(0)
    ids = torch.randint(1, 12, (64, 7))
    ids[:, 5:] = 0  # <pad> = 0, ignored by the loss
    model = nn.Sequential(nn.Embedding(12, 16, padding_idx=0), nn.Linear(16, 12))

    def loss_fn(out, t):  # next-token logits (B, T, V) against (B, T) with padding
        return F.cross_entropy(out.transpose(1, 2), t, ignore_index=0)

    report = doctor.check(model, ids, ids, loss_fn)
    assert "targets" not in report.checks
    assert report["gradient check (data loss)"].status == "pass"  # the padding row's zero gradient is by design


def test_nll_on_log_softmax_over_the_last_axis_of_a_sequence_passes():
    torch.manual_seed(0)
    x, y = torch.randn(256, 6, 8), torch.randint(0, 5, (256, 6))
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 5), nn.LogSoftmax(dim=-1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 256, 32):
            loss = F.nll_loss(model(x[i : i + 32]).reshape(-1, 5), y[i : i + 32].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    assert w.report()["loop: loss"].status == "pass"


def test_a_jointly_trained_encoder_in_the_optimizer_is_information_not_a_cause():
    x, y = _data()
    torch.manual_seed(0)
    encoder, head = nn.Sequential(nn.Linear(20, 32), nn.ReLU()), nn.Linear(32, C)
    opt = torch.optim.SGD(list(encoder.parameters()) + list(head.parameters()), lr=0.1)
    with doctor.watch(head, opt, every=5) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(head(encoder(x[i : i + 32])), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    report = w.report()
    assert report["loop: optimizer holds the parameters"].status == "info" and w.probe.game is None
    assert "explained by" not in str(report["learning rate (loss curve)"].value)


def test_a_usual_weight_decay_on_a_fine_tuned_model_is_not_called_a_typo():
    x, y = _data()
    model = _mlp()
    pre = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(300):  # "pretrained": near a minimum, small gradients
        pre.zero_grad()
        F.cross_entropy(model(x), y).backward()
        pre.step()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    w = _epoch(model, opt, x, y)
    assert w.report()["loop: weight decay"].status == "pass"


def test_a_loss_that_starts_near_minus_ln_c_by_design_is_not_a_flipped_cross_entropy():
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    target = x[:, :3].sum(1, keepdim=True).expand(-1, 3).contiguous() * 0.01
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 3))

    def gaussian_nll(mean, t):  # a fixed small variance: the loss starts negative by design
        return F.gaussian_nll_loss(mean, t, torch.full_like(mean, 0.05))

    w = _epoch(model, torch.optim.SGD(model.parameters(), lr=0.01), x, target, gaussian_nll, labels=True)
    assert w.report()["loop: loss"].status != "fail"


@pytest.mark.parametrize("first", ["critic", "generator"])
@pytest.mark.slow  # 0.50 s each on a 2-core CPU (RESULTS §51)
def test_a_wgan_critic_stepped_five_times_per_generator_step_is_a_game_in_either_order(first):
    G, D = _gan()
    gan = nn.ModuleDict({"G": G, "D": D})
    opt_g = torch.optim.RMSprop(G.parameters(), lr=5e-4)
    opt_d = torch.optim.RMSprop(D.parameters(), lr=5e-4)
    watched = [opt_d, opt_g] if first == "critic" else [opt_g, opt_d]
    with doctor.watch(D, opt_d, every=50) as wd, doctor.watch(gan, watched, every=50) as w:
        for it in range(30):
            for k in range(5):
                real, fake = _real(it * 5 + k), G(torch.randn(64, 8)).detach()
                d_loss = D(fake).mean() - D(real).mean()
                opt_d.zero_grad()
                d_loss.backward()
                opt_d.step()
                wd.step(d_loss)
            g_loss = -D(G(torch.randn(64, 8))).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            w.step(d_loss)
    for watch in (wd, w):
        report = watch.report()
        assert watch.probe.game is not None
        _not_judged(report)
        alarms = [v for v in report.verdicts if v.check.startswith("loop:") and v.status in ("warn", "fail")]
        # the critic's output bias gets no gradient in a WGAN (D(fake).mean() - D(real).mean() cancels it): true
        assert all(v.check == "loop: every trainable parameter learns" and "2.bias" in v.value for v in alarms), alarms


class _Critic(nn.Module):
    """A WGAN critic; ``detached`` adds a bias branch whose output is detached (its parameters never learn)."""

    def __init__(self, detached=False):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
        self.side = nn.Linear(2, 1) if detached else None

    def forward(self, x):
        return self.net(x) + (self.side(x).detach() if self.side is not None else 0.0)


@pytest.mark.parametrize("detached", [False, True])
def test_a_wgan_critics_output_bias_is_named_as_cancelling_not_as_a_detached_branch(detached):
    G, D = _gan()[0], _Critic(detached)
    opt_d = torch.optim.RMSprop(D.parameters(), lr=5e-4)
    with doctor.watch(D, opt_d, every=5) as w:
        for it in range(12):
            real, fake = _real(it), G(torch.randn(64, 8)).detach()
            d_loss = D(fake).mean() - D(real).mean()  # the output bias shifts both terms: its gradient is 0
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            w.step(d_loss)
    verdict = w.report()["loop: every trainable parameter learns"]
    if detached:
        assert verdict.status == "warn" and "never received a gradient: side." in verdict.value, verdict
    else:
        assert verdict.status == "info" and "net.2.bias" in verdict.value, verdict
        assert "gradient cancels" in verdict.advice and "detached" not in verdict.advice


@pytest.mark.parametrize("sigmoid", [True, False])
def test_bce_with_logits_on_sigmoid_outputs_is_named_by_watch(sigmoid):
    x, _ = _data()
    targets = (x[:, :3] > 0).float()  # 3 labels per example
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 3), *([nn.Sigmoid()] if sigmoid else []))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    verdict = _epoch(model, opt, x, targets, nn.BCEWithLogitsLoss()).report()["loop: loss"]
    if sigmoid:
        assert verdict.status == "fail" and "nn.Sigmoid (module '3')" in verdict.value, verdict
    else:
        assert verdict.status == "pass" and verdict.value.startswith("mean binary cross-entropy with logits"), verdict


def _scheduled(x, y, model, opt, sched, per_batch: bool, epochs: int, batches: int, size: int, every: int):
    """A user's loop that steps ``sched`` after every batch or after every epoch; returns the watch's report."""
    with doctor.watch(model, opt, every=every) as w:
        for _ in range(epochs):
            for i in range(0, batches * size, size):
                loss = F.cross_entropy(model(x[i : i + size]), y[i : i + size])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if per_batch:
                    sched.step()
                w.step(loss)
            if not per_batch:
                sched.step()
    return w.report()


@pytest.mark.parametrize("per_batch", [False, True])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_a_one_cycle_schedule_stepped_per_epoch_is_named(per_batch):
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs, steps = 5, 8
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=epochs, steps_per_epoch=steps)
    verdict = _scheduled(x, y, model, opt, sched, per_batch, epochs, steps, 32, 5)["loop: learning rate applied"]
    if per_batch:
        assert verdict.status == "pass"
    else:
        assert verdict.status == "warn" and "still rising at the last step" in verdict.value


class _WarmUp:
    """A warm-up by hand: the rate set at each epoch's start, rising over ``epochs`` epochs, then held."""

    def __init__(self, opt, epochs):
        self.opt, self.epochs, self.epoch = opt, epochs, 0

    def step(self):
        self.epoch += 1
        for group in self.opt.param_groups:
            group["lr"] = 0.1 * min(1.0, (self.epoch + 1) / self.epochs)


@pytest.mark.parametrize("schedule, per_batch, status", [
    ("linear warm-up of 10 steps", True, "pass"),  # then the rate holds for 50 steps
    ("warm-up over 2 of 6 epochs", False, "pass"),
    ("linear warm-up of 5 steps", False, "warn"),  # stepped per epoch over 3 epochs: still rising at the end
])
def test_a_warm_up_that_ended_and_held_its_rate_is_no_schedule_stepped_per_epoch(schedule, per_batch, status):
    x, y = _data(320)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if schedule.startswith("warm-up over"):
        for group in opt.param_groups:
            group["lr"] = 0.05
        sched, epochs, batches = _WarmUp(opt, 2), 6, 10
    else:
        total = int(schedule.split()[-2])
        sched = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=total)
        epochs, batches = 3, 20
    verdict = _scheduled(x, y, model, opt, sched, per_batch, epochs, batches, 16, 10)["loop: learning rate applied"]
    assert verdict.status == status, verdict
    if status == "warn":
        assert "still rising at the last step" in verdict.value


@pytest.mark.parametrize("zeroed, status", [("mu", "pass"), ("body", "fail")])
def test_a_zero_initialized_head_of_a_two_head_model_is_not_a_symmetry_fail(zeroed, status):
    class TwoHeads(nn.Module):  # a mean head and a scale head, concatenated
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
            self.mu, self.scale = nn.Linear(32, 3), nn.Linear(32, 3)
            nn.init.zeros_(self.mu.weight if zeroed == "mu" else self.body[2].weight)

        def forward(self, x):
            h = self.body(x)
            return torch.cat([self.mu(h), F.softplus(self.scale(h))], 1)

    x, _ = _data()
    from trainwell.doctor.activations import symmetry

    assert symmetry(TwoHeads(), x).status == status


class AutoEncoder(nn.Module):
    def __init__(self, uses_input=True):
        super().__init__()
        torch.manual_seed(0)
        self.uses_input = uses_input
        self.net = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 16), nn.Sigmoid())

    def forward(self, x):
        return self.net(x if self.uses_input else torch.zeros_like(x))


def _pixels(n=128):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, 4, generator=g) @ torch.randn(4, 16, generator=g)).sigmoid()  # soft targets in (0, 1)


@pytest.mark.parametrize("uses_input, status", [(True, "pass"), (False, "fail")])
@pytest.mark.slow  # 0.22 s each on a 2-core CPU (RESULTS §51)
def test_a_sigmoid_autoencoder_under_bce_is_judged_against_its_real_floor(uses_input, status):
    x = _pixels()
    verdict = doctor.check(AutoEncoder(uses_input), x, x, nn.BCELoss())["overfit a tiny subset"]
    assert verdict.status == status, verdict
    floor = float(F.binary_cross_entropy(x[:20], x[:20]))  # the targets' own entropy: the lowest BCE
    assert f"floor {floor:.3g}" in verdict.value


def test_a_loss_below_zero_is_clearly_lower_only_further_from_zero():
    from trainwell.doctor.baseline import _clearly_below

    assert _clearly_below(0.8, 1.0) and not _clearly_below(0.95, 1.0)
    assert _clearly_below(-42.5, -38.4) and not _clearly_below(-38.5, -38.4)


@pytest.mark.slow  # 0.27 s each on a 2-core CPU (RESULTS §51)
def test_per_pixel_binary_targets_are_memorized_to_99_percent():
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8)
    masks = (F.avg_pool2d(x, 3, 1, 1) > 0).float()
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 1, 3, padding=1))
    verdict = doctor.check(model, x, masks, nn.BCEWithLogitsLoss())["overfit a tiny subset"]
    assert verdict.status == "pass", verdict


def test_the_void_label_255_is_not_a_class_beyond_the_outputs():
    torch.manual_seed(0)
    x = torch.randn(256, 1, 8, 8)
    masks = (x[:, 0] > 0).long()
    masks[:, 0, :] = 255  # a void border, ignored by the loss
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    w = _epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, masks, nn.CrossEntropyLoss(ignore_index=255),
               labels=True)
    verdict = w.report()["loop: labels"]
    assert verdict.status == "pass" and "255 read as a void label" in verdict.value


def test_a_two_head_loss_is_not_compared_with_ln_c_alone():
    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body, self.cls, self.box = nn.Sequential(nn.Linear(20, 32), nn.ReLU()), nn.Linear(32, C), \
                nn.Linear(32, 4)

        def forward(self, x):
            h = self.body(x)
            return {"logits": self.cls(h), "boxes": self.box(h)}

    x, y = _data()
    boxes = x[:, :4] * 10  # box targets in pixels: their L1 term dwarfs ln C at the start
    model = Detector()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 256, 32):
            out = model(x[i : i + 32])
            loss = F.cross_entropy(out["logits"], y[i : i + 32]) + 5 * F.l1_loss(out["boxes"], boxes[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    verdict = w.report()["loop: loss"]
    assert verdict.status == "pass" and "first loss" not in verdict.value


@pytest.mark.parametrize("masks, fragment", [(lambda m: m[:, None], "y.squeeze(1)"),
                                             (lambda m: m.float(), "floating point: y.long()")])
def test_segmentation_masks_of_the_wrong_shape_or_dtype_get_the_conversion(masks, fragment):
    torch.manual_seed(0)
    x = torch.randn(32, 1, 8, 8)
    model = nn.Conv2d(1, 3, 3, padding=1)
    report = doctor.check(model, x, masks((x[:, 0] > 0).long()), nn.CrossEntropyLoss())
    first = report.verdicts[0]
    assert first.check == "forward and loss run" and fragment in first.advice
    assert all(v.advice == "see 'forward and loss run'" for v in report.verdicts if "could not run" in str(v.value))


@pytest.mark.parametrize("tail", ["flatten", "squeeze", "none"])
def test_a_regression_head_reshaped_before_it_is_returned_is_not_a_hidden_layer(tail):
    from trainwell.doctor.activations import variance_propagation

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.a, self.b = nn.Linear(16, 32), nn.Linear(32, 1)

        def forward(self, x):
            out = self.b(F.relu(self.a(x)))
            return out.flatten(0) if tail == "flatten" else out.squeeze(-1) if tail == "squeeze" else out

    x = torch.randn(128, 16, generator=torch.Generator().manual_seed(0))
    y = x[:, 0] if tail != "none" else x[:, :1]
    verdict = variance_propagation(Regressor(), x, y, nn.MSELoss())
    assert verdict.status == "skip" and "1 activation or weighted layer" in verdict.value  # one hidden layer only


@pytest.mark.parametrize("shape", [(8, 8), (12,)])
@pytest.mark.parametrize("flatten, status", [(lambda o: o.reshape(-1, 3), "fail"),
                                             (lambda o: o.movedim(1, -1).reshape(-1, 3), "pass")])
def test_class_scores_flattened_without_moving_the_class_axis_last_are_named(shape, flatten, status):
    torch.manual_seed(0)
    conv = nn.Conv2d if len(shape) == 2 else nn.Conv1d
    x = torch.randn(128, 1, *shape)
    masks = (x[:, 0] > 0.5).long() + (x[:, 0] < -0.5).long()  # three classes per position
    model = nn.Sequential(conv(1, 8, 3, padding=1), nn.ReLU(), conv(8, 3, 1))
    w = _epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, masks,
               lambda o, t: F.cross_entropy(flatten(o), t.reshape(-1)))
    report = w.report()
    verdict = report["loop: loss"]
    assert verdict.status == status
    if status == "fail":
        assert "movedim(1, -1)" in verdict.advice and report["learning rate (loss curve)"].status == "info"


@pytest.mark.parametrize("loss, status", [("distill", "pass"), ("mse", "warn")])
def test_a_teachers_logits_given_as_targets_are_soft_labels_not_raw_regression_targets(loss, status):
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    teacher = x[:, :C] * 8  # logits of std ~8: raw units for a regression, a sharp teacher for distillation
    student = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))

    def kd(z, t, temperature=4.0):
        return F.kl_div(F.log_softmax(z / temperature, 1), F.softmax(t / temperature, 1),
                        reduction="batchmean") * temperature**2

    w = _epoch(student, torch.optim.Adam(student.parameters(), lr=1e-3), x, teacher,
               kd if loss == "distill" else F.mse_loss, labels=True)
    verdict = w.report()["loop: labels"]
    assert verdict.status == status
    assert ("teacher's logits" in verdict.value) == (loss == "distill")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_too_large_initial_scores_are_traced_to_the_last_layer_and_its_fix_passes(seed):
    from trainwell import init
    from trainwell.doctor.initial_loss import initial_loss

    x = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(256) % 10
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    init.apply(model, "he_normal")  # what variance propagation advises for this net under torch's default init
    verdict = initial_loss(model, x, y, nn.CrossEntropyLoss())
    assert verdict.status != "pass" and "the last layer '9'" in verdict.advice
    with torch.no_grad():
        model[9].weight.mul_(0.1)  # the advice
    assert initial_loss(model, x, y, nn.CrossEntropyLoss()).status == "pass"


class _TextEncoder(nn.Module):
    """A user's transformer classifier over padded token ids; ``inverted``: the padding mask passed as is (True on
    real tokens), where torch reads True as *ignore*."""

    def __init__(self, inverted):
        super().__init__()
        torch.manual_seed(0)
        self.inverted = inverted
        self.emb = nn.Embedding(20, 16, padding_idx=0)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.cls = nn.Linear(16, 2)

    def forward(self, ids, real):
        h = self.enc(self.emb(ids), src_key_padding_mask=real if self.inverted else ~real)
        return self.cls((h * real[..., None]).sum(1) / real.sum(1, keepdim=True))


@pytest.mark.parametrize("inverted", [True, False])
def test_a_nan_initial_loss_from_an_inverted_padding_mask_is_named(inverted):
    from trainwell.doctor.initial_loss import initial_loss
    from trainwell.doctor.inputs import Inputs

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 9, (64,), generator=g)
    lengths[:8] = 8  # full-length rows: every key masked when the mask is inverted
    real = torch.arange(8)[None] < lengths[:, None]
    ids = torch.randint(1, 20, (64, 8), generator=g).masked_fill(~real, 0)
    verdict = initial_loss(_TextEncoder(inverted), Inputs((ids, real)), (ids[:, 0] > 10).long(),
                           nn.CrossEntropyLoss())
    assert (verdict.status == "fail") == inverted
    if inverted:
        assert "'enc'" in verdict.advice and "padding mask inverted" in verdict.advice


def test_the_first_module_to_output_nan_from_finite_inputs_is_named():
    from trainwell.doctor.initial_loss import initial_loss

    class LogFeatures(nn.Module):
        def forward(self, x):
            return torch.log(x)  # the inputs are standardized: negative values give NaN

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 16), LogFeatures(), nn.Linear(16, C))
    x, y = _data()
    verdict = initial_loss(model, x, y, nn.CrossEntropyLoss())
    assert verdict.status == "fail" and "'1' (LogFeatures) is the first module" in verdict.advice


def _weighted_run(loss_of, steps=30, seed=0):
    """A classifier trained with ``loss_of(logits, y, step)``; returns the watch's report."""
    torch.manual_seed(seed)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, C))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(steps):
            i = (s * 64) % 512
            loss = loss_of(model(x[i : i + 64]), y[i : i + 64], s)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    return w.report()


def _focal(z, t, s, gamma=2.0):
    log_p = F.log_softmax(z, 1).gather(1, t[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


def _sample_weighted(z, t, s):
    weights = torch.rand(len(t), generator=torch.Generator().manual_seed(s)) * 2  # e.g. from a sampler
    return (weights * F.cross_entropy(z, t, reduction="none")).mean()


def _missing_log(z, t, s, eps=0.1):
    target = F.one_hot(t, C).float() * (1 - eps) + eps / C
    return -(target * F.softmax(z, 1)).sum(1).mean()


@pytest.mark.parametrize("loss_of, status, fragment", [
    (_focal, "pass", "per-example weights"), (_sample_weighted, "pass", "per-example weights"),
    (lambda z, t, s: 2 * F.cross_entropy(z, t), "warn", "2x that of its mean"),
    (_missing_log, "warn", "not its log")])
def test_weighted_cross_entropies_are_told_from_a_scaled_one_and_a_missing_log(loss_of, status, fragment):
    verdict = _weighted_run(loss_of)["loop: loss"]
    assert verdict.status == status and fragment in verdict.value


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_a_policy_gradient_is_not_judged_as_a_supervised_loss_curve():
    torch.manual_seed(0)
    hidden = torch.randn(4, C)
    policy = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, C))
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    baseline = 0.0
    with doctor.watch(policy, opt, every=10) as w:
        for _ in range(150):
            context = torch.randn(64, 4)
            dist = torch.distributions.Categorical(logits=policy(context))
            action = dist.sample()
            reward = (action == (context @ hidden).argmax(1)).float()
            loss = -(dist.log_prob(action) * (reward - baseline)).mean()  # REINFORCE with a baseline
            opt.zero_grad()
            loss.backward()
            opt.step()
            baseline = 0.9 * baseline + 0.1 * float(reward.mean())
            w.step(loss)
    report = w.report()
    assert report["loop: loss"].status == "info" and "policy gradient" in report["loop: loss"].value
    assert report["learning rate (loss curve)"].status in ("info", "pass")


@pytest.mark.parametrize("after_swap, status", [("nothing", "fail"), ("add_param_group", "pass"),
                                                ("new optimizer", "warn")])
def test_a_head_replaced_inside_the_watched_loop_is_followed(after_swap, status):
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(40):
            if s == 20:
                model[2] = nn.Linear(32, C)  # a fresh classifier
                if after_swap == "add_param_group":
                    opt.add_param_group({"params": model[2].parameters()})
                elif after_swap == "new optimizer":
                    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            i = (s * 64) % 512
            loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    report = w.report()
    assert report["loop: optimizer holds the parameters"].status == status
    runs = [v for v in report.verdicts if v.check == "loop: optimizer.step() runs"]
    assert all(v.status == "pass" for v in runs)  # not "w.step() per micro-batch" after the new optimizer


@pytest.mark.parametrize("optimizer, status", [(torch.optim.SGD, "warn"), (torch.optim.Adam, "info")])
def test_clipping_on_every_step_is_a_smaller_rate_for_sgd_and_little_for_adam(optimizer, status):
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    opt = optimizer(model.parameters(), lr=1e-2)
    w = _steps(model, opt, x, y, 30, before_step=lambda s: nn.utils.clip_grad_norm_(model.parameters(), 1e-4))
    verdict = w.report()["loop: gradients at optimizer.step()"]
    assert verdict.status == status and "clipped on" in verdict.value


@pytest.mark.parametrize("head_schedule, status", [(lambda s: 1.0, "pass"), (lambda s: 0.5**s, "warn")])
def test_a_schedule_that_collapses_one_param_groups_rate_is_named(head_schedule, status):
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1e-3},
                           {"params": model[2].parameters(), "lr": 1e-1}])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, [lambda s: 1.0, head_schedule])  # stepped per batch
    w = _steps(model, opt, x, y, 40, after_step=lambda s: sched.step())
    verdict = w.report()["loop: learning rate applied"]
    assert verdict.status == status and ("param group 1" in verdict.value) == (status == "warn")


@pytest.mark.parametrize("dtype, lr, status", [(torch.bfloat16, 1e-4, "warn"), (torch.bfloat16, 0.05, "pass")])
def test_updates_rounded_away_by_low_precision_weights_are_named(dtype, lr, status):
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, C)).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr) if lr < 0.01 else torch.optim.SGD(model.parameters(), lr=lr)
    w = _steps(model, opt, x.to(dtype), y, 30)
    verdict = w.report()["loop: low-precision weights"]
    assert verdict.status == status and verdict.value.startswith("bfloat16 weights")


def test_nan_from_the_first_forward_is_not_blamed_on_the_learning_rate_by_the_monitors():
    class MaskedAttention(nn.Module):
        """Attention whose mask hides every key of the last query (its own position included)."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.qkv, self.out = nn.Linear(8, 24), nn.Linear(8, C)

        def forward(self, x):
            q, k, v = self.qkv(x).chunk(3, -1)
            scores = q @ k.transpose(1, 2)
            scores = scores.masked_fill(torch.ones(6, 6, dtype=torch.bool).triu(0)[None], float("-inf"))
            return self.out((scores.softmax(-1) @ v).mean(1))

    x = torch.randn(128, 6, 8)
    y = x[:, 0, :C].argmax(1)
    model = MaskedAttention()
    w = _steps(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, 12, batch=32)
    report = w.report()
    nonfinite = [v for v in report.verdicts if v.check.startswith("monitor: non-finite")]
    assert nonfinite and all(v.status == "info" and "learning rate is not the cause" in v.advice for v in nonfinite)


class _FunctionalDropout(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(20, 32), nn.Linear(32, C)

    def forward(self, x):
        return self.b(F.dropout(F.relu(self.a(x)), 0.5, self.training))  # reads self.training, no module


@pytest.mark.parametrize("back_to_train, status", [(True, "pass"), (False, "fail")])
def test_eval_mode_left_on_is_named_for_a_model_whose_forward_reads_self_training(back_to_train, status):
    x, y = _data(512)
    model = _FunctionalDropout()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(4):
            if back_to_train:
                model.train()
            for i in range(0, 512, 64):
                loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()  # validation
            with torch.no_grad():
                w.validate(float(F.cross_entropy(model(x[:64]), y[:64])))
    assert w.report()["loop: train/eval mode"].status == status


def test_a_model_without_dropout_or_batchnorm_skips_the_mode_verdict():
    x, y = _data()
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    assert _epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y).report()["loop: train/eval mode"] \
        .status == "skip"


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_float16_cross_entropy_is_a_mean_cross_entropy_not_a_policy_gradient():
    torch.manual_seed(0)
    x, y = _data(1024)
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, C)).half()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(120):
            i = (s * 64) % 1024
            loss = F.cross_entropy(model(x[i : i + 64].half()).float(), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    verdict = w.report()["loop: loss"]
    assert verdict.status == "pass" and verdict.value.startswith("mean cross-entropy")


def test_an_ema_teacher_added_to_the_model_in_the_loop_is_not_an_untrained_layer():
    import copy

    torch.manual_seed(0)
    x, y = _data(512)

    class MeanTeacher(nn.Module):
        def __init__(self):
            super().__init__()
            self.student, self.teacher = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C)), None

        def forward(self, inputs):
            return self.student(inputs)

    model = MeanTeacher()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for s in range(40):
            i = (s * 64) % 512
            loss = F.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
            if s >= 10:
                if model.teacher is None:
                    model.teacher = copy.deepcopy(model.student)  # requires_grad stays True; no loss reaches it
                with torch.no_grad():
                    target = model.teacher(x[i : i + 64]).softmax(1)
                loss = loss + F.mse_loss(model(x[i : i + 64]).softmax(1), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if model.teacher is not None:
                with torch.no_grad():
                    for t, p in zip(model.teacher.parameters(), model.student.parameters(), strict=True):
                        t.mul_(0.99).add_(0.01 * p)
            w.step(loss)
    assert w.report()["loop: optimizer holds the parameters"].status == "pass"


def test_a_lazy_model_whose_optimizer_came_before_its_first_forward_is_watched():
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.LazyLinear(C))
    w = _epoch(model, torch.optim.Adam(model.parameters(), lr=1e-2), x, y)
    assert w.report()["loop: optimizer holds the parameters"].status == "pass"


def test_the_report_leaves_the_models_buffers_as_they_were():
    class Normalizer(nn.Module):
        """Running input statistics updated in train mode, read by a hand-written forward (no BatchNorm)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(20))
            self.register_buffer("updates", torch.zeros(()))
            self.fc = nn.Linear(20, C)

        def forward(self, x):
            if self.training:
                with torch.no_grad():
                    self.updates += 1
                    self.mean.mul_(0.9).add_(0.1 * x.mean(0))
            return self.fc(F.dropout(x - self.mean, 0.1, self.training))

    x, y = _data()
    model = Normalizer()
    w = _epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert w.report()["loop: train/eval mode"].status == "pass"  # the mode matters: F.dropout reads it
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("direction", ["rows", "columns"])
def test_a_contrastive_loss_over_either_axis_of_its_similarities_is_no_softmax_over_the_batch(direction):
    class Similarities(nn.Module):
        """Two encoders; the output is the (B, B) matrix of their embeddings' similarities (CLIP's logits)."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.f, self.g = nn.Linear(12, 16), nn.Linear(12, 16)

        def forward(self, a, b):
            return self.f(a) @ self.g(b).T

    torch.manual_seed(0)
    a = torch.randn(512, 12)
    b = a + 0.3 * torch.randn(512, 12)
    model = Similarities()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 512, 64):
            logits = model(a[i : i + 64], b[i : i + 64])
            loss = F.cross_entropy(logits if direction == "rows" else logits.T, torch.arange(64))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    assert w.report()["loop: loss"].status != "fail"


def test_a_schedule_with_warm_restarts_stepped_per_batch_is_no_collapse():
    x, y = _data(512)
    model = nn.Linear(20, C)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=20)  # below 1% of the peak at step 19
    w = _steps(model, opt, x, y, 60, after_step=lambda s: sched.step())
    assert w.report()["loop: learning rate applied"].status == "pass"


def _warmup_cosine(opt, total):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / 10 if s < 10 else 0.5 * (1 + math.cos(math.pi * (s - 10) / (total - 10))))


_SCHEDULES = {  # (scheduler on opt for a run of `total` steps in `epochs` epochs, stepped per batch?)
    "multistep per batch": (lambda opt, epochs, total: torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], 0.1), True),
    "multistep per epoch": (lambda opt, epochs, total: torch.optim.lr_scheduler.MultiStepLR(opt, [1, 2], 0.1), False),
    "one cycle per epoch": (lambda opt, epochs, total: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total), False),
    "one cycle per batch": (lambda opt, epochs, total: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total), True),
    "cosine over epochs per batch": (lambda opt, epochs, total: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=epochs), True),
    "cosine over steps per batch": (lambda opt, epochs, total: torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=total), True),
    "warm-up and cosine per batch": (lambda opt, epochs, total: _warmup_cosine(opt, total), True),
}


@pytest.mark.parametrize("schedule, status, fragment", [
    ("multistep per batch", "warn", "collapsed to 1% of its peak or below"),  # two x0.1 milestones: exactly 1%
    ("multistep per epoch", "pass", ""),
    ("one cycle per epoch", "warn", "OneCycleLR changed the rate 2 times in 60 steps (every 20)"),
    ("one cycle per batch", "pass", ""),
    ("cosine over epochs per batch", "warn", "back up to its peak 9 times, every 6 steps"),
    ("cosine over steps per batch", "pass", ""),
    ("warm-up and cosine per batch", "pass", ""),
])
def test_a_schedule_stepped_at_the_wrong_rate_is_named(schedule, status, fragment):
    x, y = _data(320)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    epochs, batches = 3, 20
    build, per_batch = _SCHEDULES[schedule]
    sched = build(opt, epochs, epochs * batches)
    verdict = _scheduled(x, y, model, opt, sched, per_batch, epochs, batches, 16, 10)["loop: learning rate applied"]
    assert verdict.status == status and fragment in verdict.value, verdict


@pytest.mark.parametrize("mode, status", [("triangular", "pass"), ("cosine", "warn")])
def test_a_cyclical_triangle_stepped_per_batch_is_no_cosine_past_its_end(mode, status):
    x, y = _data(320)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if mode == "triangular":  # Smith 2017: from 1% of max_lr up and back, every 10 steps
        sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=1e-3, max_lr=0.1, step_size_up=5)
    else:  # sized in epochs, stepped per batch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    verdict = _scheduled(x, y, model, opt, sched, True, 3, 20, 16, 10)["loop: learning rate applied"]
    assert verdict.status == status, verdict
    if status == "warn":
        assert "swung from 1% of its peak" in verdict.value


@pytest.mark.parametrize("schedule, cause", [("plateau per epoch", "patience"),
                                             ("milestones per batch", "stepped per batch")])
def test_a_rate_cut_at_the_epoch_ends_is_not_blamed_on_stepping_per_batch(schedule, cause):
    x, y = _data(320)
    g = torch.Generator().manual_seed(1)
    x_val, y_val = torch.randn(128, 20, generator=g), torch.randint(0, C, (128,), generator=g)  # noisy labels
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if schedule == "plateau per epoch":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=0)
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [5, 10], 0.1)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(10):
            for i in range(0, 128, 16):
                loss = F.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if schedule == "milestones per batch":
                    sched.step()
                w.step(loss)
            with torch.no_grad():
                val_loss = float(F.cross_entropy(model(x_val), y_val))
            w.validate(val_loss)
            if schedule == "plateau per epoch":
                sched.step(val_loss)
    verdict = w.report()["loop: learning rate applied"]
    assert verdict.status == "warn" and "collapsed to 1% of its peak" in verdict.value, verdict
    assert cause in verdict.advice and ("cut only at the validations" in verdict.value) == (cause == "patience")


@pytest.mark.parametrize("times, status", [(1, "pass"), (2, "warn")])
def test_label_smoothed_cross_entropy_is_read_with_its_epsilon_and_its_scale(times, status):
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    smoothed = nn.CrossEntropyLoss(label_smoothing=0.1)
    w = _steps(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, 20,
               loss_fn=lambda o, t: times * smoothed(o, t))
    verdict = w.report()["loop: loss"]
    assert verdict.status == status and "label smoothing 0.1" in verdict.value


@pytest.mark.parametrize("lr, status", [(0.1, "pass"), (0.01, "warn")])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_a_label_smoothed_loss_curve_is_read_towards_its_floor_not_towards_0(lr, status):
    # label smoothing 0.2 over 4 classes: no output brings the loss below the smoothed targets' entropy, 0.588
    torch.manual_seed(0)
    x, y = _data(512)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, C))
    w = _steps(model, torch.optim.SGD(model.parameters(), lr=lr), x, y, 200, batch=32, every=25,
               loss_fn=nn.CrossEntropyLoss(label_smoothing=0.2))
    verdict = w.report()["learning rate (loss curve)"]
    assert verdict.status == status and "towards the floor 0.588" in verdict.value, verdict
    assert verdict.value.startswith("good" if status == "pass" else "too low")


@pytest.mark.parametrize("remade", [True, False])
def test_outputs_copied_into_a_new_leaf_are_named_as_such_not_as_an_unregistered_layer(remade):
    torch.manual_seed(0)
    x = torch.randn(256, 6)
    y = x.sum(1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(6, 1)
            self.extra = [nn.Parameter(torch.zeros(1))]  # a Python list: never registered

        def forward(self, x):
            out = self.body(x).squeeze(1)
            if remade:  # post-processed through numpy, then made a tensor again
                return torch.tensor(out.detach().numpy().clip(-10, 10), requires_grad=True)
            return out + self.extra[0]

    model = Model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=5) as w:
        for i in range(0, 256, 32):
            loss = F.mse_loss(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    verdict = w.report()["parameters registered"]
    assert verdict.status == "fail"
    if remade:
        assert "made from the batch during the step, a new leaf" in verdict.value and "numpy" in verdict.advice
    else:
        assert "extra[0]" in verdict.value and "nn.ModuleList" in verdict.advice
