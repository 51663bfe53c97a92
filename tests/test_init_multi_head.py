"""A user's model with two output heads (classification and regression): both are output layers."""


import pytest
import torch
from torch import nn

from trainwell import init
from trainwell.prune import magnitude_masks


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(256, 512)
        self.heads = nn.ModuleDict({"cls": nn.Linear(512, 400), "reg": nn.Linear(512, 300)})

    def forward(self, x):
        h = torch.relu(self.body(x))
        return self.heads["cls"](h), self.heads["reg"](h)


def test_he_gives_each_declared_head_the_linear_variance_and_the_body_he_s():
    torch.manual_seed(0)
    model = init.apply(TwoHeads(), "he_normal", output_layer=["heads.cls", "heads.reg"])
    # the oracle: He's Var 2/fan_in behind a ReLU, LeCun's 1/fan_in for layers that feed no ReLU
    assert model.body.weight.var().item() == pytest.approx(2 / 256, rel=0.05)
    for head in model.heads.values():
        assert head.weight.var().item() == pytest.approx(1 / 512, rel=0.05)


def test_one_declared_head_leaves_the_other_with_he_s_variance():
    torch.manual_seed(0)
    model = init.apply(TwoHeads(), "he_normal", output_layer="heads.cls")
    assert model.heads["reg"].weight.var().item() == pytest.approx(2 / 512, rel=0.05)


def test_both_heads_are_pruned_at_the_output_rate():
    torch.manual_seed(0)
    masks = magnitude_masks(TwoHeads(), 0.2, output_layer=["heads.cls", "heads.reg"])
    kept = {name: m.mean().item() for name, m in masks.items()}
    assert kept["body"] == pytest.approx(0.8, abs=1e-3)
    assert kept["heads.cls"] == pytest.approx(0.9, abs=1e-3) and kept["heads.reg"] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.parametrize("given, message", [([], r"output_layer=\[\] is not allowed"),
                                            (["heads.cls", "head"], r"output_layer='head' is not a submodule")])
def test_a_bad_list_is_named(given, message):
    with pytest.raises(ValueError, match=message):
        init.apply(TwoHeads(), "he_normal", output_layer=given)

