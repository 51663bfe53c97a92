"""The doctor on users' own loops over sequences, graphs, rankings and folds: an LSTM over zero-padded float
sequences, a Transformer given its key padding mask, a graph network trained on its labelled nodes, a BPR ranking
model, k-fold cross-validation, a regression validated on the raw scale of its standardized targets, GroupNorm on
dense features, a CNN below a narrow dense layer and a CNN whose filters fire in part of the image. Each healthy
twin passes; each bug is named by its cause."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from trainwell import doctor


def _alarms(report, check):
    return [v for v in report if v.check == check and v.status in ("warn", "fail")]


# -- an LSTM over float sequences padded with zero frames ---------------------------------------------------------
def _padded_sequences(n=64, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    x = torch.randn(n, length, 3, generator=g) * (torch.arange(length)[None] < lengths[:, None])[..., None]
    return x, lengths, (x[torch.arange(n), lengths - 1, 0] > 0).long()


class SequenceClassifier(nn.Module):
    def __init__(self, packed):
        super().__init__()
        torch.manual_seed(0)
        self.packed = packed
        self.rnn = nn.LSTM(3, 16, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, x, lengths):
        if self.packed:
            _, (h, _) = self.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
            return self.head(h[-1])
        out, _ = self.rnn(x)
        return self.head(out[:, -1])  # the padded batch's last step: the padding after most sequences


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_an_lstm_reading_the_last_step_of_zero_padded_float_sequences_is_named(packed):
    x, lengths, y = _padded_sequences()
    found = _alarms(doctor.check(SequenceClassifier(packed), (x, lengths), y, nn.CrossEntropyLoss()), "padding")
    assert bool(found) == (not packed)
    if found:
        assert "all-zero frames" in found[0].value and "pack_padded_sequence" in found[0].advice


# -- a Transformer given its key padding mask -------------------------------------------------------------------
class TextEncoder(nn.Module):
    def __init__(self, inverted):
        super().__init__()
        torch.manual_seed(0)
        self.inverted = inverted
        self.emb = nn.Embedding(30, 16, padding_idx=0)
        self.pos = nn.Parameter(0.02 * torch.randn(10, 16))  # a fixed positional table: no longer sequences
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 2)

    def forward(self, ids):
        pad = ids == 0
        h = self.enc(self.emb(ids) + self.pos, src_key_padding_mask=~pad if self.inverted else pad)
        keep = (~pad).unsqueeze(-1).float()
        return self.head((h * keep).sum(1) / keep.sum(1))


def _token_batches(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 10, (n,), generator=g)  # every sequence padded: no NaN to show the mask
    ids = torch.randint(1, 30, (n, 10), generator=g)
    ids[torch.arange(10)[None] >= lengths[:, None]] = 0
    return ids, (ids[:, 0] > 15).long()


@pytest.mark.slow  # seconds each
@pytest.mark.parametrize("inverted", [True, False])
def test_a_key_padding_mask_that_marks_the_real_tokens_is_named_by_check_and_watch(inverted):
    ids, y = _token_batches()
    model = TextEncoder(inverted)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    pre = _alarms(doctor.check(model, ids[:32], y[:32], nn.CrossEntropyLoss(), optimizer=opt), "key padding mask")
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, len(ids), 16):
            loss = F.cross_entropy(model(ids[i : i + 16]), y[i : i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    loop = _alarms(w.report(), "loop: key padding mask")
    assert bool(pre) == bool(loop) == inverted
    if inverted:
        assert pre[0].status == loop[0].status == "fail" and "'enc'" in pre[0].value and "ids == 0" in pre[0].advice


# -- a graph network trained on its labelled nodes --------------------------------------------------------------
class GraphSAGE(nn.Module):
    """Mean aggregation over a fixed graph of all N nodes, with a separate weight for each node's own features."""

    def __init__(self, adjacency):
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("a", adjacency / adjacency.sum(1, keepdim=True).clamp_min(1))
        self.neigh, self.own = nn.Linear(8, 32), nn.Linear(8, 32)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(F.relu(self.a @ self.neigh(x) + self.own(x)))


