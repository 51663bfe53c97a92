"""An embedding without ``padding_idx`` under a mean over every position: the padding's row is learned like a
token's and each sequence's output depends on how much padding its batch needed. The padding probe used to look
only at embeddings with a ``padding_idx``; it now reads the padding id from the batch (trailing runs of several
lengths). The same model pooling over the real tokens only is not named."""

import torch
from torch import nn

from trainwell.doctor.padding_read import padding_read


class Bag(nn.Module):
    def __init__(self, masked: bool):
        super().__init__()
        self.emb, self.out, self.masked = nn.Embedding(50, 16), nn.Linear(16, 2), masked  # no padding_idx

    def forward(self, ids):
        h = self.emb(ids)
        if not self.masked:
            return self.out(h.mean(1))  # the bug: the mean counts the padding
        keep = (ids != 0).unsqueeze(-1).float()
        return self.out((h * keep).sum(1) / keep.sum(1))


def _ids():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(3, 20, (96,), generator=g)
    ids = torch.randint(1, 50, (96, 20), generator=g)
    ids[torch.arange(20)[None] >= lengths[:, None]] = 0
    return ids


def test_padding_read_by_a_model_without_padding_idx_is_named():
    torch.manual_seed(0)
    v = padding_read(Bag(False), _ids())
    assert v is not None and v.status == "warn" and "padding_idx=0" in v.advice, v


def test_masked_pooling_and_unpadded_batches_are_not_named():
    torch.manual_seed(0)
    assert padding_read(Bag(True), _ids()) is None
    full = torch.randint(1, 50, (96, 20), generator=torch.Generator().manual_seed(1))
    assert padding_read(Bag(False), full) is None
