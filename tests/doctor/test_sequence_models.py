"""The doctor on users' sequence models: a left-to-right language model over token ids (its overfit bar where
equal prefixes go on differently), next-token targets (shifted by one, not the inputs themselves), a causal mask
(no position reads a later token), padding in the targets."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.overfit import causal_ceiling, overfit_tiny_subset

V, T = 12, 16


def _sentences(n=64, seed=0):
    """Token sequences sharing their first words (as text does): token 0 one of 3, token 1 free, the rest
    determined by the token before."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.zeros(n, T, dtype=torch.long)
    seq[:, 0] = torch.randint(0, 3, (n,), generator=g)
    seq[:, 1] = torch.randint(3, V, (n,), generator=g)
    for t in range(2, T):
        seq[:, t] = (3 * seq[:, t - 1] + 1) % V
    return seq


class LSTMLanguageModel(nn.Module):
    def __init__(self, frozen_output=False):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.rnn, self.out = nn.Embedding(V, 32), nn.LSTM(32, 64, batch_first=True), nn.Linear(64, V)
        self.out.requires_grad_(not frozen_output)

    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0])


def _lm_loss(out, target):
    return F.cross_entropy(out.reshape(-1, V), target.reshape(-1))


def test_the_causal_ceiling_counts_each_prefix_once_by_its_most_frequent_next_token():
    x = torch.tensor([[0, 1], [0, 1], [0, 2], [5, 5]])
    y = torch.tensor([[1, 3], [2, 3], [2, 4], [5, -100]])  # -100: ignored
    # prefixes: (0,) -> targets 1, 2, 2 (best 2 of 3); (0, 1) -> 3, 3 (2 of 2); (0, 2) -> 4; (5,) -> 5
    assert causal_ceiling(x, y) == pytest.approx((2 + 2 + 1 + 1) / 7)
    assert causal_ceiling(x.float(), y) == 1.0 and causal_ceiling(x, y[:, :1]) == 1.0


@pytest.mark.parametrize("frozen_output, status", [(False, "pass"), (True, "fail")])
def test_a_left_to_right_model_is_held_to_what_its_prefixes_allow(frozen_output, status):
    seq = _sentences()
    x, y = seq[:, :-1], seq[:, 1:]
    assert causal_ceiling(x[:20], y[:20]) < 0.97  # second tokens cannot be told from the first
    verdict = overfit_tiny_subset(LSTMLanguageModel(frozen_output), x, y, _lm_loss)
    assert verdict.status == status
