"""The doctor on users' models beyond classifiers: a recommender's embedding tables, a metric-learning embedding
under a triplet loss, an ordinal model's cumulative logits. Their outputs are not class scores and their
embedding rows are not hidden units: no verdict may read them so (each healthy model passes), while the same
bugs in a classifier are still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor import preflight as pf
from trainwell.doctor.activations import symmetry
from trainwell.doctor.baseline import input_independent_baseline
from trainwell.doctor.forward import _accuracy
from trainwell.doctor.overfit import overfit_tiny_subset

from .user_loop import epoch


class Recommender(nn.Module):
    """Matrix factorization with user and item bias tables initialized to zero (the usual choice)."""

    def __init__(self, users=30, items=40, d=8, zero_hidden=False):
        super().__init__()
        torch.manual_seed(0)
        self.u, self.i = nn.Embedding(users, d), nn.Embedding(items, d)
        self.ub, self.ib = nn.Embedding(users, 1), nn.Embedding(items, 1)
        nn.init.zeros_(self.ub.weight)
        nn.init.zeros_(self.ib.weight)
        self.mix, self.mix2 = nn.Linear(d, d), nn.Linear(d, d)
        self.out = nn.Linear(d, 1)
        if zero_hidden:
            nn.init.zeros_(self.mix.weight)

    def forward(self, pairs):
        u, i = pairs[:, 0], pairs[:, 1]
        h = F.relu(self.mix2(F.relu(self.mix(self.u(u) * self.i(i)))))
        return (self.out(h) + self.ub(u) + self.ib(i)).squeeze(1)


def test_zero_initialized_bias_tables_are_not_symmetric_units_but_a_zero_hidden_layer_is():
    pairs = torch.stack([torch.randint(0, 30, (64,)), torch.randint(0, 40, (64,))], 1)
    assert symmetry(Recommender(), pairs).status == "pass"
    verdict = symmetry(Recommender(zero_hidden=True), pairs)
    assert verdict.status == "fail" and verdict.value == "identical units in mix.weight"


def _triplet(embeddings, labels, margin=1.0):
    """Batch-hard triplet loss (Hermans et al. 2017): each anchor's farthest positive against its nearest negative."""
    d = torch.cdist(embeddings, embeddings)
    same = labels[:, None] == labels[None]
    hardest_pos = (d * same).max(1).values
    hardest_neg = (d + 1e9 * same).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


@pytest.mark.slow  # 0.38 s each on a 2-core CPU (RESULTS §51)
def test_a_triplet_embedding_is_not_read_as_class_scores_by_check_or_watch():
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = x[:, :10].argmax(1)  # 10 identities, an 8-wide embedding: labels run past the output width
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
    report = doctor.check(model, x, y, _triplet)
    assert "targets" not in [v.check for v in report.verdicts]  # no "ignore_index" read from a triplet loss
    assert "acc" not in str(report["overfit a tiny subset"].value)
    assert _accuracy(model(x), y, _triplet) is None and _accuracy(model(x), y) is not None
    w = epoch(model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y, _triplet, every=10, labels=True)
    assert w.report()["loop: labels"].status == "pass"


def test_labels_past_the_width_of_softmax_scores_are_still_named():
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = x[:, :4].argmax(1) + 1  # 1-based labels 1..4 for 4 outputs
    model = nn.Linear(16, 4)

    def focal(z, t, gamma=2.0):  # a hand-written focal loss (Lin et al. 2017) that clamps what it cannot index
        log_p = F.log_softmax(z, 1)
        return F.nll_loss((1 - log_p.exp()) ** gamma * log_p, t.clamp_max(z.shape[1] - 1))

    w = epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), x, y, focal, every=10, labels=True)
    verdict = w.report()["loop: labels"]
    assert verdict.status == "fail" and "targets up to 4 for 4 outputs" in verdict.value


