"""The library Trainer on code users write: models that return tuples, BatchNorm with a short last batch, torch
schedulers, stopping criteria per member, checkpoints in a folder, and the mistakes that used to fail deep inside
torch or silently (an optimizer over another copy, an empty validation loader, another optimizer on resume, a
user's own CSV file at the logger's path)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell.train import Trainer
from trainwell.train.callbacks import Checkpoint
from trainwell.train.loggers import CSVLogger
from trainwell.train.population import PopulationLearner
from trainwell.train.stopping import EarlyStopping, GeneralizationLoss


def _data(n=200, d=10, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x, x[:, :c].argmax(1)


def _mlp(d=10, c=3):
    return nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, c))


class WithFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Linear(10, 32), nn.ReLU()), nn.Linear(32, 3)

    def forward(self, x):
        h = self.body(x)
        return self.head(h), h


@pytest.mark.parametrize("loss_fn", ["cross_entropy", lambda out, t: F.cross_entropy(out[0], t)])
def test_a_model_returning_a_tuple_trains_with_a_named_or_its_own_loss(loss_fn):
    x, y = _data()
    torch.manual_seed(0)
    model = WithFeatures()
    t = Trainer(model, torch.optim.Adam(model.parameters(), 1e-2), loss_fn=loss_fn, epochs=5, batch_size=32)
    state = t.fit((x, y), (x, y))
    assert state.history[-1]["val_acc"] > 0.8 and state.history[-1]["train_loss"] < state.history[0]["train_loss"]
    scores = t.predict(x)
    assert torch.equal(scores, model.eval()(x)[0].detach())  # the class scores of the tuple
    assert math.isclose(state.history[-1]["val_acc"], float((scores.argmax(1) == y).float().mean()), abs_tol=1e-6)


def test_predict_takes_a_loader_of_inputs_alone():
    x, _ = _data()
    model = _mlp()
    t = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=32)
    torch.testing.assert_close(t.predict(DataLoader(TensorDataset(x), batch_size=64)), t.predict(x))


class BN(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)


def test_batchnorm_leaves_out_a_last_batch_of_one_example_and_a_loader_is_told_why():
    x, y = _data(n=65)  # 65 % 32 == 1
    torch.manual_seed(0)
    model = BN()
    state = Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=32).fit((x, y))
    assert state.step == 4  # 2 batches per epoch, the 65th example left out (a different one each epoch)
    model = BN()
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    with pytest.raises(ValueError, match="batch of 1 example.*drop_last=True"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1).fit(loader)
    model = _mlp()
    assert Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=32).fit(
        _data(n=65)).step == 3  # no BatchNorm: the 1-example batch trains


def test_an_empty_validation_loader_is_refused_not_a_perfect_epoch():
    x, y = _data()
    model = _mlp()
    empty = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=32)
    with pytest.raises(ValueError, match="validation data yielded no examples"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=32).fit((x, y), empty)


def test_an_optimizer_over_another_copy_of_the_model_is_refused():
    model, other = _mlp(), _mlp()
    with pytest.raises(ValueError, match="holds none of the model's parameters"):
        Trainer(model, torch.optim.SGD(other.parameters(), 0.1), epochs=1)


def test_the_non_finite_guard_marks_a_failed_run():
    x, y = _data()
    model = _mlp()
    state = Trainer(model, torch.optim.SGD(model.parameters(), 1e6), epochs=3, batch_size=32).fit((x, y))
    assert state.stop is not None and state.failure == state.stop and "non-finite" in state.failure


def test_resuming_needs_the_same_optimizer_and_architecture_and_a_trainer_checkpoint():
    x, y = _data()
    model = _mlp()
    saved = Trainer(model, torch.optim.Adam(model.parameters(), 1e-2), epochs=1, batch_size=32)
    saved.fit((x, y))
    ckpt = saved.checkpoint_state()
    other = _mlp()
    with pytest.raises(ValueError, match="another optimizer \\(Adam\\).*SGD"):
        Trainer(other, torch.optim.SGD(other.parameters(), 0.1), epochs=2).load_checkpoint_state(ckpt)
    wide = _mlp(c=4)
    with pytest.raises(ValueError, match="weights do not fit this model.*size mismatch"):
        Trainer(wide, torch.optim.Adam(wide.parameters(), 1e-2), epochs=2).load_checkpoint_state(ckpt)
    with pytest.raises(ValueError, match="not a trainer checkpoint"):
        Trainer(other, torch.optim.Adam(other.parameters(), 1e-2), epochs=2).load_checkpoint_state(model.state_dict())
    same = _mlp()
    resumed = Trainer(same, torch.optim.Adam(same.parameters(), 1e-2), epochs=2, batch_size=32)
    resumed.load_checkpoint_state(ckpt)
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), model.state_dict().values(), strict=True))


def test_csv_logger_never_overwrites_a_users_own_file_but_rewrites_its_own(tmp_path):
    x, y = _data()
    mine = tmp_path / "results.csv"
    mine.write_text("run,notes\n1,the good one\n", encoding="utf-8")
    model = _mlp()
    with pytest.raises(FileExistsError, match="not a metrics table"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=32,
                callbacks=[CSVLogger(mine)]).fit((x, y))
    assert mine.read_text(encoding="utf-8") == "run,notes\n1,the good one\n"
    logged = tmp_path / "metrics.csv"
    for epochs in (1, 2):  # a second run over the first one's table
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=epochs, batch_size=32,
                callbacks=[CSVLogger(logged)]).fit((x, y))
    assert len(logged.read_text(encoding="utf-8").splitlines()) == 3  # header + 2 epochs


@pytest.mark.parametrize("make, expected", [
    (lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), [0.1, 0.05, 0.025]),  # per epoch
    (lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5), None),  # on val loss
    (lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=3 * 7), None),  # per batch
])
def test_a_torch_scheduler_is_stepped_as_torch_steps_it(make, expected):
    x, y = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    sched = make(opt)
    state = Trainer(model, opt, schedule=sched, epochs=3, batch_size=32).fit((x, y), (x, y))
    lrs = [r["lr"] for r in state.history]
    if expected is not None:
        assert lrs == pytest.approx(expected)
    elif isinstance(sched, torch.optim.lr_scheduler.OneCycleLR):
        assert sched.last_epoch == 3 * 7  # stepped once per batch, 7 batches per epoch
    else:
        assert sched.last_epoch == 3  # stepped once per epoch, on the validation loss


def test_a_scheduler_of_another_optimizer_or_another_object_is_refused():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    stray = torch.optim.lr_scheduler.StepLR(torch.optim.SGD(_mlp().parameters(), 0.1), 1)
    with pytest.raises(ValueError, match="another optimizer"):
        Trainer(model, opt, schedule=stray, epochs=1)
    with pytest.raises(TypeError, match="pass a torch LR scheduler"):
        Trainer(model, opt, schedule="cosine", epochs=1)


def test_generalization_loss_is_a_callback_and_member_callbacks_take_criteria():
    x, y = _data()
    xv, yv = _data(seed=1)
    torch.manual_seed(0)
    model = _mlp()
    state = Trainer(model, torch.optim.SGD(model.parameters(), 3.0), epochs=30, batch_size=32,
                    callbacks=[GeneralizationLoss(alpha=1.0)]).fit((x, y), (xv, yv))
    val = [r["val_loss"] for r in state.history]
    gl = [100 * (val[t] / min(val[: t + 1]) - 1) for t in range(len(val))]  # Prechelt's GL(t), percent
    fired = state.stop is not None and "generalization loss" in state.stop
    assert all(g <= 1.0 for g in gl[: len(gl) - fired])  # never above alpha before it stopped
    assert not fired or gl[-1] > 1.0  # and above it when it did
    assert fired or len(val) == 30
    net = _mlp()
    population = PopulationLearner(net, [net.state_dict()] * 2, optimizer="adam", lrs=[1e-2, 1e-3],
                                   weight_decays=[0.0, 0.0])
    done = Trainer(population, epochs=40, batch_size=32, seed=[0, 1],
                   member_callbacks=[[EarlyStopping(patience=1)], [EarlyStopping(patience=1)]]).fit((x, y), (xv, yv))
    for member in done.trainer.members:  # each member stops on its own criterion, its own validation loss
        val = [r["val_loss"] for r in member.history]
        stopped_early = member.stop is not None and len(val) < 40
        assert not stopped_early or val[-1] >= min(val[:-1])  # patience 1: its last epoch did not improve


def test_checkpoint_takes_a_folder(tmp_path):
    x, y = _data()
    model = _mlp()
    Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2, batch_size=32,
            callbacks=[Checkpoint(tmp_path / "run")]).fit((x, y), (x, y))
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=False)
    assert saved["epoch"] == 1 and all(torch.equal(a, b) for a, b in
                                       zip(saved["model"].values(), model.state_dict().values(), strict=True))


@pytest.mark.parametrize("labels, match", [(lambda y: y + 1, r"labels run 1\.\.3 but the model has 3 outputs"),
                                           (lambda y: y[:, None], r"trailing dimension of 1.*\(32, 1\).*squeeze"),
                                           (lambda y: y - 1, r"labels run -1\.\.1")])
@pytest.mark.parametrize("loss_fn", ["cross_entropy", nn.CrossEntropyLoss()])
def test_labels_a_class_index_loss_cannot_take_are_named(labels, match, loss_fn):
    x, y = _data()
    model = _mlp()
    with pytest.raises(ValueError, match=match):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), loss_fn=loss_fn, epochs=1, batch_size=32).fit(
            (x, labels(y)))


def test_int32_labels_train_with_torchs_own_loss_module_as_with_a_named_loss():
    x, y = _data()
    runs = []
    for loss_fn, labels in (("cross_entropy", y), (nn.CrossEntropyLoss(), y.to(torch.int32))):
        torch.manual_seed(0)
        model = _mlp()
        runs.append(Trainer(model, torch.optim.SGD(model.parameters(), 0.1), loss_fn=loss_fn, epochs=2,
                            batch_size=32).fit((x, labels)).history[-1]["train_loss"])
    assert runs[0] == runs[1]


def test_the_dtype_error_names_the_conversion_that_helps():
    x, y = _data()
    model = _mlp().double()
    with pytest.raises(TypeError, match=r"inputs are float32 but the model's parameters are float64: convert the "
                                        r"inputs \(x\.to\(torch\.float64\).*"
                                        r"or the model \(model\.to\(torch\.float32\)"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=1, batch_size=32).fit((x, y))


def test_a_generator_used_up_after_one_epoch_is_named():
    x, y = _data()
    model = _mlp()
    batches = ((x[i : i + 32], y[i : i + 32]) for i in range(0, len(x), 32))
    with pytest.raises(ValueError, match="one-shot iterator.*used up after the first epoch"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2).fit(batches)
    empty = DataLoader(TensorDataset(x[:0], y[:0]), batch_size=32)
    with pytest.raises(ValueError, match="an empty dataset"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), epochs=2).fit(empty)


def test_the_named_mse_loss_points_regression_to_mse_loss():
    x, _ = _data()
    model = _mlp(c=1)
    with pytest.raises(TypeError, match="one-hot class labels.*mse_loss"):
        Trainer(model, torch.optim.SGD(model.parameters(), 0.1), loss_fn="mse", epochs=1, batch_size=32).fit(
            (x, x[:, :1]))


class _Pixels(nn.Module):
    """A user's CNN on raw pixels; ``scale`` converts them in its own forward."""

    def __init__(self, scale: bool):
        super().__init__()
        self.scale = scale
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        if self.scale:
            x = x.float() / 255
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("model, dtype", [(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), torch.uint8),
                                          (_Pixels(scale=False), torch.int64)])
