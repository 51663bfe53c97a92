"""A sequence model's (B, T, V) scores flattened in another order than its (B, T) labels
(``logits.transpose(0, 1).reshape(-1, V)`` against ``y.reshape(-1)``) pairs each output with another position's
label: named from the gradient's negative entry, the label the loss used at each position."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor


class CharGRU(nn.Module):
    def __init__(self, vocab: int):
        super().__init__()
        self.emb = nn.Embedding(vocab, 16)
        self.gru = nn.GRU(16, 16, batch_first=True)
        self.out = nn.Linear(16, vocab)

    def forward(self, x):
        h, _ = self.gru(self.emb(x))
        return self.out(h)


def _run(transposed: bool):
    torch.manual_seed(0)
    text = "a stitch in time saves nine. " * 20
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    vocab, steps, length = len(chars), 41, 12
    model = CharGRU(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=20) as w:
        for _ in range(steps):
            start = torch.randint(0, len(data) - length - 1, (8,))
            x = torch.stack([data[i:i + length] for i in start])
            y = torch.stack([data[i + 1:i + length + 1] for i in start])  # the next character
            logits = model(x)
            if transposed:
                logits = logits.transpose(0, 1)  # (T, B, V): flattened time-major below
            loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y)
    return [v for v in w.report().verdicts if v.check == "loop: labels paired with outputs"]


@pytest.mark.slow  # 1 s
def test_outputs_flattened_in_another_order_than_labels_fail():
    found = _run(transposed=True)
    assert len(found) == 1 and found[0].status == "fail"
    assert "another position's label" in found[0].value


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_outputs_flattened_like_their_labels_pass():
    assert not _run(transposed=False)


def test_reading_matches_torch_cross_entropy_gradient():
    from trainwell.doctor.paired_labels import label_pairing

    torch.manual_seed(1)
    z = torch.randn(4, 6, 5, requires_grad=True)
    y = torch.randint(0, 5, (4, 6))
    F.cross_entropy(z.reshape(-1, 5), y.reshape(-1)).backward()
    assert label_pairing(z, z.grad, y) == 1.0
    z.grad = None
    F.cross_entropy(z.transpose(0, 1).reshape(-1, 5), y.reshape(-1)).backward()
    assert label_pairing(z, z.grad, y) is None or label_pairing(z, z.grad, y) < 1.0
    used = y.reshape(6, 4).transpose(0, 1)  # z[b, t] was scored against y.reshape(-1)[t * 4 + b]
    assert label_pairing(z, z.grad, used) == 1.0
