"""The doctor on training patterns users write around their own models: a mixture of experts returning its
load-balancing loss, gradient checkpointing, a multi-task model with a weighted sum of losses, a Siamese encoder
under a cosine embedding loss, a check batch cut from data sorted by label, fine-tuning that unfreezes a backbone,
and gradient accumulation under a per-step cosine schedule. Each healthy twin passes; each bug is named by its
cause."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from trainwell import doctor

C, D = 4, 20


def _blobs(n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=g)
    return x, x[:, :C].argmax(1)


def _alarms(report, prefix="loop:"):
    return [v for v in report if v.check.startswith(prefix) and v.status in ("warn", "fail")]


class MixtureOfExperts(nn.Module):
    """Top-1 routing over 4 experts; forward returns (logits, aux), aux the Switch Transformer's balancing loss."""

    def __init__(self, experts=4, hidden=32):
        super().__init__()
        self.router = nn.Linear(D, experts)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(D, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                                     for _ in range(experts))
        self.head = nn.Linear(hidden, C)

    def forward(self, x):
        gates = self.router(x).softmax(-1)
        top = gates.argmax(-1)
        rows = torch.arange(len(x))
        out = torch.stack([expert(x) for expert in self.experts], 1)
        chosen = out[rows, top] * gates[rows, top, None]
        load = F.one_hot(top, gates.shape[1]).float().mean(0)
        aux = gates.shape[1] * (load * gates.mean(0)).sum()
        return self.head(chosen), aux


def _moe_check(item):
    torch.manual_seed(0)
    x, y = _blobs(256)

    def loss_fn(out, y):
        logits, aux = out
        return F.cross_entropy(logits, y) + 0.01 * (aux.item() if item else aux)

    model = MixtureOfExperts()
    return doctor.check(model, x, y, loss_fn, optimizer=torch.optim.Adam(model.parameters(), lr=2e-3))


@pytest.mark.slow  # 0.52 s each on a 2-core CPU (RESULTS §51)
def test_a_mixture_of_experts_returning_its_balancing_loss_gets_every_check():
    """The scalar aux beside the (B, C) scores has no example axis: the overfit and baseline fits keep it at the
    model's value instead of failing to slice it."""
    report = _moe_check(item=False)
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]
    assert report["input-independent baseline"].status == "pass", report["input-independent baseline"]
    assert report.status == "pass", [v for v in report if v.status != "pass"]


@pytest.mark.slow  # 0.3-1.2 s each
def test_an_auxiliary_loss_taken_with_item_is_named_by_the_gradient_check_not_as_a_custom_backward():
    """aux.item() still moves the loss with the router's weights (the centred differences see it), while autograd
    sends the router nothing from it; no hand-written backward is in the graph."""
    verdict = _moe_check(item=True)["gradient check (data loss)"]
    assert verdict.status == "fail" and "router.weight" in verdict.advice, verdict
    assert ".item()" in verdict.advice and "custom backward" not in verdict.advice, verdict


@pytest.mark.slow  # ~0.3 s: a watched loop or check run
def test_check_names_a_batch_of_one_class_cut_from_data_sorted_by_label():
    """The first 256 rows of a table sorted by class hold one class: a bias alone fits them. The targets verdict
    says so, and the initial loss and the baseline, whose readings follow from it, name it first."""
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.zeros(600), torch.ones(200), torch.full((120,), 2.0), torch.full((80,), 3.0)]).long()
    x = 1.5 * torch.randn(C, 16, generator=g)[y] + torch.randn(len(y), 16, generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, C))
    report = doctor.check(model, x[:256], y[:256], nn.CrossEntropyLoss())
    targets = report["targets"]
    assert targets.status == "warn" and targets.value == "all 256 targets are 0", targets
    baseline = report["input-independent baseline"]
    assert baseline.status in ("warn", "fail") and baseline.advice.startswith("fix 'targets' first"), baseline
    shuffled = torch.randperm(len(y), generator=g)[:256]
    assert "targets" not in doctor.check(model, x[shuffled], y[shuffled], nn.CrossEntropyLoss()).checks


class Checkpointed(nn.Module):
    def __init__(self, reentrant):
        super().__init__()
        self.reentrant = reentrant
        self.block = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.block2 = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, C)

    def forward(self, x):
        h = checkpoint(self.block, x, use_reentrant=self.reentrant)
        return self.head(checkpoint(self.block2, h, use_reentrant=self.reentrant))


