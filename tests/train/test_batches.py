"""The library keeps PyTorch, Keras and skorch users' habits: a DataLoader iterated every epoch, NumPy arrays,
``fit(x, y)``, Keras-style early stopping, ``validate``/``test``/``predict``, epochs counted from 1."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tests.helpers import boring_net
from trainwell.train import Callback, Trainer, evaluate
from trainwell.train.batches import take_rows
from trainwell.train.stopping import Divergence, EarlyStopping, NonFinite

G = torch.Generator().manual_seed(0)
X, Y = torch.randn(90, 3, generator=G), torch.randint(0, 3, (90,), generator=G)


def net():
    return boring_net(3, 8, 3)


class Noisy(Dataset):
    """A dataset whose ``__getitem__`` adds fresh torch noise (a random augmentation) and returns a dict."""

    def __init__(self, x, y):
        self.x, self.y, self.reads = x, y, 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return {"image": self.x[i] + 0.1 * torch.randn(self.x.shape[1:]), "label": self.y[i]}


def weights(model):
    return [p.detach().clone() for p in model.state_dict().values()]


def test_a_dataloader_is_iterated_every_epoch_exactly_as_a_plain_loop_would():
    """Oracle: a hand-written PyTorch loop over the same shuffling, augmenting loader of dict batches."""
    epochs = 3

    def loader(data):
        return DataLoader(data, batch_size=7, shuffle=True)

    torch.manual_seed(0)
    model, data = net(), Noisy(X, Y)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for batch in loader(data):
            loss = F.cross_entropy(model(batch["image"]), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch["label"])
        losses.append(total / len(data))
    expected = weights(model)

    torch.manual_seed(0)
    model, data = net(), Noisy(X, Y)
    state = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=epochs).fit(loader(data))
    assert data.reads == epochs * len(data)  # read afresh every epoch, not once into memory
    assert [r["step"] for r in state.history] == [13, 26, 39]  # the loader's batch size: ceil(90 / 7) steps
    assert [r["train_loss"] for r in state.history] == pytest.approx(losses, rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), expected, strict=True))


def test_a_validation_loader_gives_the_metrics_of_its_tensors():
    torch.manual_seed(0)
    model = net()
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2)
    state = t.fit(DataLoader(TensorDataset(X, Y), batch_size=16), DataLoader(TensorDataset(X, Y), batch_size=5))
    oracle = evaluate(model, X, Y)
    assert state.history[-1]["val_loss"] == pytest.approx(oracle["loss"], rel=1e-6)
    assert state.history[-1]["val_acc"] == pytest.approx(oracle["acc"])


def test_dict_batches_with_other_names_need_batch_keys_and_the_error_lists_the_keys():
    class Named(Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, i):
            return {"signal": X[i], "cls": Y[i]}

    model = net()
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1)
    with pytest.raises(TypeError, match="keys 'signal', 'cls' has no input key .*batch_keys="):
        t.fit(DataLoader(Named(), batch_size=8))
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_keys=("signal", "cls"))
    assert len(t.fit(DataLoader(Named(), batch_size=8)).history) == 1


def test_numpy_arrays_train_like_tensors_and_float64_is_named_not_cast():
    def run(x, y):
        torch.manual_seed(0)
        model = net()
        t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16)
        return t.fit((x, y), (x, y)).history, weights(model)

    h_np, w_np = run(X.numpy(), Y.numpy().astype(np.int32))
    h_pt, w_pt = run(X, Y)
    strip = [{k: v for k, v in r.items() if k != "time"} for r in h_np]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in h_pt]
    assert all(torch.equal(a, b) for a, b in zip(w_np, w_pt, strict=True))
    with pytest.raises(TypeError, match=r"train inputs are float64 \(NumPy's default\) but the model's parameters "
                                        r"are float32: .*astype\(np.float32\)"):
        run(X.numpy().astype(np.float64), Y.numpy())


def test_keras_fit_x_y_is_accepted_and_inputs_alone_are_answered_with_the_right_call():
    def run(*args, **kwargs):
        torch.manual_seed(0)
        model = net()
        t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=16)
        return t.fit(*args, **kwargs), model

    (a, ma), (b, mb) = run(X, Y, validation_data=(X, Y)), run((X, Y), (X, Y))
    assert [r["val_loss"] for r in a.history] == [r["val_loss"] for r in b.history]
    assert all(torch.equal(p, q) for p, q in zip(weights(ma), weights(mb), strict=True))
    with pytest.raises(TypeError, match=r"without targets: call fit\(\(x, y\), \(x_val, y_val\)\), fit\(x, y\)"):
        run(X)


def test_construction_errors_say_what_to_pass():
    model = net()
    with pytest.raises(TypeError, match=r"Trainer\(model\) needs an optimizer .*torch.optim.SGD\(model.parameters"):
        Trainer(model, epochs=1)
    with pytest.raises(TypeError, match=r"Trainer\(model\) needs an optimizer"):
        Trainer(model)  # as the README writes it: the first thing missing is named
    with pytest.raises(TypeError, match=r"Trainer needs epochs=: .*Trainer\(model, optimizer, epochs=10\)"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1))
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1)
    with pytest.raises(ValueError, match=r"Trainer\(batch_size=...\) is needed to batch tensors"):
        t.fit((X, Y))
    with pytest.raises(ValueError, match="epochs=0 is not allowed"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=0)


def test_validate_test_and_predict_match_torch():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=16)
    t.fit((X, Y))
    model.train()
    with torch.no_grad():
        model.eval()
        logits = model(X)
        model.train()
    loss, acc = float(F.cross_entropy(logits, Y)), float((logits.argmax(1) == Y).float().mean())
    assert t.validate((X, Y)) == pytest.approx({"val_loss": loss, "val_acc": acc}, rel=1e-6)
    assert t.test(X.numpy(), Y.numpy()) == pytest.approx({"test_loss": loss, "test_acc": acc}, rel=1e-6)
    assert t.test(DataLoader(TensorDataset(X, Y), batch_size=7)) == pytest.approx(
        {"test_loss": loss, "test_acc": acc}, rel=1e-6)
    assert torch.allclose(t.predict(X, batch_size=7), logits, atol=1e-6)
    assert torch.allclose(t.predict(DataLoader(TensorDataset(X, Y), batch_size=7)), logits, atol=1e-6)
    assert torch.allclose(t.predict((X, Y)), logits, atol=1e-6)
    assert model.training  # the mode is restored


class Snapshots(Callback):
    def on_fit_start(self, state):
        self.by_epoch = {}

    def on_epoch_end(self, state):
        self.by_epoch[state.epoch] = weights(state.model)


def _early_stopped(**kwargs):
    torch.manual_seed(0)
    model = net()
    snaps = Snapshots()
    # a high LR on few points: val loss (on other points) rises after a few epochs
    x_val, y_val = torch.randn(40, 3, generator=torch.Generator().manual_seed(1)), torch.randint(0, 3, (40,))
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.5), epochs=40, batch_size=8,
                callbacks=[snaps, EarlyStopping(patience=3, **kwargs)])
    return t.fit((X[:24], Y[:24]), (x_val, y_val)), model, snaps


def test_early_stopping_keeps_the_last_weights_unless_asked_and_says_which_epoch_the_model_holds():
    state, model, snaps = _early_stopped(monitor="val_loss")
    assert state.stop.startswith("early stopping") and len(state.history) < 40
    assert state.weights_epoch == state.history[-1]["epoch"]
    assert all(torch.equal(a, b) for a, b in zip(weights(model), snaps.by_epoch[state.weights_epoch], strict=True))

    state, model, snaps = _early_stopped(monitor="val_loss", restore_best_weights=True)
    best = min(state.history, key=lambda r: r["val_loss"])["epoch"]
    assert state.weights_epoch == best != state.history[-1]["epoch"]
    assert all(torch.equal(a, b) for a, b in zip(weights(model), snaps.by_epoch[best], strict=True))
    assert f"at epoch {best + 1})" in state.stop  # the reason counts from 1


def test_early_stopping_mode_max_watches_the_metric_it_is_given_never_a_silent_switch():
    assert EarlyStopping(monitor="val_acc").mode == "max" and EarlyStopping().mode == "min"
    assert EarlyStopping(monitor="val_loss", mode="min").monitor == "val_loss"
    model = net()
    with pytest.raises(ValueError, match=r"EarlyStopping\(mode='max'\) needs the metric to maximize"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, callbacks=[EarlyStopping(mode="max")])
    state, _, _ = _early_stopped(monitor="val_acc", mode="max")
    stop, _ = EarlyStopping(mode="max", patience=3).evaluate([r["val_acc"] for r in state.history])
    assert stop and len(state.history) < 40  # it stopped where the pure criterion on val_acc says
    assert not EarlyStopping(mode="max", patience=3).evaluate([r["val_acc"] for r in state.history[:-1]])[0]


def test_stop_reasons_count_epochs_from_one():
    assert EarlyStopping(patience=2).evaluate([3.0, 2.0, 2.5, 2.6])[1].endswith("(best 2 at epoch 2)")
    assert NonFinite().evaluate([1.0, math.nan])[1] == "non-finite loss (nan) at epoch 2"
    assert Divergence(10).evaluate([1.0, 0.5, 20.0])[1].endswith("at epoch 3")
    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.fill_(math.nan)
    state = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=3, batch_size=30).fit((X, Y))
    assert state.stop == "non-finite training loss at epoch 1"


@pytest.mark.parametrize("own_generator", [False, True])
@pytest.mark.slow  # 0.15 s each on a 2-core CPU (RESULTS §51)
def test_a_dataloader_run_resumes_exactly(own_generator):
    """A shuffling loader with random augmentation: 2 epochs, checkpoint, 2 more == 4 uninterrupted epochs."""

    def loader(seed):
        g = torch.Generator().manual_seed(seed) if own_generator else None
        return DataLoader(Noisy(X, Y), batch_size=8, shuffle=True, generator=g)

    def trainer(epochs):
        model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.2), nn.Linear(8, 3))
        return Trainer(model, torch.optim.SGD(model.parameters(), 0.1, momentum=0.9), epochs=epochs)

    torch.manual_seed(0)
    full = trainer(4)
    full.fit(loader(7), (X, Y))

    torch.manual_seed(0)
    first = trainer(2)
    first.fit(loader(7), (X, Y))
    ckpt = first.checkpoint_state(copy=True)
    torch.manual_seed(123)  # a new process: other global RNG, a freshly seeded loader
    resumed = trainer(4)
    resumed.load_checkpoint_state(ckpt)
    resumed.fit(loader(99), (X, Y))
    assert [r["train_loss"] for r in resumed.state.history] == [r["train_loss"] for r in full.state.history]
    assert all(torch.equal(a, b) for a, b in zip(weights(resumed.model), weights(full.model), strict=True))


@pytest.mark.parametrize("shape", [(30,), (30, 5), (30, 1, 8), (30, 3, 4, 4)])
@pytest.mark.parametrize("idx_shape", [(7,), (3, 7), (30,)])
def test_take_rows_equals_advanced_indexing(shape, idx_shape):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(shape, generator=g) if len(shape) > 1 else torch.randint(0, 10, shape, generator=g)
    idx = torch.randint(0, shape[0], idx_shape, generator=g)
    out = take_rows(t, idx)
    assert out.shape == t[idx].shape and out.dtype == t.dtype
    assert torch.equal(out, t[idx])


class _TwoInputs(Dataset):
    def __len__(self):
        return len(X)

    def __getitem__(self, i):
        return (X[i, :2], X[i, 2:]), Y[i]


@pytest.mark.parametrize("data", ["loader", "tensors"])
def test_tuple_inputs_are_refused_in_one_line_that_says_what_to_do(data):
    """((x1, x2), y) batches: the model is called with one tensor, so the error says tuple inputs are not supported
    and how to pack them (and the model is left untrained)."""
    model = net()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=10)
    train = DataLoader(_TwoInputs(), batch_size=10) if data == "loader" else ((X[:, :2], X[:, 2:]), Y)
    with pytest.raises(TypeError) as err:
        trainer.fit(train)
    message = str(err.value)
    assert message.startswith(f"train inputs are a {'list' if data == 'loader' else 'tuple'} of 2 tensors")
    assert "tuple inputs are not supported" in message and "torch.cat([x1, x2], dim=1)" in message
    assert "split it in the model's forward" in message and len(message.splitlines()) == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
