"""A user's language model whose output layer shares the embedding's weight, with a frozen layer between."""

import warnings

import torch
from torch import nn

from trainwell import init
from trainwell.prune import apply_masks, magnitude_masks
from trainwell.regularize import SkippedLayersWarning, l1_penalty, max_norm_


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.frozen = nn.Linear(8, 8).requires_grad_(False)
        self.hid = nn.Linear(8, 8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.emb.weight  # tied: one Parameter in two modules

    def forward(self, tokens):
        return self.out(torch.relu(self.hid(self.frozen(self.emb(tokens)))))


def _skipped(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, SkippedLayersWarning)
            and "Linear/Conv layers only" in str(w.message)]  # not the note on frozen layers


def test_a_tied_embedding_is_constrained_through_its_linear_and_not_named_as_left_alone():
    torch.manual_seed(0)
    model = TiedLM()
    with torch.no_grad():
        model.emb.weight.mul_(10)
        model.frozen.weight.mul_(10)
    frozen = model.frozen.weight.clone()
    expected = torch.renorm(model.emb.weight.detach().clone(), 2, 0, 1.0)  # the oracle: torch's row renorm
    assert _skipped(lambda: max_norm_(model, 1.0)) == []
    assert torch.allclose(model.emb.weight, expected) and model.out.weight is model.emb.weight
    assert torch.equal(model.frozen.weight, frozen)  # frozen weights are not constrained


def test_an_untied_embedding_is_still_named():
    model = TiedLM()
    model.out.weight = nn.Parameter(model.emb.weight.detach().clone())
    messages = _skipped(lambda: max_norm_(model, 1.0))
    assert len(messages) == 1 and "emb (Embedding)" in messages[0]


def test_init_of_the_tied_model_names_nothing_and_l1_counts_the_shared_weight_once():
    model = TiedLM()
    assert _skipped(lambda: init.apply(model, "xavier_uniform", output_layer="out")) == []
    expected = 0.1 * (model.emb.weight.abs().sum() + model.hid.weight.abs().sum())
    assert torch.allclose(l1_penalty(model, 0.1), expected)


def test_pruning_the_tied_linear_still_names_the_embedding_whose_weight_stays_dense():
    torch.manual_seed(0)
    model = TiedLM()
    masks = {}
    messages = _skipped(lambda: masks.update(magnitude_masks(model, 0.5, output_layer="out")))
    assert len(messages) == 1 and "emb (Embedding)" in messages[0]
    apply_masks(model, masks)  # torch's mask reaches out.weight only: the embedding reads the dense tensor
    assert (model.out.weight == 0).any() and not (model.emb.weight == 0).any()