def test_integer_inputs_to_a_floating_point_layer_are_named_in_one_line(model, dtype):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 255, (32, 1, 8, 8), generator=g).to(dtype), torch.randint(0, 3, (32,), generator=g)
    trainer = Trainer(model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8)
    have = str(dtype).removeprefix("torch.")
    with pytest.raises(TypeError, match=rf"train inputs are {have}, and the model met them in a floating-point "
                                        rf"layer \(.*\): convert them \(x\.float\(\)"):
        trainer.fit(x, y)


def test_integer_inputs_a_model_converts_or_embeds_itself_train():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (32,), generator=g)
    pixels = _Pixels(scale=True)
    x = torch.randint(0, 255, (32, 1, 8, 8), generator=g, dtype=torch.uint8)
    Trainer(pixels, optimizer=torch.optim.SGD(pixels.parameters(), lr=0.1), epochs=1, batch_size=8).fit(x, y)
    words = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    tokens = torch.randint(0, 10, (32, 3), generator=g)
    Trainer(words, optimizer=torch.optim.SGD(words.parameters(), lr=0.1), epochs=1, batch_size=8).fit(tokens, y)


def test_other_errors_on_integer_inputs_pass_through_unchanged():
    y = torch.randint(0, 3, (32,))
    wrong_width = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(13, 3))  # 3 tokens x 4 = 12 inputs
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        Trainer(wrong_width, optimizer=torch.optim.SGD(wrong_width.parameters(), lr=0.1), epochs=1,
                batch_size=8).fit(torch.randint(0, 10, (32, 3)), y)
    words = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(IndexError, match="index out of range"):  # ids past the embedding's 10 rows
        Trainer(words, optimizer=torch.optim.SGD(words.parameters(), lr=0.1), epochs=1, batch_size=8).fit(
            torch.randint(0, 20, (32, 3)), y)