def test_check_restores_buffers_left_out_of_the_state_dict():
    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 3)
            self.register_buffer("calls", torch.zeros(()), persistent=False)  # not in state_dict()

        def forward(self, x):
            self.calls += 1
            return self.fc(x)

    model = Counting()
    x = torch.randn(64, 6)
    doctor.check(model, x, x[:, :3].argmax(1), nn.CrossEntropyLoss())
    assert float(model.calls) == 0.0


def _pairs(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, 30, (n,), generator=g), torch.randint(0, 40, (n,), generator=g)], 1)


@pytest.mark.slow  # 0.42 s each on a 2-core CPU (RESULTS §51)
def test_implicit_feedback_with_no_negatives_sampled_is_named_by_check_and_watch():
    pairs = _pairs()
    ones = torch.ones(len(pairs))
    model = Recommender()
    verdict = doctor.check(model, pairs, ones, nn.BCEWithLogitsLoss())["targets"]
    assert verdict.status == "warn" and "all 256 targets are 1" in verdict.value
    w = epoch(model, torch.optim.Adam(model.parameters(), lr=1e-2), pairs, ones, F.binary_cross_entropy_with_logits,
              every=10, batch=64, labels=True)
    assert "every target in 8 batches is 1" in w.report()["loop: labels"].value


@pytest.mark.parametrize("order, status", [("sorted", "warn"), ("shuffled", "pass")])
def test_regression_data_sorted_by_its_target_is_named(order, status):
    torch.manual_seed(0)
    x = torch.randn(640, 8)
    y = x[:, :3].mean(1)
    if order == "sorted":
        idx = y.argsort()
        x, y = x[idx], y[idx]
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    w = epoch(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, lambda o, t: F.mse_loss(o.squeeze(1), t),
              every=10, batch=64, labels=True)
    assert w.report()["loop: labels"].status == status


