"""The doctor on users' variational autoencoders whose loss is wrong: the KL term subtracted instead of added (the
loss falls without bound) and the KL summed over the batch against a reconstruction averaged over its elements
(posterior collapse). A healthy VAE, and a loss that goes below 0 by design (a Gaussian NLL with a learned
variance), keep their verdicts."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.activations import variance_propagation
from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.loop_deferral import defer
from trainwell.doctor.overfit import overfit_tiny_subset
from trainwell.doctor.unbounded_loss import unbounded_fall
from trainwell.doctor.verdict import Verdict


class VAE(nn.Module):
    """Kingma & Welling's VAE as users write it: the encoder's mean and log-variance heads, a reparameterized
    sample ``mu + std * eps`` (drawn in every forward), a decoder that returns logits."""

    def __init__(self, d=32, z=4, h=64):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, h), nn.ReLU())
        self.mu, self.logvar = nn.Linear(h, z), nn.Linear(h, z)
        self.dec = nn.Sequential(nn.Linear(z, h), nn.ReLU(), nn.Linear(h, d))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.dec(z), mu, logvar


def images(n=512, d=32, seed=0):
    """Pixels in (0, 1) made from 4 latent factors, so that an autoencoder can compress them."""
    g = torch.Generator().manual_seed(seed)
    return torch.sigmoid(torch.randn(n, 4, generator=g) @ (1.5 * torch.randn(4, d, generator=g)))


def _kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def elbo(out, x):
    """The negative ELBO per example: BCE summed over the pixels plus the KL, both averaged over the batch."""
    logits, mu, logvar = out
    return (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + _kl(mu, logvar)) / len(x)


def kl_subtracted(out, x):
    logits, mu, logvar = out
    return (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") - _kl(mu, logvar)) / len(x)


def kl_summed(out, x):
    """The reconstruction averaged over every pixel of the batch, the KL summed over the batch and the latents."""
    logits, mu, logvar = out
    return F.binary_cross_entropy_with_logits(logits, x) + _kl(mu, logvar)


@pytest.mark.parametrize("seed", [2, 3])
def test_a_kl_term_subtracted_is_named_by_check_also_where_the_fit_overflows(seed):
    """With these initializations outputs fitted to the loss reach -inf and the search overflows to NaN: the
    loss falls without bound, named as a term with the wrong sign, not judged against 0 as a loss whose floor is
    unknown."""
    x = images(64)
    torch.manual_seed(seed)
    verdict = overfit_tiny_subset(VAE(), x, x, kl_subtracted)
    assert verdict.status == "warn", verdict
    assert "falls without bound" in verdict.value and "wrong sign" in verdict.advice


def _train(loss_fn, seed=0, epochs=12, lr=1e-3):
    """A user's loop: Adam over mini-batches of 32 under doctor.watch; returns the report."""
    x = images()
    torch.manual_seed(seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt) as w:
        for _ in range(epochs):
            for i in range(0, len(x), 32):
                loss = loss_fn(model(x[i : i + 32]), x[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    return w.report()


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("seed", range(2))
def test_a_kl_term_subtracted_is_named_by_watch_and_the_lr_reading_defers(seed):
    """The loss falls from 22 to -1e4 and faster and faster: a term with the wrong sign, not a learning rate
    that is too low."""
    report = _train(kl_subtracted, seed)
    verdict = report["loop: loss bounded below"]
    assert verdict.status == "warn" and "falls without bound" in verdict.value, verdict
    assert "wrong sign" in verdict.advice
    curve = report["learning rate (loss curve)"]
    assert curve.status == "info" and "explained by 'loop: loss bounded below'" in curve.value, curve


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_healthy_vae_loop_is_not_said_to_fall_without_bound():
    report = _train(elbo)
    assert "loop: loss bounded below" not in report.checks


class Heteroscedastic(nn.Module):
    """A mean and a log-variance head (Nix & Weigend 1994)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, x):
        out = self.body(x)
        return out[:, 0], out[:, 1]


def gaussian_nll(out, y):
    mean, logvar = out
    return (0.5 * (logvar + (y - mean) ** 2 / logvar.exp())).mean()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.slow  # 0.35 s each on a 2-core CPU (RESULTS §51)
def test_a_gaussian_nll_that_goes_below_zero_is_not_said_to_fall_without_bound(optimizer):
    """Precise targets: the learned variance shrinks and the loss goes from 0.3 to about -1.5, below 0 by design."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 8, generator=g)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1] * x[:, 2] + 1e-3 * torch.randn(2048, generator=g)
    torch.manual_seed(0)
    model = Heteroscedastic()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2) if optimizer == "adam" else \
        torch.optim.SGD(model.parameters(), lr=3e-3, momentum=0.9)
    with doctor.watch(model, opt) as w:
        for _ in range(4):
            for i in range(0, len(x), 32):
                loss = gaussian_nll(model(x[i : i + 32]), y[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
    assert min(w.losses[-20:]) < -0.5  # the loss is negative by design
    assert "loop: loss bounded below" not in w.report().checks


def _curve(f, n=200):
    return [f(t / n) for t in range(n)]


@pytest.mark.parametrize(("curve", "named"), [
    (_curve(lambda t: 20 - 5000 * t ** 2), True),  # a quadratic fall: mu grown at a constant pace
    (_curve(lambda t: 20 - math.expm1(12 * t)), True),  # an exponential one: a log-variance grown so
    (_curve(lambda t: 20 - 2000 * t), False),  # a constant pace, however far
    (_curve(lambda t: -30 + 31 * math.exp(-8 * t)), False),  # a loss that slows towards its lowest value
    (_curve(lambda t: 1 - 4 * t ** 3), False),  # faster and faster, to a few times its size below 0
    (_curve(lambda t: 20 - 5000 * t ** 2)[:150] + [-math.inf, math.nan], True),
    (_curve(lambda t: 2 - t)[:50] + [math.nan], False),
])
def test_the_unbounded_reading_on_curves_of_known_shape(curve, named):
    verdict = unbounded_fall(curve)
    assert (verdict is not None) == named, verdict
    if named:
        assert verdict.status == "warn" and "falls without bound" in verdict.value


def test_units_that_die_while_the_loss_falls_without_bound_defer_to_it():
    cause = Verdict("loop: loss bounded below", "warn", "the loss falls without bound: 22 -> -1e4", "-", "sign")
    dead = Verdict("monitor: dead ReLUs", "warn", "dec.1 at step 50: 55% of units never active", "-",
                   "lower the learning rate")
    nonfinite = Verdict("monitor: non-finite gradients", "fail", "mu at step 100: NaN/Inf gradient", "-", "")
    out = {v.check: v for v in defer([dead, nonfinite, cause])}
    assert out["monitor: dead ReLUs"].status == "info" and "explained by" in out["monitor: dead ReLUs"].value
    assert out["monitor: non-finite gradients"].status == "info"
    assert out["loop: loss bounded below"].status == "warn"
    kept = {v.check: v for v in defer([dead, nonfinite])}  # without the cause, the monitors keep their say
    assert kept["monitor: dead ReLUs"].status == "warn" and kept["monitor: non-finite gradients"].status == "fail"


@pytest.mark.slow  # seconds each
def test_a_kl_summed_over_the_batch_is_named_and_init_is_not_blamed():
    """Posterior collapse: the KL summed over the batch outweighs the averaged reconstruction. The gradient at the
    encoder is the KL's, which enters at the mean and log-variance, not one carried down through the decoder:
    init is not at fault. The overfit and the baseline fail and name the summed term."""
    x = images(256)
    torch.manual_seed(0)
    model = VAE()
    propagation = variance_propagation(model, x, x, kl_summed)
    assert propagation.status == "pass" and "out[1], out[2]" in propagation.value, propagation
    for verdict in (overfit_tiny_subset(model, x, x, kl_summed), input_independent_baseline(model, x, x, kl_summed)):
        assert verdict.status == "fail", verdict
        assert "outweighs the data term" in verdict.advice and "summed over the batch" in verdict.advice


@pytest.mark.slow  # seconds each
def test_a_healthy_vae_is_told_nothing_about_its_kl_term():
    x = images(256)
    torch.manual_seed(0)
    report = doctor.check(VAE(), x, x, elbo)
    assert report["overfit a tiny subset"].status == "pass"
    assert report["variance propagation"].status == "pass"
    assert not any("outweighs" in (v.advice or "") for v in report)


def _train_curve(seed, lr, targets):
    """The learning-rate verdict of a user's VAE loop (Adam, batches of 32, 12 epochs), ``w.step(loss, y=x)`` when
    ``targets``."""
    x = images()
    torch.manual_seed(seed)
    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with doctor.watch(model, opt) as w:
        for _ in range(12):
            for i in range(0, len(x), 32):
                loss = elbo(model(x[i : i + 32]), x[i : i + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=x[i : i + 32]) if targets else w.step(loss)
    return w.report()["learning rate (loss curve)"]


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize(("seed", "targets"), [(0, False), (2, True)])
def test_a_healthy_vae_curve_is_measured_towards_its_reconstruction_entropy(seed, targets):
    """The pixels' binary entropy (13.2 nats per example) is a lower bound of the loss: 22.4 -> 19 is a 40% drop
    towards it, most of it by mid-run, not a 15% drop towards 0 read as a low rate."""
    verdict = _train_curve(seed, 3e-3, targets)
    assert verdict.status == "pass" and "towards the lower bound 13" in verdict.value, verdict


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_vae_trained_at_a_rate_far_too_low_is_still_named():
    verdict = _train_curve(0, 1e-4, False)
    assert verdict.status == "warn" and verdict.value.startswith(("flat", "too low")), verdict


def test_a_bce_plus_a_term_the_outputs_do_not_reach_reads_with_the_bce_floor_as_a_bound():
    """BCE summed per example, plus a positive term beside it: the targets come back from the gradient exactly,
    the floor is their entropy (a lower bound); no reference the targets equal, or a term subtracted: no reading."""
    from trainwell.doctor.binary_floor import binary_entropy, read_binary

    g = torch.Generator().manual_seed(0)
    y = torch.rand(16, 8, generator=g, dtype=torch.float64)
    z = torch.randn(16, 8, generator=g, dtype=torch.float64, requires_grad=True)
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="sum") / 16
    bce.backward()
    bce = float(bce.detach())
    read = read_binary(z.detach(), z.grad, bce + 1.5, [y])
    assert read is not None and read["reduction"] == "per_example" and abs(read["extra"] - 1.5) < 1e-6
    assert abs(read["floor"] - float(binary_entropy(y).sum()) / 16) < 1e-9
    assert read_binary(z.detach(), z.grad, bce + 1.5) is None
    assert read_binary(z.detach(), z.grad, bce - 1.5, [y]) is None


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("seed", range(2))
def test_a_kl_summed_over_the_batch_is_named_by_watch_not_the_learning_rate(seed):
    """Posterior collapse in a user's loop: the decoded outputs end alike for every example while the loss adds a
    term they do not reach; 'loop: loss' names it and the curve's reading does not blame the rate (a pass, or an
    info explained by it)."""
    report = _train(kl_summed, seed)
    verdict = report["loop: loss"]
    assert verdict.status == "warn" and "ended alike for every example" in verdict.value, verdict
    assert "summed over the batch" in verdict.advice
    curve = report["learning rate (loss curve)"]
    explained = curve.status == "info" and "explained by" in f"{curve.value} {curve.advice}"
    assert curve.status == "pass" or explained, curve


@pytest.mark.slow  # 0.37 s each on a 2-core CPU (RESULTS §51)
def test_a_healthy_vae_loop_is_told_nothing_about_its_kl_term():
    verdict = _train(elbo)["loop: loss"]
    assert verdict.status == "pass", verdict


def test_a_kl_ramped_up_from_0_still_makes_the_floor_a_bound():
    """KL annealing: the first steps' loss is the BCE alone (beta = 0), the later ones add the KL; the BCE's floor
    is then a lower bound of the run's loss, not its floor."""
    from trainwell.doctor.binary_floor import floor_is_a_bound

    exact, more = {"on": "logits", "extra": 0.0}, {"on": "logits", "extra": 0.8}
    assert floor_is_a_bound([exact, exact, more]) and not floor_is_a_bound([exact, exact])
