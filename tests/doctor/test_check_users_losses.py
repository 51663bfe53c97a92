"""The doctor's pre-flight on losses users write themselves: a vocabulary-sized reshape inside a lambda, a mined
metric loss, a straight-through estimator, a softmax before cross-entropy, a frozen pretrained backbone, a Q-learning
TD loss. Each reading is asserted beside its twin (the healthy or the buggy version) keeping its own verdict."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

PAD, BOS, VOCAB, LENGTH = 0, 11, 12, 8  # ids 1..10 are digits; BOS and the vocabulary's width are above them


def _verdict(report, name):
    return next((v for v in report.verdicts if v.check == name), None)


class Reverser(nn.Module):
    """A user's seq2seq GRU (source, teacher-forced decoder input) -> (N, T, VOCAB) scores."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb_s, self.emb_t = nn.Embedding(VOCAB, 16, padding_idx=PAD), nn.Embedding(VOCAB, 16, padding_idx=PAD)
        self.enc, self.dec = nn.GRU(16, 32, batch_first=True), nn.GRU(16, 32, batch_first=True)
        self.out = nn.Linear(32, VOCAB)

    def forward(self, src, tin):
        _, h = self.enc(self.emb_s(src))
        return self.out(self.dec(self.emb_t(tin), h)[0])


def _reversal_batch(n=64):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, LENGTH + 1, (n,), generator=g)
    src = torch.randint(1, 11, (n, LENGTH), generator=g)
    src[torch.arange(LENGTH)[None] >= lengths[:, None]] = PAD
    tgt = torch.full((n, LENGTH), PAD)
    for i in range(n):
        tgt[i, : lengths[i]] = src[i, : lengths[i]].flip(0)
    tin = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], 1)
    return (src, tin), tgt


@pytest.mark.slow  # seconds each
@pytest.mark.parametrize("ignored, named", [(PAD, False), (-100, True)])
def test_padding_ignored_by_a_loss_that_reshapes_to_the_vocabulary_is_not_named(ignored, named):
    (src, tin), tgt = _reversal_batch()
    assert int(tgt.max()) + 1 < VOCAB  # the targets do not reach the output's width
    crit = nn.CrossEntropyLoss(ignore_index=ignored)
    report = doctor.check(Reverser(), (src, tin), tgt, lambda out, y: crit(out.reshape(-1, VOCAB), y.reshape(-1)))
    verdict = _verdict(report, "next-token targets")
    assert (verdict is not None and verdict.status == "warn" and f"ignore_index={PAD}" in verdict.advice) == named


def test_a_loss_the_padding_probe_cannot_run_is_unknown_not_a_loss_that_counts_padding():
    from trainwell.doctor.sequence_targets import _ignores

    def picky(out, y):
        raise RuntimeError("needs the model's own extras")

    _, tgt = _reversal_batch()
    assert _ignores(picky, tgt, PAD) is None
    assert _ignores(lambda out, y: F.cross_entropy(out.reshape(-1, VOCAB), y.reshape(-1)), tgt, PAD,
                    torch.randn(len(tgt), LENGTH, VOCAB)) is False


def _batch_hard_triplet(emb, y, margin=0.2):
    """A user's batch-hard triplet loss (Hermans et al. 2017): the farthest positive against the nearest negative."""
    emb = F.normalize(emb, dim=1)
    dist = torch.cdist(emb, emb)
    same = y[:, None] == y[None]
    hardest_pos = (dist * same).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


class Embedder(nn.Module):
    def __init__(self, dead=False):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.head = nn.Linear(20, 64), nn.Linear(64, 8)
        if dead:  # every hidden unit off on every input: the embedding is the head's bias alone
            nn.init.constant_(self.body.bias, -100.0)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _clusters(n=128, classes=8):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % classes  # the first examples are all of different classes: no positive pair among them
    return torch.randn(classes, 20, generator=g)[y] + 1.5 * torch.randn(n, 20, generator=g), y


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_mined_triplet_loss_zero_on_the_first_examples_is_checked_on_examples_that_share_a_label():
    x, y = _clusters()
    with torch.no_grad():
        first, whole = _batch_hard_triplet(Embedder()(x[:4]), y[:4]), _batch_hard_triplet(Embedder()(x), y)
    assert float(first) == 0.0 < float(whole)
    verdict = _verdict(doctor.check(Embedder(), x, y, _batch_hard_triplet), "gradient check (data loss)")
    assert verdict.status == "pass" and "share a label" in verdict.value


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_dead_units_under_a_triplet_loss_are_still_vanishing_gradients():
    x, y = _clusters()
    verdict = _verdict(doctor.check(Embedder(dead=True), x, y, _batch_hard_triplet), "gradient check (data loss)")
    assert verdict.status == "warn" and "vanishing gradients" in verdict.value