class SparseRecommender(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.u, self.i = nn.Embedding(30, 8, sparse=True), nn.Embedding(40, 8, sparse=True)

    def forward(self, pairs):
        return (self.u(pairs[:, 0]) * self.i(pairs[:, 1])).sum(1)


@pytest.mark.slow  # 0.47 s each on a 2-core CPU (RESULTS §51)
def test_sparse_embeddings_under_adam_are_named_and_the_checks_train_them_with_sparse_adam():
    pairs = _pairs()
    liked = ((pairs[:, 0] + pairs[:, 1]) % 2).float()
    model = SparseRecommender()
    report = doctor.check(model, pairs, liked, nn.BCEWithLogitsLoss(), optimizer=torch.optim.Adam(model.parameters()))
    verdict = report["optimizer holds the parameters"]
    assert verdict.status == "fail" and "SparseAdam" in verdict.advice
    alone = doctor.check(model, pairs, liked, nn.BCEWithLogitsLoss())
    assert alone["overfit a tiny subset"].status == "pass"


class GCN(nn.Module):
    """Kipf & Welling 2017: two graph convolutions over a fixed normalized adjacency of all N nodes."""

    def __init__(self, adjacency, d=8, classes=3):
        super().__init__()
        torch.manual_seed(0)
        degree = adjacency.sum(1).rsqrt()
        self.register_buffer("a", degree[:, None] * adjacency * degree[None])
        self.l1, self.l2 = nn.Linear(d, 16), nn.Linear(16, classes)

    def forward(self, x):
        return self.a @ self.l2(F.relu(self.a @ self.l1(x)))


def test_a_full_graph_model_is_checked_on_all_its_nodes_not_called_broken():
    g = torch.Generator().manual_seed(0)
    n = 300
    adjacency = ((torch.rand(n, n, generator=g) < 0.03).float() + torch.eye(n)).clamp_max(1)
    adjacency = ((adjacency + adjacency.T) > 0).float()
    x = torch.randn(n, 8, generator=g)
    y = x[:, :3].argmax(1)
    report = doctor.check(GCN(adjacency), x, y, nn.CrossEntropyLoss())
    first = report.verdicts[0]
    assert first.check == "forward and loss run" and first.status == "info" and "300 examples" in first.value
    assert report["initial loss"].status == "pass" and not report.failed


def test_a_graph_sum_without_degree_normalization_is_named_after_the_last_layer():
    from trainwell.doctor.initial_loss import initial_loss

    g = torch.Generator().manual_seed(0)
    n = 200
    adjacency = ((torch.rand(n, n, generator=g) < 0.1).float() + torch.eye(n)).clamp_max(1)
    x = torch.randn(n, 8, generator=g)
    y = x[:, :3].argmax(1)
    model = GCN(adjacency)
    model.a = adjacency  # the raw adjacency: every node sums its ~20 neighbours
    verdict = initial_loss(model, x, y, nn.CrossEntropyLoss())
    assert verdict.status == "fail" and "something after it multiplies them" in verdict.advice
    assert "something after it" not in initial_loss(GCN(adjacency), x, y, nn.CrossEntropyLoss()).advice


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_ranking_loss_whose_targets_are_all_plus_one_by_construction_is_not_told_negatives_are_missing():
    pairs = _pairs()

    class Scorer(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb = nn.Embedding(40, 1)

        def forward(self, p):
            return self.emb(p[:, 0]).squeeze(1), self.emb(p[:, 1]).squeeze(1)

    ranking = nn.MarginRankingLoss(margin=1.0)
    report = doctor.check(Scorer(), pairs % 40, torch.ones(len(pairs)), lambda out, t: ranking(out[0], out[1], t))
    assert "targets" not in report.checks or report["targets"].status == "pass"


@pytest.mark.parametrize("order, status", [("sorted", "warn"), ("shuffled", "pass")])
def test_data_sorted_by_label_with_more_classes_than_a_batch_holds_is_named(order, status):
    g = torch.Generator().manual_seed(0)
    y = torch.arange(100).repeat_interleave(12)  # 100 classes, 12 examples each
    if order == "shuffled":
        y = y[torch.randperm(len(y), generator=g)]
    x = torch.randn(len(y), 8, generator=g) + F.one_hot(y, 100)[:, :8].float()
    model = nn.Linear(8, 100)
    w = epoch(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, batch=64, labels=True)
    assert w.report()["loop: labels"].status == status


@pytest.mark.parametrize("order, status", [("sorted", "warn"), ("shuffled", "pass")])
def test_data_sorted_by_label_with_one_class_holding_90_percent_is_named(order, status):
    # sorted batches of a 90/6/4 mix differ from the run's mix by at most 1 - sum p^2 = 0.19 (total variation)
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.zeros(1152), torch.ones(77), torch.full((51,), 2.0)]).long()
    if order == "shuffled":
        y = y[torch.randperm(len(y), generator=g)]
    x = torch.randn(len(y), 8, generator=g) + F.one_hot(y, 3).float().repeat(1, 3)[:, :8]
    model = nn.Linear(8, 3)
    w = epoch(model, torch.optim.SGD(model.parameters(), lr=0.05), x, y, batch=64, labels=True)
    verdict = w.report()["loop: labels"]
    assert verdict.status == status
    if status == "warn":
        assert "differ from the run's label mix by 0.1" in verdict.value


class Coral(nn.Module):
    """Ordinal regression (Cao et al. 2020): one score shared by K - 1 thresholds, each with its own bias."""

    def __init__(self, levels=5, blind=False):
        super().__init__()
        torch.manual_seed(0)
        self.blind = blind
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1, bias=False))
        self.biases = nn.Parameter(torch.zeros(levels - 1))

    def forward(self, x):
        return self.body(x * 0 if self.blind else x) + self.biases


def _cumulative_bce(logits, levels):
    targets = (levels[:, None] > torch.arange(logits.shape[1])[None]).float()  # level k -> k ones
    return F.binary_cross_entropy_with_logits(logits, targets)


@pytest.mark.parametrize("blind, status", [(False, "pass"), (True, "fail")])
@pytest.mark.slow  # 0.45 s each on a 2-core CPU (RESULTS §51)
def test_an_ordinal_models_slow_loss_is_memorized_given_the_steps_it_needs(blind, status):
    from trainwell.doctor.overfit import overfit_tiny_subset

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    levels = (x[:, 0] * 1.5 + 2).round().clamp(0, 4).long()
    assert overfit_tiny_subset(Coral(blind=blind), x, levels, _cumulative_bce).status == status