def test_a_batchnorm_frozen_with_eval_stays_frozen_through_fit_validation_and_predict():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU())
    head = nn.Linear(16, 3)
    model = nn.Sequential(backbone, head)
    backbone.requires_grad_(False)
    backbone.eval()  # fine-tuning the head only: the backbone's statistics must not move
    before = backbone[1].running_mean.clone()
    x = torch.randn(200, 6) * 3 + 1
    y = x[:, :3].argmax(1)
    Trainer(model, torch.optim.SGD(head.parameters(), lr=0.1), epochs=3, batch_size=32).fit((x, y), (x, y))
    assert torch.equal(backbone[1].running_mean, before)
    assert model.training and head.training and not backbone.training and not backbone[1].training


def test_labels_refused_for_a_tuple_output_say_which_tensor_was_read_as_the_scores():
    class AuxFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.aux, self.cls = nn.Linear(4, 1), nn.Linear(4, 3)

        def forward(self, x):
            return self.aux(x), self.cls(x)  # the auxiliary output first

    model = AuxFirst()
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    with pytest.raises(ValueError, match=r"read from the model's tuple output as its tensor of shape \(8, 1\)"):
        Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=8).fit((x, y))


def test_a_checkpoint_monitors_what_the_epochs_record_or_says_why_not(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(128, 4), torch.randint(0, 3, (128,))
    model = nn.Linear(4, 3)
    best = Checkpoint(tmp_path / "a", monitor="val_acc")  # no validation data: train_acc, highest best
    state = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), epochs=4, batch_size=32,
                    callbacks=[best]).fit((x, y))
    accs = [r["train_acc"] for r in state.history]
    assert best.best == max(accs) and best.best_epoch == accs.index(max(accs))
    typo = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.5), epochs=1, batch_size=32,
                   callbacks=[Checkpoint(tmp_path / "b", monitor="val_los")])
    with pytest.raises(ValueError, match=r"^Checkpoint\(monitor='val_los'\) is not allowed: the epochs record"):
        typo.fit((x, y), (x, y))
    regression = nn.Linear(4, 1)
    nan = Trainer(regression, torch.optim.SGD(regression.parameters(), lr=0.1), nn.MSELoss(), epochs=1,
                  batch_size=32, callbacks=[Checkpoint(tmp_path / "c", monitor="val_acc")])
    with pytest.raises(ValueError, match="val_acc is NaN, as a regression records no accuracy"):
        nan.fit((x, x[:, :1]), (x, x[:, :1]))