def _train(model, opt, x, y, epochs=2, batch=64, loss_of=None):
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(epochs):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                idx = perm[i : i + batch]
                loss = loss_of(model, x[idx], y[idx]) if loss_of else F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=y[idx])
    return w.report()


@pytest.mark.slow  # seconds each
def test_a_reentrant_checkpoint_on_the_data_tensor_is_named_by_watch_and_by_the_checks_fits():
    """torch warns "None of the inputs have requires_grad=True" (once, and not at all under a user's ignore
    filter); the watch records it and names it as the reason the checkpointed block never learns. In the
    check, the overfit that fails with the block frozen at init names it first. Under torch.no_grad torch warns
    for every reentrant segment: a healthy one (after a first layer) validated so is not named, and a side
    branch detached by mistake beside it is named as detached."""
    x, y = _blobs(512)
    for reentrant in (True, False):
        torch.manual_seed(0)
        model = Checkpointed(reentrant)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits = doctor.check(model, x[:256], y[:256], F.cross_entropy, optimizer=opt)["overfit a tiny subset"]
            report = _train(model, opt, x, y)
        verdict = report["loop: every trainable parameter learns"]
        if reentrant:
            assert verdict.status == "warn" and "block.0.*" in verdict.value, verdict
            assert "reentrant" in verdict.value and "use_reentrant=False" in verdict.advice, verdict
            assert fits.status == "fail" and fits.advice.startswith("fix 'parameters registered' first"), fits
        else:
            assert verdict.status == "pass" and not _alarms(report), _alarms(report)
            assert fits.status == "pass", fits
    torch.manual_seed(0)
    model = CheckpointedAfterStem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = _validated_under_no_grad(model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y)
    verdict = w.report()["loop: every trainable parameter learns"]
    assert verdict.status == "warn" and verdict.value == "never received a gradient: side.*", verdict
    assert "detached branch" in verdict.advice and "use_reentrant" not in verdict.advice, verdict


class CheckpointedAfterStem(nn.Module):
    """A reentrant segment after a first layer (its input requires a gradient in training), and a side branch
    detached by mistake."""

    def __init__(self):
        super().__init__()
        self.stem, self.side = nn.Linear(D, 64), nn.Linear(D, 64)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, C)

    def forward(self, x):
        h = checkpoint(self.block, self.stem(x), use_reentrant=True)
        return self.head(h + F.relu(self.side(x)).detach())


def _validated_under_no_grad(model, opt, x, y):
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for k in range(0, len(x), 64):
                loss = F.cross_entropy(model(x[k : k + 64]), y[k : k + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            with torch.no_grad():
                w.validate(F.cross_entropy(model(x), y).item())
    return w


class MultiTask(nn.Module):
    def __init__(self, detached=False):
        super().__init__()
        self.detached = detached
        self.trunk = nn.Sequential(nn.Linear(D, 64), nn.ReLU())
        self.cls, self.reg = nn.Linear(64, C), nn.Linear(64, 1)

    def forward(self, x):
        h = self.trunk(x)
        reg = self.reg(h).squeeze(1)
        return {"cls": self.cls(h), "reg": reg.detach() if self.detached else reg}


@pytest.mark.slow  # 0.41 s each on a 2-core CPU (RESULTS §51)
def test_a_task_weighted_by_zero_is_told_from_a_detached_head():
    """A loss weight of 0 sends the regression head a gradient of exactly 0 (backward reaches it); a detached head
    gets none at all. Both never learn; the causes differ."""
    x, y = _blobs(512)
    value = x[:, 4] + 0.5 * x[:, 5]
    verdicts = {}
    for case, weight, detached in (("healthy", 0.5, False), ("zero weight", 0.0, False), ("detached", 0.5, True)):
        torch.manual_seed(0)
        model = MultiTask(detached)

        def loss_of(m, xb, yb, weight=weight):
            out = m(xb)
            return F.cross_entropy(out["cls"], yb) + weight * F.mse_loss(out["reg"], value[: len(xb)])

        report = _train(model, torch.optim.Adam(model.parameters(), lr=3e-3), x, y, loss_of=loss_of)
        verdicts[case] = report["loop: every trainable parameter learns"]
    assert verdicts["healthy"].status == "pass", verdicts["healthy"]
    zero, cut = verdicts["zero weight"], verdicts["detached"]
    assert zero.status == "warn" and "exactly 0" in zero.value and "reg.*" in zero.value, zero
    assert "multiplied by 0" in zero.advice and "detached" not in zero.advice, zero
    assert cut.status == "warn" and "never received a gradient: reg.*" in cut.value, cut
    assert "detached branch" in cut.advice, cut


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, 16))

    def forward(self, a, b):
        return self.encoder(a), self.encoder(b)


