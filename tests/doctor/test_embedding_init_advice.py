"""A matrix-factorization recommender (user and item nn.Embedding tables, prediction = their rows' dot product plus
biases) left at torch's default N(0, 1) embedding init starts with outputs of std sqrt(dim): the initial-loss
advice names the tables and a small init, not a Linear/Conv layer the model does not have."""

import torch
from torch import nn

from trainwell.doctor.initial_loss import initial_loss


class Factorization(nn.Module):
    def __init__(self, users=200, items=300, dim=32, std=None):
        super().__init__()
        self.user = nn.Embedding(users, dim)
        self.item = nn.Embedding(items, dim)
        self.user_bias = nn.Embedding(users, 1)
        self.item_bias = nn.Embedding(items, 1)
        self.mean = nn.Parameter(torch.tensor(3.5))
        if std is not None:
            nn.init.normal_(self.user.weight, std=std)
            nn.init.normal_(self.item.weight, std=std)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def forward(self, pairs):
        u, i = pairs[:, 0], pairs[:, 1]
        dot = (self.user(u) * self.item(i)).sum(1)
        return dot + self.user_bias(u).squeeze(1) + self.item_bias(i).squeeze(1) + self.mean


def _ratings():
    torch.manual_seed(0)
    pairs = torch.stack([torch.randint(0, 200, (256,)), torch.randint(0, 300, (256,))], 1)
    return pairs, torch.randint(1, 6, (256,)).float()


def test_default_embedding_init_is_named():
    pairs, ratings = _ratings()
    verdict = initial_loss(Factorization(), pairs, ratings, nn.MSELoss())
    assert verdict.status in ("warn", "fail")
    assert "'user', 'item'" in verdict.advice and "N(0, 1)" in verdict.advice
    assert "nn.init.normal_(emb.weight, std=0.1)" in verdict.advice
    assert "Linear/Conv" not in verdict.advice


def test_small_embedding_init_passes():
    pairs, ratings = _ratings()
    verdict = initial_loss(Factorization(std=0.1), pairs, ratings, nn.MSELoss())
    assert verdict.status == "pass"


def test_embedding_under_a_linear_head_keeps_the_head_advice():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 16), nn.Flatten(), nn.Linear(16 * 4, 1))
    nn.init.normal_(model[2].weight, std=3.0)
    ids = torch.randint(0, 50, (256, 4))
    verdict = initial_loss(model, ids, torch.randn(256, 1), nn.MSELoss())
    assert verdict.status in ("warn", "fail")
    assert "embeddings" not in verdict.advice and "'2'" in verdict.advice