def test_a_frozen_batchnorm_stays_frozen_through_summarize_lr_range_test_and_the_eval_then_head_pattern():
    from trainwell.cnn.summary import summarize
    from trainwell.train.lr_range import lr_range_test

    def model_with_frozen_bn():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
        net.train()
        net[1].eval()
        return net

    model = model_with_frozen_bn()
    summarize(model, (1, 8, 8))
    assert model.training and not model[1].training
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
    lr_range_test(model, torch.optim.SGD(model.parameters(), lr=1e-3), x, y, steps=20, batch_size=16)
    assert model.training and not model[1].training
    model = model_with_frozen_bn()
    model.eval()
    model[4].train()  # everything frozen but the head
    before = model[1].running_mean.clone()
    Trainer(model, torch.optim.SGD(model[4].parameters(), lr=0.1), epochs=2, batch_size=16).fit((x, y), (x, y))
    assert torch.equal(model[1].running_mean, before) and not model[1].training and model[4].training


class _TinySegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))

    def forward(self, x):
        return self.net(x)


def _masks():
    torch.manual_seed(0)
    x = torch.randn(16, 1, 8, 8)
    y = (x[:, 0] > 0).long()
    y[:, 0, :] = 255  # an unlabelled border, as segmentation datasets mark it
    return x, y


def test_segmentation_masks_with_a_void_label_train_under_ignore_index_and_are_named_without_it():
    x, y = _masks()
    model = _TinySegmenter()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    Trainer(model, opt, loss_fn=nn.CrossEntropyLoss(ignore_index=255), epochs=1, batch_size=8).fit((x, y))
    with pytest.raises(ValueError, match=r"labels run 0\.\.255.*255 marks unlabelled pixels.*ignore_index=255"):
        Trainer(model, opt, loss_fn=nn.CrossEntropyLoss(), epochs=1, batch_size=8).fit((x, y))
