"""CTC on a tiny synthetic sequence task with label sequences of 2-4 symbols under 20 frames: ``input_lengths``
count the output's frames, ``target_lengths`` the labels. The labels' counts given as ``input_lengths`` (the loss
then reads the first 2-4 frames, with no blank) are named, by doctor.watch and doctor.check; frames for every
example, or per-example frame counts that differ from the label counts, pass."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

T, C, S = 20, 6, 4


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 32, batch_first=True, bidirectional=True)
        self.out = nn.Linear(64, C)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.out(h).log_softmax(-1).transpose(0, 1)  # (T, B, C)


def _data(n):
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(2, S + 1, (n,), generator=g)
    labels = torch.randint(1, C, (n, S), generator=g)
    x = torch.randn(n, T, 8, generator=g) * 0.3
    for k in range(S):
        shown = k < lengths
        x[torch.arange(n)[shown][:, None], torch.arange(5 * k, 5 * k + 4)[None], labels[shown, k : k + 1]] += 2.0
    labels[torch.arange(S)[None] >= lengths[:, None]] = 0  # padding past each sequence's end
    return x, labels, lengths


@pytest.mark.parametrize("frames, status", [("all", "pass"), ("own", "pass"), ("labels", "fail")])
@pytest.mark.slow  # 0.17 s each on a 2-core CPU (RESULTS §51)
def test_ctc_input_lengths_that_count_the_labels_are_named(frames, status):
    torch.manual_seed(0)
    x, labels, lengths = _data(256)
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=4) as w:
        for i in range(0, len(x), 32):
            n = len(x[i : i + 32])
            input_lengths = {"all": torch.full((n,), T), "own": T - torch.arange(n) % 3,
                             "labels": lengths[i : i + 32]}[frames]
            loss = F.ctc_loss(model(x[i : i + 32]), labels[i : i + 32], input_lengths, lengths[i : i + 32],
                              zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=labels[i : i + 32])
    found = [v for v in w.report() if v.check == "loop: loss input"]  # the verdict appears when it has a finding
    if status == "pass":
        assert all(v.status == "pass" for v in found), found
    else:
        assert found[0].status == "fail" and "input_lengths equal its target_lengths" in found[0].value, found


def _ctc_loss(frames):
    """A user's CTC loss for doctor.check: label sequences padded with the blank, their lengths counted from them;
    ``frames``: "all" gives every example T frames, "labels" the labels' counts."""
    def loss_fn(logp, labels):
        target_lengths = (labels != 0).sum(1)
        input_lengths = torch.full((logp.shape[1],), T) if frames == "all" else target_lengths
        return F.ctc_loss(logp, labels, input_lengths, target_lengths, zero_infinity=True)
    return loss_fn


@pytest.mark.slow  # seconds each
@pytest.mark.parametrize("frames", ["all", "labels"])
def test_check_names_input_lengths_that_count_the_labels(frames):
    torch.manual_seed(0)
    x, labels, _ = _data(128)
    model = Tagger()
    report = doctor.check(model, x, labels, _ctc_loss(frames), optimizer=torch.optim.Adam(model.parameters(), 3e-3))
    fed = [v for v in report if v.check == "loss input"]
    if frames == "all":
        assert all(v.status == "pass" for v in fed), fed
    else:
        assert fed and fed[0].status == "fail" and "input_lengths equal its target_lengths" in fed[0].value, fed
        assert "input_lengths counts the output's time steps" in fed[0].advice
