"""A small CNN whose forward calls ``torch.flatten(h)`` without ``start_dim``: the (B, C, H, W) feature maps become
one vector, and the user sized the Linear after it for the whole batch they tried (in_features = B*C*H*W), so the
forward runs at that batch size, every example's scores depend on the whole batch, and any other batch size raises.
``doctor.check`` names the flatten (batch independence) instead of skipping its checks as a limitation of its own;
the same CNN flattened from dim 1 (``torch.flatten(h, 1)``, ``nn.Flatten()``) passes, and a model that reshapes
its (B, T) token ids to (B*T,) and back is not named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor
from trainwell.doctor.batch_flatten import flattened_batch

B = 16


class SmallCNN(nn.Module):
    """conv -> relu -> flatten -> linear; ``how`` is the user's flatten."""

    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        whole = how in ("flatten", "view")
        self.fc = nn.Linear(B * 4 * 8 * 8 if whole else 4 * 8 * 8, 3 * B if whole else 3)
        self.flat = nn.Flatten()

    def forward(self, x):
        h = F.relu(self.conv(x))
        if self.how == "flatten":
            return self.fc(torch.flatten(h)).view(-1, 3)  # the bug: the batch axis is flattened too
        if self.how == "view":
            return self.fc(h.view(-1)).view(-1, 3)  # the same bug
        if self.how == "start_dim":
            return self.fc(torch.flatten(h, 1))
        return self.fc(self.flat(h))


class TokenTagger(nn.Module):
    """Looks up (B*T,) ids and views them back to (B, T, d): a reshape of the batch that keeps examples apart."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, ids):
        h = self.emb(ids.reshape(-1)).view(ids.shape[0], ids.shape[1], -1)
        return self.out(h.mean(1))


def _images():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long()
    return x, y


@pytest.mark.parametrize(("how", "named"), [("flatten", True), ("view", True), ("start_dim", False),
                                            ("module", False)])
def test_batch_flatten_is_read(how, named):
    torch.manual_seed(0)
    x, _ = _images()
    verdict = flattened_batch(SmallCNN(how), x)
    assert (verdict is not None) == named
    if named:
        assert verdict.status == "fail"
        assert "start_dim" in verdict.advice or "flatten" in verdict.advice
        assert "torch.flatten(h, 1)" in verdict.advice and "\n" not in verdict.advice


def test_token_reshape_is_not_read():
    torch.manual_seed(0)
    ids = torch.randint(0, 20, (B, 6), generator=torch.Generator().manual_seed(0))
    assert flattened_batch(TokenTagger(), ids) is None


@pytest.fixture(scope="module")
def reports():
    x, y = _images()
    out = {}
    for how in ("flatten", "start_dim"):
        torch.manual_seed(0)
        out[how] = doctor.check(SmallCNN(how), x, y, nn.CrossEntropyLoss())
    return out


@pytest.mark.slow
def test_check_names_the_flatten(reports):
    v = reports["flatten"]["batch independence"]
    assert v.status == "fail", v.value
    assert "torch.flatten" in v.value and "without start_dim" in v.advice
    skipped = [s for s in reports["flatten"].verdicts if s.status == "skip" and "could not run" in str(s.value)]
    assert skipped and all(s.advice == "see 'batch independence'" for s in skipped)


@pytest.mark.slow
def test_check_passes_the_flatten_from_dim_1(reports):
    assert reports["start_dim"]["batch independence"].status == "pass"
    assert reports["start_dim"].failed == []


def _watched(how: str):
    """A loop whose DataLoader drops the last, smaller batch: every batch holds the B the model runs at."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12 * B + 5, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long() + (x[:, 0, 0, 0] > 0).long()
    torch.manual_seed(0)
    model = SmallCNN(how)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=B, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    with doctor.watch(model, opt, every=5) as w:
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return {v.check: v for v in w.report().verdicts}


@pytest.mark.slow
@pytest.mark.parametrize("how", ["flatten", "start_dim"])
def test_watch_names_the_flatten(how):
    v = _watched(how).get("loop: batch independence")
    if how == "flatten":
        assert v is not None and v.status == "fail" and "torch.flatten(h, 1)" in v.advice, v
    else:
        assert v is None or v.status == "pass", v
