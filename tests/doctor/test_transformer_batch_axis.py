"""A Transformer encoder on token ids built without ``batch_first=True`` and fed (B, T) ids: its attention runs
over the batch axis, mixing the examples. Attention is a set function of the other examples, so a reordering of
them leaves an example's output alone; copies of the example in their place do not. ``doctor.check``'s batch
independence fails it; with ``batch_first=True`` it passes."""

import pytest
import torch
from torch import nn

from trainwell.doctor import preflight as pf


class TokenClassifier(nn.Module):
    """Embeddings and learned positions, two encoder layers, mean-pooled into 2 classes."""

    def __init__(self, batch_first: bool):
        super().__init__()
        self.emb = nn.Embedding(40, 32)
        self.pos = nn.Parameter(0.02 * torch.randn(16, 32))
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 2)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids) + self.pos).mean(1))


@pytest.mark.parametrize(("batch_first", "status"), [(False, "fail"), (True, "pass")])
def test_attention_over_the_batch_axis_is_named(batch_first, status):
    torch.manual_seed(0)
    ids = torch.randint(1, 40, (32, 16))
    verdict = pf.batch_independence(TokenClassifier(batch_first), ids)
    assert verdict.status == status, verdict.value
    if status == "fail":
        assert "batch_first=True" in verdict.advice