@pytest.mark.parametrize("first_rank, status", [(0, "pass"), (1, "warn")])
@pytest.mark.slow  # 0.23 s each on a 2-core CPU (RESULTS §51)
def test_ordinal_levels_built_from_one_based_ranks_are_named_by_watch(first_rank, status):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 8, generator=g)
    ranks = (x[:, 0] * 1.5 + 2).round().clamp(0, 4).long() + first_rank  # 5 ranks: 0..4, or 1..5
    model = Coral()
    w = epoch(model, torch.optim.Adam(model.parameters(), lr=1e-2), x, ranks, loss_fn=_cumulative_bce, every=2)
    report = w.report()
    verdict = report["loop: loss"]
    assert verdict.status in (("pass", "skip") if status == "pass" else ("warn",))
    if status == "warn":
        assert verdict.value.startswith("the binary target of output column 0 (of 4) is 1 on every row")
        # the other columns train as they should: the loss curve is read, not explained away by the constant one
        assert "explained by" not in report["learning rate (loss curve)"].value


class Siamese(nn.Module):
    """One encoder read twice; the output is the distance between the two embeddings."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))

    def forward(self, a, b):
        return F.pairwise_distance(self.emb(a), self.emb(b))


def test_a_shared_bias_that_cancels_in_a_distance_is_named_alone_not_with_its_learning_weight():
    torch.manual_seed(0)
    model, x = Siamese(), torch.randn(512, 16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(30):
            i, j = torch.randint(0, 512, (2, 32))
            same = (torch.rand(32) < 0.5).float()
            loss = F.mse_loss(model(x[i], x[j]), 2.0 * (1 - same))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    learns = {v.check: v for v in w.report().verdicts}["loop: every trainable parameter learns"]
    assert "emb.2.bias" in str(learns.value) and "emb.2.*" not in str(learns.value)
    assert model.emb[2].weight.grad.abs().sum() > 0 and model.emb[2].bias.grad.abs().sum() == 0


def test_a_segmentation_mask_whose_void_label_the_loss_does_not_ignore_is_named():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 8)
    y = (x[:, 0] > 0).long()
    y[:, 0, :] = 255
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))
    ran = {v.check: v for v in doctor.check(model, x, y, nn.CrossEntropyLoss()).verdicts}["forward and loss run"]
    assert ran.status == "fail" and "ignore_index=255" in ran.advice and "widen" not in ran.advice


def _watched(model, loss_fn, x, y, every: int):
    """A user's Adam loop over ``x, y`` in batches of 32, watched; returns the report."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=every) as w:
        for i in range(0, len(x), 32):
            loss = loss_fn(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i : i + 32])
    return w.report()


def _multi_label(n=256, labels=6):
    torch.manual_seed(0)
    x = torch.randn(n, 12)
    y = (x[:, :labels] + 0.3 * torch.randn(n, labels) > 0.4).float()  # tags: zero, one or several per row
    return x, y, nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, labels))


@pytest.mark.parametrize("loss_fn, status", [(nn.CrossEntropyLoss(), "fail"), (nn.BCEWithLogitsLoss(), "pass")])
@pytest.mark.slow  # 0.25 s each on a 2-core CPU (RESULTS §51)
def test_multi_hot_targets_under_cross_entropy_are_named_by_check_and_watch(loss_fn, status):
    x, y, model = _multi_label()
    assert int((y.sum(1) >= 2).sum()) > 20
    report = doctor.check(model, x, y, loss_fn)
    targets = [v for v in report.verdicts if v.check == "targets"]
    assert (targets[0].status, "BCEWithLogitsLoss" in targets[0].advice) == ("fail", True) if status == "fail" \
        else not targets or targets[0].status != "fail"
    labels = {v.check: v for v in _watched(model, loss_fn, x, y, every=5).verdicts}["loop: labels"]
    assert (labels.status == "fail" and "multi-hot" in labels.value) == (status == "fail")