@pytest.mark.slow  # seconds each
def test_cosine_embedding_loss_given_0_1_targets_is_named_by_check_and_watch():
    """CosineEmbeddingLoss reads 1 as a similar pair and -1 as a dissimilar one; the rows of 0 that
    (ya == yb).float() gives add nothing, so the other-class pairs are never pushed apart."""
    x, y = _blobs(1024)
    g = torch.Generator().manual_seed(1)
    i, j = torch.randint(0, len(x), (2, len(x)), generator=g)
    same = (y[i] == y[j]).float()
    criterion = nn.CosineEmbeddingLoss(margin=0.2)
    for targets, named in ((same, True), (2 * same - 1, False)):
        torch.manual_seed(0)
        model = Siamese()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        fed = doctor.check(model, (x[i][:256], x[j][:256]), targets[:256], lambda out, t: criterion(*out, t),
                           optimizer=opt)
        with doctor.watch(model, opt, every=5) as w:
            for k in range(0, len(x), 64):
                loss = criterion(*model(x[i][k : k + 64], x[j][k : k + 64]), targets[k : k + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=targets[k : k + 64])
        report = w.report()
        if named:
            assert fed["loss input"].status == "fail" and "2 * same - 1" in fed["loss input"].advice
            verdict = report["loop: loss input"]
            assert verdict.status == "fail" and "targets 0, 1" in verdict.value, verdict
        else:
            assert "loss input" not in fed.checks
            assert not _alarms(report), _alarms(report)


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(D, 64), nn.BatchNorm1d(64), nn.ReLU())
        self.head = nn.Linear(64, C)

    def forward(self, x):
        return self.head(self.backbone(x))


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_backbone_unfrozen_but_never_added_to_the_optimizer_is_one_cause_not_two():
    """Frozen for an epoch (in eval mode), then unfrozen: its BatchNorm runs in train mode, as it should once it
    trains. Left out of the optimizer, the ownership verdict names the cause; the mode verdict does not ask for
    eval() on a layer meant to train. Added with add_param_group, every loop verdict passes."""
    x, y = _blobs(512)
    for added in (True, False):
        torch.manual_seed(0)
        model = Backbone()
        model.backbone.requires_grad_(False)
        opt = torch.optim.Adam(model.head.parameters(), lr=3e-3)
        with doctor.watch(model, opt, every=5) as w:
            for epoch in range(3):
                model.train()
                if epoch == 0:
                    model.backbone.eval()
                else:
                    model.backbone.requires_grad_(True)
                if epoch == 1 and added:
                    opt.add_param_group({"params": model.backbone.parameters(), "lr": 3e-4})
                for k in range(0, len(x), 64):
                    loss = F.cross_entropy(model(x[k : k + 64]), y[k : k + 64])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    w.step(loss)
        report = w.report()
        if added:
            assert not _alarms(report), _alarms(report)
        else:
            assert report["loop: optimizer holds the parameters"].status == "fail"
            mode = report["loop: train/eval mode"]
            assert mode.status == "info" and "unfrozen" in mode.value and "eval()" not in mode.advice, mode


@pytest.mark.slow  # 0.3-1.2 s each
def test_a_cosine_sized_in_optimizer_steps_but_stepped_per_micro_batch_is_named():
    """4 micro-batches per optimizer step: a CosineAnnealingLR(T_max=optimizer steps) stepped after every
    micro-batch reaches 0 at a quarter of the run and climbs back to its peak twice."""
    x, y = _blobs(2048)
    accumulate, micro = 4, 32
    steps = len(x) // (micro * accumulate) * 2
    for per_micro in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(D, 64), nn.ReLU(), nn.Linear(64, C))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        with doctor.watch(model, opt, every=10) as w:
            for _ in range(2):
                opt.zero_grad()
                for k, i in enumerate(range(0, len(x), micro)):
                    loss = F.cross_entropy(model(x[i : i + micro]), y[i : i + micro])
                    (loss / accumulate).backward()
                    if per_micro:
                        schedule.step()
                    if (k + 1) % accumulate == 0:
                        opt.step()
                        if not per_micro:
                            schedule.step()
                        opt.zero_grad()
                        w.step(loss)
        verdict = w.report()["loop: learning rate applied"]
        if per_micro:
            assert verdict.status == "warn" and "back up to its peak 2 times" in verdict.value, verdict
            assert "micro-batch" in verdict.advice, verdict
        else:
            assert verdict.status == "pass", verdict