def test_vanishing_gradients_with_round_off_jumps_still_read_vanishing():
    """The triplet loss above on dead units: cdist's round-off made two centred differences jump by ~7e-9 on one
    CPU, read as kink crossings; autograd's gradient vanishes there too, so the verdict is still vanishing
    gradients, whatever the CPU's rounding."""
    from trainwell.doctor.gradient_check import GRAD_ATOL, _Comparison, _grade

    jumped = _grade("gradient check", _Comparison(checked=20, vanishing=18, crossings=2, noise=2), GRAD_ATOL, True, "")
    assert jumped.status == "warn" and "vanishing gradients" in jumped.value and "round-off" in jumped.value
    real = _grade("gradient check", _Comparison(checked=20, vanishing=18, crossings=2, noise=1), GRAD_ATOL, True, "")
    assert real.status == "pass"  # a crossing where autograd's gradient is not 0: a real kink, not noise


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_loss_that_is_zero_on_every_example_has_no_gradient_to_check():
    x, y = _clusters()
    verdict = _verdict(doctor.check(Embedder(), x, y, lambda e, t: _batch_hard_triplet(e, t, margin=-10.0)),
                       "gradient check (data loss)")
    assert verdict.status == "skip" and "exactly 0" in verdict.value


class Quantize(torch.autograd.Function):
    """A user's 4-level quantizer with a straight-through backward (Bengio et al. 2013)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x.clamp(-1, 1) * 1.5) / 1.5

    @staticmethod
    def backward(ctx, g):
        return g


class Swish(torch.autograd.Function):
    """A user's hand-written x * sigmoid(x); ``wrong``: the x s (1 - s) term of its derivative is missing."""

    wrong = False

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return g * s if Swish.wrong else g * (s + x * s * (1 - s))


class Constant(torch.autograd.Function):
    """A wrong custom function: its forward ignores its input, its backward passes a gradient to it."""

    @staticmethod
    def forward(ctx, x):
        return torch.ones_like(x)

    @staticmethod
    def backward(ctx, g):
        return g


class QuantizedNet(nn.Module):
    """``quant``: 'function' (a straight-through custom Function), 'detach' (``h + (q(h) - h).detach()``),
    'none' (a smooth net) or 'constant' (a custom Function that ignores its input)."""

    def __init__(self, quant):
        super().__init__()
        torch.manual_seed(0)
        self.quant = quant
        self.fc1, self.fc2, self.fc3 = nn.Linear(20, 64), nn.Linear(64, 64), nn.Linear(64, 3)

    def forward(self, x):
        h = Swish.apply(self.fc2(Swish.apply(self.fc1(x))))
        if self.quant == "function":
            h = Quantize.apply(h)
        elif self.quant == "detach":
            h = h + (torch.round(h.clamp(-1, 1) * 1.5) / 1.5 - h).detach()
        elif self.quant == "constant":
            h = torch.cat([Constant.apply(h[:, :32]), h[:, 32:]], 1)
        return self.fc3(h)


def _gradient_verdict(quant, wrong=False):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 20, generator=g), torch.randint(0, 3, (64,), generator=g)
    Swish.wrong = wrong
    try:
        return _verdict(doctor.check(QuantizedNet(quant), x, y, nn.CrossEntropyLoss()), "gradient check (data loss)")
    finally:
        Swish.wrong = False


@pytest.mark.parametrize("quant", ["function", "detach"])
@pytest.mark.slow  # 0.22 s each on a 2-core CPU (RESULTS §51)
def test_a_straight_through_quantizer_is_read_as_a_surrogate_backward_not_a_wrong_one(quant):
    verdict = _gradient_verdict(quant)
    assert verdict.status == "info" and "piecewise constant" in verdict.advice and "straight-through" in verdict.advice