class CandidateSetLoss(nn.Module):
    """Partial-label learning (Feng et al. 2020): each row marks a candidate set holding the true label; the loss
    is -log of the probability the softmax gives the whole set."""

    def forward(self, logits, candidates):
        inside = logits.masked_fill(candidates == 0, float("-inf"))
        return (torch.logsumexp(logits, 1) - torch.logsumexp(inside, 1)).mean()


@pytest.mark.parametrize("loss_fn, status", [(CandidateSetLoss(), "pass"), (nn.CrossEntropyLoss(), "fail")])
@pytest.mark.slow  # 0.14 s each on a 2-core CPU (RESULTS §51)
def test_candidate_label_sets_under_their_own_softmax_loss_are_not_multi_label_targets(loss_fn, status):
    torch.manual_seed(0)
    x = torch.randn(512, 12)
    truth = x[:, :5].argmax(1)
    candidates = F.one_hot(truth, 5).float()
    ambiguous = torch.rand(512) < 0.5
    candidates[ambiguous, torch.randint(0, 5, (512,))[ambiguous]] = 1  # the true label and maybe one other
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 5))
    labels = {v.check: v for v in _watched(model, loss_fn, x, candidates, every=5).verdicts}["loop: labels"]
    assert labels.status == status, labels
    assert ("multi-hot" in labels.value) and ("BCEWithLogitsLoss" in labels.advice) == (status == "fail")


@pytest.mark.parametrize("student_side, status", [(F.log_softmax, None), (F.softmax, "fail")])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_a_distillation_loss_that_gives_kl_div_probabilities_is_named(student_side, status):
    torch.manual_seed(0)
    x = torch.randn(128, 10)
    teacher = nn.Linear(10, 4)
    with torch.no_grad():
        targets = torch.cat([teacher(x).argmax(1, keepdim=True).float(), teacher(x)], 1)  # (label, teacher logits)
    kl, t = nn.KLDivLoss(reduction="batchmean"), 4.0

    def distill(out, packed):
        soft = kl(student_side(out / t, dim=-1), F.softmax(packed[:, 1:] / t, dim=-1)) * t * t
        return 0.7 * soft + 0.3 * F.cross_entropy(out, packed[:, 0].long())

    student = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 4))
    fed = [v for v in doctor.check(student, x, targets, distill).verdicts if v.check == "loss input"]
    assert (fed[0].status if fed else None) == status
    if status:
        assert "F.kl_div is given probabilities" in fed[0].value and "log_softmax" in fed[0].advice


@pytest.mark.slow  # 0.42 s each on a 2-core CPU (RESULTS §51)
def test_nll_loss_given_raw_scores_is_named_and_given_log_probabilities_is_not():
    torch.manual_seed(0)
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    fed = [v for v in doctor.check(model, x, y, nn.NLLLoss()).verdicts if v.check == "loss input"]
    assert fed and fed[0].status == "fail" and "cross_entropy" in fed[0].advice
    logp = nn.Sequential(model, nn.LogSoftmax(dim=1))
    assert not [v for v in doctor.check(logp, x, y, nn.NLLLoss()).verdicts if v.check == "loss input"]


@pytest.mark.parametrize("last, status, named", [(nn.Identity(), "skip", None),
                                                 (nn.Sigmoid(), "fail", "nn.Sigmoid (module '1')"),
                                                 (nn.Softmax(1), "warn", "all in [0, 1]")])
def test_a_squashing_layer_before_bce_with_logits_and_pos_weight_is_named_by_watch(last, status, named):
    x, y, model = _multi_label()
    model = nn.Sequential(model, last)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.linspace(1.0, 4.0, 6))
    verdict = {v.check: v for v in _watched(model, loss_fn, x, y, every=2).verdicts}["loop: loss"]
    assert verdict.status == status and (named is None or named in verdict.value), verdict