@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_full_graph_training_on_a_train_mask_is_not_read_as_one_batch_memorized(masked):
    """With the loss on the 60 labelled nodes of 300, the gap to the validation nodes is the model's variance; with
    every node in the loss (the unlabelled ones given label 0), one batch memorized is read as before."""
    g = torch.Generator().manual_seed(0)
    n = 300
    community = torch.randint(0, 3, (n,), generator=g)
    a = (torch.rand(n, n, generator=g) < torch.where(community[:, None] == community[None], 0.06, 0.005)).float()
    x = torch.randn(n, 8, generator=g) + 0.6 * F.one_hot(community, 8).float()
    train, val = torch.arange(n) < 60, torch.arange(n) >= 150
    labels = community if masked else torch.where(train, community, 0)
    model = GraphSAGE(((a + a.T) > 0).float())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=5) as w:
        for step in range(60):
            out = model(x)
            loss = F.cross_entropy(out[train], labels[train]) if masked else F.cross_entropy(out, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
            if step % 10 == 9:
                with torch.no_grad():
                    w.validate(F.cross_entropy(model(x)[val], community[val]).item())
    report = w.report()
    inputs = report["loop: inputs"]
    assert report["overfitting"].status == "info" and "variance" in report["overfitting"].advice
    if masked:
        assert inputs.status == "info" and "only 60 of its 300 output rows" in inputs.value, inputs
    else:
        assert inputs.status == "warn" and "next(iter(loader))" in inputs.advice, inputs


# -- a BPR ranking model ------------------------------------------------------------------------------------------
class MatrixFactorization(nn.Module):
    def __init__(self, users=300, items=400):
        super().__init__()
        torch.manual_seed(0)
        self.user, self.item = nn.Embedding(users, 16), nn.Embedding(items, 16)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)

    def forward(self, users, pos, neg):
        u = self.user(users)
        return (u * self.item(pos)).sum(-1), (u * self.item(neg)).sum(-1)


def _bpr(out, _targets):
    pos, neg = out
    return -F.logsigmoid(pos - neg).mean()


def _interactions(n=256, users=300, items=400):
    g = torch.Generator().manual_seed(0)
    u = torch.randint(0, users, (n,), generator=g)
    return u, (u * 7 + torch.randint(0, 5, (n,), generator=g)) % items, torch.randint(0, items, (n,), generator=g)


def test_a_bpr_model_gets_its_gradient_checked_on_the_rows_its_examples_look_up():
    """4 examples touch 4 of 300 user rows and 8 of 400 item rows: coordinates sampled anywhere in the tables
    read 0 on both sides."""
    users, pos, neg = _interactions()
    report = doctor.check(MatrixFactorization(), (users, pos, neg), torch.ones(len(users)), _bpr)
    verdict = report["gradient check (data loss)"]
    assert verdict.status == "pass" and "vanishing" not in verdict.value, verdict


def test_a_bpr_loss_is_not_met_by_a_positive_and_a_negative_constant():
    """One scorer gives the positive and the negative item's score: an input-independent model gives both the same
    constant, a BPR loss of ln 2, not 0."""
    users, pos, neg = _interactions(users=20, items=30)
    baseline = doctor.check(MatrixFactorization(20, 30), (users, pos, neg), torch.ones(len(users)), _bpr)[
        "input-independent baseline"]
    assert "input-independent 0.693" in baseline.value and "a loss of 0" not in baseline.advice, baseline


def test_placeholder_targets_of_a_loss_that_ignores_them_are_not_read_as_missing_negatives():
    users, pos, neg = _interactions()

    def forgot_the_minus(out, _targets):
        return F.logsigmoid(out[0] - out[1]).mean()

    report = doctor.check(MatrixFactorization(), (users, pos, neg), torch.ones(len(users)), forgot_the_minus)
    assert "targets" not in report.checks
    overfit = report["overfit a tiny subset"]
    assert overfit.status == "warn" and "without bound" in overfit.value and "targets" not in overfit.advice


