"""Batch independence of a model whose output is a score matrix over the batch's pairs: a CLIP model returning
its (B, B) logits (Radford et al. 2021), each row scoring one example against every example's candidate by design.
Its examples are its diagonal's: entry (i, i) may depend on example i alone, and the batch reversed reverses both
axes. A model that centres its embeddings on the batch's mean mixes the examples and is still named."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.doctor.batch_independence import batch_independence
from trainwell.doctor.inputs import Inputs


class CLIP(nn.Module):
    def __init__(self, centred: bool = False):
        super().__init__()
        self.enc_a = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 16))
        self.enc_b = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 16))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.centred = centred

    def forward(self, xa, xb):
        ea, eb = self.enc_a(xa), self.enc_b(xb)
        if self.centred:  # the batch's own mean: every example's embedding moves with the others
            ea = ea - ea.mean(0, keepdim=True)
        ea, eb = F.normalize(ea, dim=-1), F.normalize(eb, dim=-1)
        return self.logit_scale.exp() * ea @ eb.T


def _verdict(centred: bool):
    torch.manual_seed(0)
    x = Inputs((torch.randn(16, 20), torch.randn(16, 30)))
    return batch_independence(CLIP(centred), x)


def test_a_clip_model_s_in_batch_score_matrix_is_read_on_its_diagonal():
    verdict = _verdict(centred=False)
    assert verdict.status == "pass", verdict.value


def test_a_score_matrix_of_embeddings_centred_on_the_batch_still_fails():
    verdict = _verdict(centred=True)
    assert verdict.status == "fail", verdict.value


@pytest.mark.parametrize("centred", [False, True])
def test_the_check_reads_the_clip_model_as_a_user_calls_it(centred):
    from trainwell import doctor

    torch.manual_seed(0)
    xa, xb = torch.randn(64, 20), torch.randn(64, 30)
    model = CLIP(centred)
    loss_fn = lambda logits, y: (F.cross_entropy(logits, torch.arange(len(logits))) +  # noqa: E731
                                 F.cross_entropy(logits.T, torch.arange(len(logits)))) / 2
    report = doctor.check(model, (xa, xb), torch.arange(64), loss_fn)
    found = {v.check: v for v in report.verdicts}["batch independence"]
    assert found.status == ("fail" if centred else "pass"), found.value
