"""A vector-quantized autoencoder: the decoder sees only each row's code, so rows that share a code get the very
same reconstruction, while the encoder's output beside it, which the commitment loss reaches, tells them apart:
their inputs reach an output, and watch does not name dropped inputs. A model whose every output is tied for
rows whose inputs its mask hides is still named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: inputs reach the outputs"


class VectorQuantizer(nn.Module):
    """An encoder, a codebook updated by moving averages under no_grad, a decoder; the straight-through estimator."""

    def __init__(self, codes=16, width=8):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, width))
        self.dec = nn.Sequential(nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, 16))
        self.register_buffer("codebook", torch.randn(codes, width))

    def forward(self, x):
        z = self.enc(x)
        with torch.no_grad():
            index = torch.cdist(z, self.codebook).argmin(1)
            if self.training:
                onehot = F.one_hot(index, len(self.codebook)).to(z.dtype)
                count = onehot.sum(0)
                used = count > 0
                means = (onehot.t() @ z)[used] / count[used, None]
                self.codebook[used] = 0.9 * self.codebook[used] + 0.1 * means
        q = self.codebook[index]
        return self.dec(z + (q - z).detach()), z, q


def clusters(n):
    g = torch.Generator().manual_seed(0)
    centers = 2.0 * torch.randn(4, 16, generator=torch.Generator().manual_seed(99))
    return centers[torch.randint(0, 4, (n,), generator=g)] + torch.randn(n, 16, generator=g)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_vector_quantized_reconstructions_shared_by_a_code_are_not_dropped_inputs():
    torch.manual_seed(0)
    x = clusters(512)
    x = (x - x.mean(0)) / x.std(0)
    model = VectorQuantizer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tied = []
    with doctor.watch(model, opt) as w:
        for _ in range(1):
            for (xb,) in DataLoader(TensorDataset(x), batch_size=64, shuffle=True):
                rec, z, q = model(xb)
                loss = F.mse_loss(rec, xb) + 0.25 * F.mse_loss(z, q.detach())
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss)
                tied.append(len(rec) - len(torch.unique(rec.detach(), dim=0)))
    assert min(tied) >= 16  # the oracle: a quarter of every batch's rows share another row's reconstruction
    assert NAME not in [v.check for v in w.report() if v.status in ("warn", "fail")]


class MaskedPool(nn.Module):
    """Mean-pools the positions its mask keeps, the mask inverted (it keeps the padding, id 0); returns the scores
    and the pooled features."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.fc = nn.Linear(16, 3)

    def forward(self, ids):
        keep = (ids == 0).float()
        h = (self.emb(ids) * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        return self.fc(h), h


def test_rows_whose_mask_hides_every_position_are_named_beside_a_second_output():
    torch.manual_seed(0)
    ids = torch.randint(1, 50, (512, 10))
    ids[::2, 6:] = 0  # half the rows padded
    y = ids[:, 0] % 3
    model = MaskedPool()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt) as w:
        for xb, yb in DataLoader(TensorDataset(ids, y), batch_size=32, shuffle=True):
            scores, pooled = model(xb)
            loss = F.cross_entropy(scores, yb) + 1e-3 * pooled.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    assert NAME in [v.check for v in w.report() if v.status in ("warn", "fail")]