# -- k-fold cross-validation ----------------------------------------------------------------------------------------
def _folds(reuse):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=g)
    y = (x[:, :4] + 1.5 * torch.randn(600, 4, generator=g)).argmax(1)
    folds = torch.randperm(600, generator=g).chunk(3)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for k, held in enumerate(folds):
        train = torch.cat([f for i, f in enumerate(folds) if i != k])
        if not reuse:
            model = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 4))
            opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        if k == 2:
            check = doctor.check(model, x[train], y[train], nn.CrossEntropyLoss())
        with doctor.watch(model, opt, every=5) as w:
            for _ in range(6):
                for i in range(0, len(train), 50):
                    idx = train[i : i + 50]
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss)
                with torch.no_grad():
                    w.validate(F.cross_entropy(model(x[held]), y[held]).item())
    return check, w.report()


@pytest.mark.slow  # seconds each
def test_a_model_reused_across_folds_is_named_as_trained_before_the_fold_not_as_labels_misaligned():
    check, report = _folds(reuse=True)
    initial = check["initial loss"]
    assert initial.status in ("warn", "fail") and "already predicts these labels" in initial.advice, initial
    overfitting = report["overfitting"]
    assert overfitting.status == "warn" and "new model and optimizer for every fold" in overfitting.advice
    assert "aligned" not in overfitting.advice
    check, report = _folds(reuse=False)
    assert check["initial loss"].status == "pass" and "every fold" not in str(report["overfitting"].advice)


# -- a regression validated on the raw scale of its standardized targets --------------------------------------------
@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.slow  # 0.15 s each on a 2-core CPU (RESULTS §51)
def test_a_validation_loss_on_the_raw_scale_of_standardized_targets_is_named(raw):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1200, 10, generator=g)
    price = 250_000 + 60_000 * x[:, :3].mean(1) + 5_000 * torch.randn(1200, generator=g)
    mu, sd = price[:1000].mean(), price[:1000].std()
    y = (price - mu) / sd
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(4):
            for i in range(0, 1000, 50):
                loss = F.mse_loss(model(x[i : i + 50]).squeeze(1), y[i : i + 50])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            with torch.no_grad():
                pred = model(x[1000:]).squeeze(1)
                w.validate(F.mse_loss(pred * sd + mu, price[1000:]).item() if raw else
                           F.mse_loss(pred, y[1000:]).item())
    verdict = w.report()["overfitting"]
    if raw:
        assert verdict.status == "warn" and "not measured as the training loss is" in verdict.value, verdict
        assert "same target scale" in verdict.advice
    else:
        assert verdict.status == "pass", verdict


# -- GroupNorm on dense features ------------------------------------------------------------------------------------
class NormedMLP(nn.Module):
    def __init__(self, groups):
        super().__init__()
        torch.manual_seed(0)
        self.l1, self.norm, self.l2 = nn.Linear(20, 64), nn.GroupNorm(groups, 64), nn.Linear(64, 4)

    def forward(self, x):
        return self.l2(F.relu(self.norm(self.l1(x))))


@pytest.mark.parametrize("groups, named", [(64, 1), (32, 2), (8, None)])
@pytest.mark.slow  # 0.29 s each on a 2-core CPU (RESULTS §51)
def test_groupnorm_with_one_or_two_values_per_group_is_named_by_check_and_watch(groups, named):
    """GroupNorm(64, 64) on (N, 64) features outputs its bias whatever the input; GroupNorm(32, 64) gives -1 and +1;
    GroupNorm(8, 64) normalizes 8 values per group."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    y = x[:, :4].argmax(1)
    model = NormedMLP(groups)
    report = doctor.check(model, x, y, nn.CrossEntropyLoss())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, 256, 32):
            loss = F.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    pre, loop = _alarms(report, "normalized groups"), _alarms(w.report(), "loop: normalized groups")
    assert bool(pre) == bool(loop) == (named is not None)
    if named:
        assert pre[0].status == loop[0].status == "fail" and f"normalizes {named} value" in pre[0].value
    if named == 1:
        assert report["overfit a tiny subset"].advice.startswith("fix 'normalized groups' first")


# -- CNNs at torch's default init -----------------------------------------------------------------------------------
class BoxRegressor(nn.Module):
    """Two conv blocks, then a dense layer 8 times narrower than the flattened feature map, and two heads."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(16 * 4 * 4, 32), nn.ReLU())
        self.cls, self.box = nn.Linear(32, 3), nn.Linear(32, 4)

    def forward(self, x):
        h = self.body(x)
        return self.cls(h), self.box(h)


