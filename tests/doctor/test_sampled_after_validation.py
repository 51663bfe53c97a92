"""A character language model whose validation computes the held-out loss, then samples text autoregressively, one
token a forward, the hidden state carried (``torch.multinomial`` on the softmax): those forwards change from one
validation to the next, the validation set's do not; ``loop: validation augmentation`` does not call that an
augmented validation set. Random token replacement in the validation inputs is still named."""

import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

NAME = "loop: validation augmentation"
V, T = 8, 16


class CharGRU(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.gru, self.out = nn.Embedding(V, 16), nn.GRU(16, 32, batch_first=True), nn.Linear(32, V)

    def forward(self, x, h=None):
        o, h = self.gru(self.emb(x), h)
        return self.out(o), h


def _run(kind: str):
    torch.manual_seed(0)
    seqs = (torch.arange(T + 1) + torch.randint(0, V, (160, 1))) % V  # counting sequences
    tr, va = seqs[:128], seqs[128:]
    model = CharGRU()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=10) as w:
        for _ in range(3):
            model.train()
            for rows in torch.randperm(128).split(16):
                logits, _ = model(tr[rows, :-1])
                loss = F.cross_entropy(logits.reshape(-1, V), tr[rows, 1:].reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
            model.eval()
            with torch.no_grad():
                xv = va[:, :-1]
                if kind == "replaced tokens":  # the bug: random tokens swapped into the validation inputs
                    xv = torch.where(torch.rand(xv.shape) < 0.2, torch.randint(0, V, xv.shape), xv)
                logits, _ = model(xv)
                vl = F.cross_entropy(logits.reshape(-1, V), va[:, 1:].reshape(-1)).item()
                tok, h = torch.zeros(1, 1, dtype=torch.long), None
                for _ in range(20):
                    logits, h = model(tok, h)
                    tok = torch.multinomial(F.softmax(logits[:, -1], -1), 1)
            w.validate(vl)
    return {v.check: v for v in w.report().verdicts}


def test_a_sample_generated_after_the_validation_loss_is_no_augmentation():
    v = _run("healthy").get(NAME)
    assert v is None or v.status == "pass", v


def test_random_tokens_in_the_validation_inputs_still_warn():
    v = _run("replaced tokens").get(NAME)
    assert v is not None and v.status == "warn", v