@pytest.mark.slow  # 0.31 s each on a 2-core CPU (RESULTS §51)
def test_a_wrong_custom_backward_on_a_smooth_forward_still_fails():
    assert _gradient_verdict("none").status == "pass"
    verdict = _gradient_verdict("none", wrong=True)
    assert verdict.status == "fail" and "check custom backward code" in verdict.advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_custom_backward_giving_a_gradient_to_an_input_its_forward_ignores_still_fails():
    verdict = _gradient_verdict("constant")
    assert verdict.status == "fail" and "check custom backward code" in verdict.advice


class TwoHeads(nn.Module):
    """A user's multi-task model returning a dict: 10 class scores (ending with a Softmax when ``softmax``) and a
    regression output."""

    def __init__(self, softmax):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(16, 64), nn.ReLU())
        self.cls = nn.Sequential(nn.Linear(64, 10), nn.Softmax(dim=1)) if softmax else nn.Linear(64, 10)
        self.reg = nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        return {"reg": self.reg(h).squeeze(-1), "digit": self.cls(h)}


def _two_task_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    return x, {"cls": torch.randint(0, 10, (n,), generator=g), "reg": x[:, 0].clone()}


def _summed_loss(out, t):
    return F.cross_entropy(out["digit"], t["cls"]) + F.mse_loss(out["reg"], t["reg"])


def _likelihood_loss(out, t):  # probabilities read as probabilities: the Softmax is right here
    return F.nll_loss(torch.log(out["digit"] + 1e-12), t["cls"]) + F.mse_loss(out["reg"], t["reg"])


def test_a_softmax_before_cross_entropy_in_one_head_of_a_summed_loss_fails_the_overfit_at_its_floor():
    x, y = _two_task_data()
    verdict = _verdict(doctor.check(TwoHeads(softmax=True), x, y, _summed_loss), "overfit a tiny subset")
    assert verdict.status == "fail" and "out['digit']" in verdict.advice and "remove the Softmax" in verdict.advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_raw_scores_or_probabilities_read_as_probabilities_still_overfit():
    x, y = _two_task_data()
    assert _verdict(doctor.check(TwoHeads(softmax=False), x, y, _summed_loss), "overfit a tiny subset").status == "pass"
    assert _verdict(doctor.check(TwoHeads(softmax=True), x, y, _likelihood_loss),
                    "overfit a tiny subset").status == "pass"


def test_the_floor_of_cross_entropy_on_probabilities():
    from trainwell.doctor.probability_floor import probability_floor

    rows = torch.eye(10)  # one-hot rows: the probabilities closest to the labels
    assert probability_floor(10) == pytest.approx(float(F.cross_entropy(rows, torch.arange(10))))


class FineTuned(nn.Module):
    """A user's pretrained backbone (its features large: weights scaled up in pretraining) under a new 5-way head;
    ``frozen``: the backbone's parameters do not train."""

    def __init__(self, frozen):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        with torch.no_grad():
            for layer in (self.backbone[0], self.backbone[2]):
                layer.weight.mul_(5.0)
        self.backbone.requires_grad_(not frozen)
        self.head = nn.Linear(64, 5)

    def forward(self, x):
        return self.head(self.backbone(x))


def _initial_loss_advice(frozen):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 16, generator=g), torch.randint(0, 5, (128,), generator=g)
    verdict = _verdict(doctor.check(FineTuned(frozen), x, y, nn.CrossEntropyLoss()), "initial loss")
    assert verdict.status in ("warn", "fail")
    return verdict.advice


def test_a_frozen_pretrained_backbone_is_not_told_to_change_its_init():
    advice = _initial_loss_advice(frozen=True)
    assert "Xavier/He" not in advice and "backbone.2' scales" not in advice
    assert "the last layer 'head'" in advice and "frozen" in advice and "normalize" in advice


def test_a_backbone_that_trains_is_still_named_for_its_init():
    advice = _initial_loss_advice(frozen=False)
    assert "scales the signal std" in advice and "Xavier/He" in advice and "frozen" not in advice


STATES = 12