class VAE(nn.Module):
    """A variational autoencoder: the encoder's mean and log-variance, a reparameterized sample in training
    (``mu + std * eps``) and the mean in eval mode. ``cut`` samples with ``torch.normal(mu, std).detach()``:
    the reconstruction sends the encoder no gradient."""

    def __init__(self, d=16, z=3, cut=False):
        super().__init__()
        self.cut = cut
        self.enc = nn.Sequential(nn.Linear(d, 32), nn.ReLU())
        self.mu, self.logvar = nn.Linear(32, z), nn.Linear(32, z)
        self.dec = nn.Sequential(nn.Linear(z, 32), nn.ReLU(), nn.Linear(32, d))

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        std = torch.exp(0.5 * logvar)
        if self.cut:
            z = torch.normal(mu, std).detach()
        else:
            z = mu + std * torch.randn_like(std) if self.training else mu
        return self.dec(z), mu, logvar


def vae_loss(out, x, kl_sign=1.0):
    recon, mu, logvar = out
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
    return F.mse_loss(recon, x, reduction="sum") / len(x) + kl_sign * kl


def low_rank(n=64, d=16, z=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.tanh(torch.randn(n, z, generator=g) @ torch.randn(z, d, generator=g) / 2)


def test_a_vae_whose_kl_term_has_the_wrong_sign_is_named_not_passed():
    """KL subtracted instead of added: the loss falls without bound (mu and the log-variance grow), which the
    overfit passed as memorization (9.5 -> -5.8). Fitted outputs drive it to -inf: named as a term with the wrong
    sign, never passed."""
    x = low_rank()
    torch.manual_seed(0)
    verdict = doctor.check(VAE(), x, x, lambda o, t: vae_loss(o, t, kl_sign=-1.0))["overfit a tiny subset"]
    assert verdict.status == "warn", verdict
    assert "falls without bound" in verdict.value and "wrong sign" in verdict.advice


@pytest.mark.slow  # seconds each
def test_a_healthy_vae_overfits_and_one_whose_sample_cuts_the_gradient_does_not():
    """A VAE's outputs are tied through its sampled z: no free output per example is within its reach, and a
    healthy one stopped far above that floor ("too little capacity", although training it by hand bottoms out
    there too). A forward that samples is judged by where its loss stops falling, against one output for all the
    examples; a VAE whose sample sends the encoder no gradient fits no better than that and still fails."""
    x = low_rank()
    loss_fn = vae_loss
    torch.manual_seed(0)
    healthy = overfit_tiny_subset(VAE(), x, x, loss_fn)
    assert healthy.status == "pass", healthy
    assert "the forward samples" in healthy.value
    torch.manual_seed(0)
    cut = overfit_tiny_subset(VAE(cut=True), x, x, loss_fn)
    assert cut.status == "fail", cut
    assert "no better than one output for all of them" in cut.advice


class BayesLinear(nn.Module):
    """Bayes by Backprop (Blundell et al. 2015): weights sampled ``mu + softplus(rho) * eps`` in training, the
    mean ``mu`` in eval mode; ``rho`` initialized to one constant. ``sampled=False`` never uses ``rho``."""

    def __init__(self, i, o, sampled=True):
        super().__init__()
        self.sampled = sampled
        self.mu = nn.Parameter(torch.randn(o, i) / i ** 0.5)
        self.rho = nn.Parameter(torch.full((o, i), -4.0))
        self.b = nn.Parameter(torch.zeros(o))

    def forward(self, x):
        sample = self.sampled and self.training
        w = self.mu + F.softplus(self.rho) * torch.randn_like(self.mu) if sample else self.mu
        return F.linear(x, w, self.b)


class BayesNet(nn.Module):
    def __init__(self, sampled=True):
        super().__init__()
        torch.manual_seed(0)
        self.l1, self.l2 = BayesLinear(20, 32, sampled), BayesLinear(32, 4, sampled)

    def forward(self, x):
        return self.l2(F.relu(self.l1(x)))


class ZeroHiddenDropout(nn.Module):
    """A zero-initialized hidden layer before dropout: the dropout's noise does not make its units distinct."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.l1, self.l2, self.drop = nn.Linear(20, 32), nn.Linear(32, 4), nn.Dropout(0.5)
        nn.init.zeros_(self.l1.weight)

    def forward(self, x):
        return self.l2(self.drop(torch.tanh(self.l1(x))))


def _classes(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    return x, x[:, :4].argmax(1)


def test_a_bayes_layers_constant_noise_scale_is_not_a_symmetric_unit():
    x, _ = _classes()
    assert symmetry(BayesNet(), x).status == "pass"
    verdict = symmetry(ZeroHiddenDropout(), x)
    assert verdict.status == "fail" and "l1.weight" in verdict.value


@pytest.mark.parametrize("sampled", [True, False])
def test_a_parameter_used_only_in_training_mode_reaches_the_loss(sampled):
    """A Bayes layer's ``rho`` is used only when it samples, in training: it reaches the loss there. One that
    is never used is still named."""
    x, y = _classes()
    verdict = doctor.check(BayesNet(sampled), x, y, nn.CrossEntropyLoss())["parameters registered"]
    if sampled:
        assert verdict.status == "pass", verdict
    else:
        assert verdict.status == "warn" and "never reach the loss: l1.rho, l2.rho" in verdict.value


class BernoulliVAE(VAE):
    """The pytorch/examples VAE (Kingma & Welling 2014): a decoder ending in ``torch.sigmoid``, a sample drawn in
    every mode, a binary cross-entropy reconstruction. ``blind`` decodes from noise alone, ignoring the input."""

    def __init__(self, cut=False, blind=False):
        torch.manual_seed(0)
        super().__init__(cut=cut)
        self.blind = blind

    def forward(self, x):
        h = self.enc(x)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        z = z.detach() if self.cut else torch.randn_like(mu) if self.blind else z
        return torch.sigmoid(self.dec(z)), mu, logvar


def bernoulli_vae_loss(out, x):
    recon, mu, logvar = out
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (F.binary_cross_entropy(recon, x, reduction="sum") + kl) / len(x)


def _soft_pixels(n=128):
    g = torch.Generator().manual_seed(0)
    return torch.sigmoid(torch.randn(n, 3, generator=g) @ torch.randn(3, 16, generator=g))


@pytest.mark.slow  # 0.3-1.2 s each
@pytest.mark.parametrize("cut, status", [(False, "pass"), (True, "fail")])
def test_a_vae_with_a_functional_sigmoid_under_bce_gets_an_overfit_verdict(cut, status):
    """Its free outputs are fitted in (0, 1) for the tensor torch.sigmoid makes, mu and the log-variance free."""
    x = _soft_pixels()
    torch.manual_seed(0)
    verdict = overfit_tiny_subset(BernoulliVAE(cut=cut), x, x, bernoulli_vae_loss)
    assert verdict.status == status, verdict


@pytest.mark.parametrize("blind, status", [(False, "pass"), (True, "fail")])
@pytest.mark.slow  # 0.18 s each on a 2-core CPU (RESULTS §51)
def test_a_vaes_input_gain_is_measured_above_its_reconstruction_floor(blind, status):
    """A VAE's loss cannot fall near 0 (soft pixels' entropy, the sample's noise): 10% of the way from the best
    constant output down to the lowest any outputs reach is asked of it, not 10% of the loss. A VAE that decodes
    noise alone, whatever its input, still fails."""
    x = _soft_pixels()
    torch.manual_seed(0)
    verdict = input_independent_baseline(BernoulliVAE(blind=blind), x, x, bernoulli_vae_loss)
    assert verdict.status == status, verdict


def test_a_vae_sampling_in_eval_mode_with_right_gradients_is_info_not_a_warning():
    x = _soft_pixels()
    verdict = pf.gradient_check(BernoulliVAE(), x, x, bernoulli_vae_loss)
    assert verdict.status == "info" and "(good" in verdict.value and "VAE's sampling" in verdict.advice


class MeanVariance(nn.Module):
    """Heteroscedastic regression (Nix & Weigend 1994): a mean and a variance head under nn.GaussianNLLLoss."""

    def __init__(self, positive):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(1, 32), nn.Tanh())
        self.mu, self.var, self.positive = nn.Linear(32, 1), nn.Linear(32, 1), positive

    def forward(self, x):
        h = self.body(x)
        return self.mu(h).squeeze(-1), self.positive(self.var(h)).squeeze(-1)


@pytest.mark.parametrize("positive, status", [(lambda v: F.softplus(v) + 1e-4, None), (F.relu, "warn"),
                                              (lambda v: v, "fail")])
@pytest.mark.slow  # seconds each
def test_a_gaussian_nll_variance_made_by_a_relu_or_left_raw_is_named_by_check(positive, status):
    x = torch.linspace(-4, 4, 128)[:, None]
    y = torch.sin(x[:, 0]) + 0.1 * torch.randn(128, generator=torch.Generator().manual_seed(0))
    nll = nn.GaussianNLLLoss()
    report = doctor.check(MeanVariance(positive), x, y, lambda out, t: nll(out[0], t, out[1]))
    if status is None:
        assert "loss input" not in report.checks or report["loss input"].status == "pass"
    else:
        assert report["loss input"].status == status and "F.gaussian_nll_loss" in report["loss input"].value


class Regressor(nn.Module):
    """A user's regressor whose last layer gives (B, 1); ``squeeze``: the output made (B,) as the targets are."""

    def __init__(self, squeeze):
        super().__init__()
        torch.manual_seed(0)
        self.net, self.squeeze = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1)), squeeze

    def forward(self, x):
        out = self.net(x)
        return out.squeeze(1) if self.squeeze else out


