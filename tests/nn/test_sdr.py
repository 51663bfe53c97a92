"""Stochastic delta rule layers (nn/sdr.py; Hanson 1990) and their sigma schedule."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell.config import load_config
from trainwell.nn.sdr import SDRLinear, sdr_layers
from trainwell.pipeline import fit
from trainwell.train import Trainer
from trainwell.train.callbacks import Callback
from trainwell.train.constraints import SDRUpdate


def test_sdr_with_zero_beta_and_sigma_equals_plain_sgd_bit_for_bit():
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))

    def train(cls, **kw):
        torch.manual_seed(0)
        model = nn.Sequential(cls(5, 8, **kw), nn.ReLU(), cls(8, 3, **kw))
        cbs = [SDRUpdate(beta=0.0, zeta=0.99)] if cls is SDRLinear else []
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=3, batch_size=16, callbacks=cbs,
                device="cpu", seed=0).fit((x, y))
        return [p.detach() for p in model.parameters()]

    for a, b in zip(train(nn.Linear), train(SDRLinear, sigma0=0.0), strict=True):
        assert torch.equal(a, b)


class _SigmaLog(Callback):
    """After every batch and at every epoch end, whether any SDR sigma changed (placed after SDRUpdate)."""

    def __init__(self):
        self.changed, self.last = [], None

    def _record(self, state, where):
        now = [layer.sigma.clone() for layer in sdr_layers(state.model)]
        self.changed.append((where, any(not torch.equal(a, b) for a, b in zip(now, self.last, strict=True))))
        self.last = now

    def on_fit_start(self, state):
        self.last = [layer.sigma.clone() for layer in sdr_layers(state.model)]

    def on_batch_end(self, state):
        self._record(state, "batch")

    def on_epoch_end(self, state):
        self._record(state, "end")


@pytest.mark.parametrize(("per_epoch", "steps_per_epoch", "expected"),
                         [(None, None, 12), (2, 4, 6), (2, None, 5), (4, 4, 12)])
def test_sdr_sigma_update_schedule(per_epoch, steps_per_epoch, expected):
    """Reference code (sdr-densenet): twice per epoch; every step as an option. 3 epochs of 4 batches."""
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))
    torch.manual_seed(0)
    model = nn.Sequential(SDRLinear(5, 8, sigma0=0.01), nn.ReLU(), SDRLinear(8, 3, sigma0=0.01))
    sdr = SDRUpdate(beta=1.0, zeta=0.99, per_epoch=per_epoch, steps_per_epoch=steps_per_epoch)
    Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=3, batch_size=16, callbacks=[sdr],
            device="cpu", seed=0).fit((x, y))
    assert sdr.updates == expected
    with pytest.raises(ValueError, match="per_epoch=0"):
        SDRUpdate(per_epoch=0)


def test_sdr_twice_per_epoch_updates_mid_epoch_and_at_the_end():
    x, y = torch.randn(64, 5, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (64,))
    torch.manual_seed(0)
    model = nn.Sequential(SDRLinear(5, 8, sigma0=0.01), nn.ReLU(), SDRLinear(8, 3, sigma0=0.01))
    log = _SigmaLog()
    Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16, device="cpu", seed=0,
            callbacks=[SDRUpdate(beta=1.0, per_epoch=2, steps_per_epoch=4), log]).fit((x, y))
    epoch = [("batch", False), ("batch", True), ("batch", False), ("batch", False), ("end", True)]
    assert log.changed == epoch + epoch  # after batch 2 of 4 (mid-epoch) and at the end of each epoch


def test_sdr_sigma_grows_with_the_gradient_and_decays():
    layer = SDRLinear(3, 2, sigma0=0.1)
    layer.weight.grad = torch.full_like(layer.weight, 0.5)
    layer.update_sigma(beta=2.0, zeta=0.5)
    assert torch.allclose(layer.sigma, torch.full_like(layer.sigma, 0.5 * (2.0 * 0.5 + 0.1)))
    layer.eval()
    x = torch.randn(4, 3)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))  # test time uses mu
    layer.train()
    assert not torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


@pytest.mark.parametrize(("per_epoch", "updates"), [(2, 4), (0, 12)])
def test_config_sets_the_sdr_schedule(workdir, monkeypatch, per_epoch, updates):
    import trainwell.train.constraints as constraints

    made = []
    real_init = constraints.SDRUpdate.__init__

    def spy(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(constraints.SDRUpdate, "__init__", spy)
    cfg = load_config(None, ["data.name=spirals", "model.kind=mlp", "model.sdr=true", "train.epochs=2",
                             "report.enabled=false", "doctor.preflight=false", f"regularize.sdr_per_epoch={per_epoch}"])
    fit(cfg, out="run", quiet=True)
    assert made[-1].steps_per_epoch == 6 and made[-1].updates == updates  # spirals: 6 batches per epoch