@pytest.mark.slow  # seconds each
def test_a_cnn_below_a_narrow_dense_layer_is_not_told_its_gradients_vanish():
    """Under He initialization the backward pass keeps the gradient's norm per example from layer to layer; its
    per-element std shrinks by the ratio of the layers' sizes (16 x 16 x 8 values below 32 units), which is no
    vanishing signal. Torch's default init reads within bounds, and so does the He init."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 1, 16, 16, generator=g)
    y = (torch.randint(0, 3, (32,), generator=g), torch.rand(32, 4, generator=g))

    def loss_fn(out, target):
        return F.cross_entropy(out[0], target[0]) + F.smooth_l1_loss(out[1], target[1])

    model = BoxRegressor()
    assert doctor.check(model, x, y, loss_fn)["variance propagation"].status == "pass"
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    verdict = doctor.check(model, x, y, loss_fn)["variance propagation"]
    assert verdict.status == "pass" and "gradient norm" in verdict.value, verdict


@pytest.mark.slow  # seconds each
def test_a_filter_silent_where_the_images_are_blank_is_not_a_dead_relu():
    """The images hold their content in the top-left quarter, the rest is exactly 0: there each filter outputs its
    bias, below 0, so every channel is off at three quarters of the positions for every example, and fires in the
    quarter with content. A channel learns wherever it fires; only one silent everywhere is dead."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(128, 1, 12, 12)
    x[:, :, :6, :6] = torch.randn(128, 1, 6, 6, generator=g)
    y = x[:, 0, :2, :2].reshape(128, -1).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4))
    with torch.no_grad():
        model[0].bias.fill_(-0.05)
    assert doctor.check(model, x, y, nn.CrossEntropyLoss())["dead units"].status == "pass"
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with doctor.watch(model, opt, every=2) as w:
        for i in range(0, 128, 16):
            loss = F.cross_entropy(model(x[i : i + 16]), y[i : i + 16])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss)
    assert not _alarms(w.report(), "monitor: dead ReLUs")
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # now every channel is off everywhere
    assert doctor.check(model, x, y, nn.CrossEntropyLoss())["dead units"].status == "fail"


# -- sliding windows over a series ------------------------------------------------------------------------------
class NextStep(nn.Module):
    """A GRU that reads a window step by step and predicts, at each step, the next one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.rnn, self.out = nn.GRU(1, 16, batch_first=True), nn.Linear(16, 1)

    def forward(self, x):
        return self.out(self.rnn(x.unsqueeze(-1))[0]).squeeze(-1)


@pytest.mark.parametrize("start, named", [(32, False), (24, True)])
def test_a_target_window_that_overlaps_the_input_window_is_named(start, named):
    """Windows x = s[t : t + 32] and y = s[t + start : t + start + 8]: starting at 24, the first 8 target steps are
    the input's last 8, and the MLP reads each of them."""
    g = torch.Generator().manual_seed(0)
    s = torch.sin(torch.arange(600) / 7.0) + 0.1 * torch.randn(600, generator=g)
    t = torch.arange(0, 500, 2)
    x = s[t[:, None] + torch.arange(32)]
    y = s[t[:, None] + start + torch.arange(16 if named else 8)]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, y.shape[1]))
    found = _alarms(doctor.check(model, x, y, nn.MSELoss()), "targets vs inputs")
    assert bool(found) == named
    if named:
        assert "y[:, :8] == x[:, -8:]" in found[0].value and "s[t + W : t + W + H]" in found[0].advice


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_next_step_sequence_model_is_not_told_its_windows_overlap():
    """y = s[t + 1 : t + 33] overlaps x = s[t : t + 32] in 31 steps by design: output j reads the input up to step j,
    never the step j + 1 it predicts."""
    s = torch.sin(torch.arange(400) / 5.0)
    t = torch.arange(0, 300, 3)
    x, y = s[t[:, None] + torch.arange(32)], s[t[:, None] + 1 + torch.arange(32)]
    assert not _alarms(doctor.check(NextStep(), x, y, nn.MSELoss()), "targets vs inputs")