@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("squeeze, loss_fn, status", [
    (False, F.mse_loss, "fail"), (False, F.smooth_l1_loss, "fail"), (True, F.mse_loss, None),
    (True, lambda out, t: F.mse_loss(out, t) + 0.1 * F.mse_loss(out, torch.tensor(0.0)), None)])
@pytest.mark.slow  # ~0.9 s: a watched loop or check run
def test_an_elementwise_loss_broadcasting_outputs_against_targets_is_named_by_check(squeeze, loss_fn, status):
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    report = doctor.check(Regressor(squeeze), x, x.sum(1), loss_fn)
    if status is None:  # a scalar target broadcast into the outputs (a pull towards 0) compares nothing wrongly
        assert "loss input" not in report.checks or report["loss input"].status == "pass"
    else:
        verdict = report["loss input"]
        assert verdict.status == "fail"
        assert "and a target of shape (64,): it broadcasts them to (64, 64)" in verdict.value


@pytest.mark.filterwarnings("ignore:Using a target size")
@pytest.mark.parametrize("squeeze, pull, status", [(False, False, "fail"), (True, True, "pass"), (True, False, "pass")])
def test_watch_names_outputs_broadcast_against_targets_but_not_a_pull_towards_a_scalar(squeeze, pull, status):
    x = torch.randn(256, 4, generator=torch.Generator().manual_seed(0))
    model = Regressor(squeeze)

    def loss_fn(out, t):
        return F.mse_loss(out, t) + (1e-3 * F.mse_loss(out, torch.tensor(0.0)) if pull else 0.0)

    w = epoch(model, torch.optim.Adam(model.parameters(), lr=1e-2), x, x.sum(1), loss_fn=loss_fn, labels=True)
    assert w.report()["loop: labels"].status == status


def test_check_shows_a_warning_of_the_users_loss_once_not_once_per_check():
    import warnings

    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    shown = []
    keep = warnings.showwarning
    warnings.showwarning = lambda message, *args, **kwargs: shown.append(str(message))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            doctor.check(Regressor(True), x, x.sum(1), lambda out, t: F.mse_loss(out, t) + 1e-3 * F.mse_loss(
                out, torch.tensor(0.0)))
    finally:
        warnings.showwarning = keep
    assert sum("Using a target size" in m for m in shown) == 1