class QNet(nn.Module):
    """A user's Q-network over one-hot states of a 12-state chain, two actions."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(STATES, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.body(x))


def _replay_batch(n=256, seed=0):
    """States, actions and TD targets r + gamma max Q'(s') of a chain walk (reward 1 at the end, -0.01 a step):
    the same target for the same (state, action), near 0.6 on average, spread 0.15."""
    g = torch.Generator().manual_seed(seed)
    s, a = torch.randint(0, STATES - 1, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)
    steps_left = (STATES - 1 - (s + 2 * a - 1).clamp(0, STATES - 1)).float()
    target = torch.where(steps_left == 0, 1.0, -0.01 + 0.95 ** steps_left)
    return F.one_hot(s, STATES).float(), (a, target)


def _td_huber(q, y):
    return F.smooth_l1_loss(q.gather(1, y[0][:, None]).squeeze(1), y[1])


def test_td_targets_of_a_q_network_are_not_told_to_be_standardized():
    x, y = _replay_batch()
    torch.manual_seed(0)
    verdict = _verdict(doctor.check(QNet(), x, y, _td_huber), "initial loss")
    assert verdict.status != "warn" and "standardize" not in verdict.advice and "chosen output" in verdict.value


@pytest.mark.slow  # 0.3-1.2 s each
def test_targets_far_from_unit_are_still_named_for_a_loss_on_every_output():
    x, (a, target) = _replay_batch()
    torch.manual_seed(0)

    def two_regressions(out, y):  # both outputs regressed on every row: a data set's targets
        return F.mse_loss(out[:, 0], y[0].float()) + F.mse_loss(out[:, 1], y[1])

    verdict = _verdict(doctor.check(QNet(), x, (a, target + 5.0), two_regressions), "initial loss")
    assert verdict.status == "warn" and "standardize" in verdict.advice


@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_a_q_network_memorizes_a_few_deterministic_td_targets_whatever_its_init():
    from trainwell.doctor.inputs import StructuredLoss, Targets
    from trainwell.doctor.overfit import overfit_tiny_subset

    x, (a, target) = _replay_batch()
    for seed in range(12):
        torch.manual_seed(100 + seed)
        verdict = overfit_tiny_subset(QNet(), x, Targets((a, target)), StructuredLoss(_td_huber))
        assert verdict.status == "pass", (seed, verdict.value)


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_a_q_network_that_cannot_fit_still_fails_the_overfit():
    from trainwell.doctor.inputs import StructuredLoss, Targets
    from trainwell.doctor.overfit import overfit_tiny_subset

    x, (a, target) = _replay_batch()
    torch.manual_seed(0)
    frozen = QNet()
    nn.init.zeros_(frozen.head.weight)
    frozen.head.requires_grad_(False)  # a zeroed, frozen head: the body trains but never reaches the values
    verdict = overfit_tiny_subset(frozen, x, Targets((a, target)), StructuredLoss(_td_huber))
    assert verdict.status == "fail"


class _Heteroscedastic(nn.Module):
    """A user's regression with a learned variance: (mean, softplus(.) + 1e-6), trained with GaussianNLLLoss;
    ``blind`` ignores the inputs."""

    def __init__(self, blind=False):
        super().__init__()
        torch.manual_seed(0)
        self.body, self.blind = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 2)), blind

    def forward(self, x):
        out = self.body(torch.zeros_like(x) if self.blind else x)
        return out[:, 0], F.softplus(out[:, 1]) + 1e-6


def _gaussian_nll(out, y):
    mean, var = out
    return F.gaussian_nll_loss(mean, y, var)


@pytest.mark.slow  # seconds each
def test_gaussian_nll_model_is_overfit_though_free_variances_leave_the_domain():
    """The overfit check's floor search over free outputs steps a free variance below 0, where GaussianNLLLoss
    raises: the check still trains the copy (the floor unknown, judged against 0) instead of being skipped."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 16, generator=g)
    y = x[:, 0] + 0.3 * torch.randn(256, generator=g)
    report = doctor.check(_Heteroscedastic(), x, y, _gaussian_nll)
    overfit = _verdict(report, "overfit a tiny subset")
    assert overfit.status == "pass", overfit.value
    assert _verdict(report, "input-independent baseline").status != "skip"
    blind = _verdict(doctor.check(_Heteroscedastic(blind=True), x, y, _gaussian_nll), "overfit a tiny subset")
    assert blind.status != "pass" and "skipped" not in blind.value
