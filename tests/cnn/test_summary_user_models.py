"""summarize on users' own models: global pooling heads, embeddings, recurrent layers, float64 models, and an
input_shape that does not fit."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainwell.cnn.summary import summarize


def _measured_field(model: nn.Module, input_shape, position) -> tuple[int, ...]:
    """The oracle: the extent of the input pixels one output unit's gradient reaches (a model without
    nonlinearities, random weights, so no gradient cancels to exactly zero)."""
    x = torch.zeros(1, *input_shape, requires_grad=True)
    model(x)[(0, 0, *position)].backward()
    reached = x.grad[0].abs().sum(0).nonzero()
    return tuple(int(reached[:, i].max() - reached[:, i].min() + 1) for i in range(reached.shape[1]))


def test_a_global_average_pooling_head_sees_the_whole_image():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1))
    rows = summarize(nn.Sequential(*body, nn.Flatten(), nn.Linear(4, 2)), (1, 10, 10))
    assert rows[1].receptive_field == (10, 10) == _measured_field(body, (1, 10, 10), (0, 0))


@pytest.mark.parametrize("pool", [nn.AdaptiveMaxPool2d(4), nn.AdaptiveAvgPool2d(4)])
def test_an_adaptive_pool_that_divides_its_input_composes_as_a_pool(pool):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), pool, nn.Conv2d(2, 2, 2))  # 10 -> 8 -> 4 -> 3
    rows = summarize(model, (1, 10, 10))
    assert [r.receptive_field for r in rows] == [(3, 3), (4, 4), (6, 6)]
    if isinstance(pool, nn.AdaptiveAvgPool2d):  # max pooling routes the gradient to one pixel per window
        assert _measured_field(model, (1, 10, 10), (1, 1)) == (6, 6)


def test_a_text_model_with_an_embedding_and_an_lstm():
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm, self.fc = nn.Embedding(50, 8), nn.LSTM(8, 16, batch_first=True), nn.Linear(16, 3)

        def forward(self, tokens):
            out, _ = self.lstm(self.emb(tokens))
            return self.fc(out[:, -1])

    rows = summarize(Tagger(), (12,))
    assert [(r.name, r.output_shape) for r in rows] == [("emb", (12, 8)), ("lstm", (12, 16)), ("fc", (3,))]
    assert [r.params for r in rows] == [50 * 8, 4 * 16 * (8 + 16 + 2), 16 * 3 + 3]


def test_a_float64_model_gets_float64_zeros():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)).double()
    rows = summarize(model, (1, 8, 8))
    assert rows[0].output_shape == (4, 6, 6) and rows[-1].output_shape == (2,)


def test_an_input_shape_that_does_not_fit_names_the_shape_tried():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"failed on a zero input of shape \(1, 1, 16, 16\).*"
                                         r"input_shape=\(1, 16, 16\).*expected input\[1, 1, 16, 16\] to have 3 "):
        summarize(model, (1, 16, 16))


def test_a_linear_at_every_position_counts_its_mult_adds_per_position_and_shares_its_matrix():
    class TokenMlp(nn.Module):  # a per-position MLP over (T, F) rows, as in a transformer block
        def __init__(self):
            super().__init__()
            self.up, self.down = nn.Linear(5, 7), nn.Linear(7, 3, bias=False)

        def forward(self, x):
            return self.down(torch.relu(self.up(x)))

    model = TokenMlp()
    up, down = summarize(model, (12, 5))
    flops = FlopCounterMode(display=False)  # the oracle: torch's count, 2 per mult-add
    with flops:
        model(torch.zeros(1, 12, 5))
    assert up.mult_adds + down.mult_adds == flops.get_total_flops() // 2 == 12 * (5 * 7 + 7 * 3)
    assert (up.params, up.params_unshared) == (42, 12 * 7 * 6)
    assert (down.params, down.params_unshared) == (21, 12 * 3 * 7)
    plain = summarize(nn.Linear(5, 7), (5,))[0]  # one position: nothing shared
    assert plain.mult_adds == 35 and plain.params == plain.params_unshared == 42


@pytest.mark.parametrize("layer, gates", [(nn.RNN(5, 7, batch_first=True), 1), (nn.GRU(5, 7, batch_first=True), 3),
                                          (nn.LSTM(5, 7, batch_first=True), 4)], ids=["rnn", "gru", "lstm"])
def test_a_recurrent_layer_counts_its_gates_at_every_time_step(layer, gates):
    class Reader(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = layer

        def forward(self, x):
            return self.rnn(x)[0]

    row = summarize(Reader(), (12, 5))[0]
    assert row.mult_adds == 12 * gates * 7 * (5 + 7)  # the oracle: gates x hidden x (inputs + hidden) per step
    assert row.params == gates * 7 * (5 + 7 + 2)


def test_a_deep_bidirectional_projected_lstm_counts_every_layer_and_direction():
    lstm = nn.LSTM(5, 8, num_layers=2, bidirectional=True, proj_size=3, batch_first=True)

    class Reader(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lstm

        def forward(self, x):
            return self.lstm(x)[0]

    per_step = 2 * (4 * 8 * (5 + 3) + 8 * 3) + 2 * (4 * 8 * (3 * 2 + 3) + 8 * 3)
    assert summarize(Reader(), (10, 5))[0].mult_adds == 10 * per_step
    # the weights say the same: every weight matrix is used once per step
    assert 10 * sum(p.numel() for n, p in lstm.named_parameters() if n.startswith("weight")) == 10 * per_step


def _steps_read(model: nn.Module, shape: tuple[int, ...], axis: int) -> int:
    """The oracle: how many input positions along ``axis`` (of one example) the output's gradient reaches."""
    torch.manual_seed(0)
    x = torch.randn(1, *shape, requires_grad=True)
    model(x).sum().backward()
    reached = x.grad[0].abs().sum(dim=tuple(d for d in range(len(shape)) if d != axis)) > 0
    return int(reached.sum())


def test_a_recurrent_layer_sees_its_whole_input_sequence():
    class LastStep(nn.Module):  # a user's GRU classifier on (T, F) sequences, read at its last step
        def __init__(self):
            super().__init__()
            self.gru, self.head = nn.GRU(5, 7, batch_first=True), nn.Linear(7, 2)

        def forward(self, x):
            return self.head(self.gru(x)[0][:, -1])

    class ConvThenLSTM(nn.Module):  # a conv front end over (C, L) signals, then a bidirectional LSTM
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(5, 8, 3)
            self.lstm, self.head = nn.LSTM(8, 6, batch_first=True, bidirectional=True), nn.Linear(12, 2)

        def forward(self, x):
            return self.head(self.lstm(self.conv(x).transpose(1, 2))[0][:, 0])

    rows = summarize(LastStep(), (12, 5))
    assert [r.receptive_field for r in rows] == [(12,), (12,)]
    assert _steps_read(LastStep(), (12, 5), axis=0) == 12
    rows = summarize(ConvThenLSTM(), (5, 20))
    assert [r.receptive_field for r in rows] == [(3,), (20,), (20,)]
    assert _steps_read(ConvThenLSTM(), (5, 20), axis=1) == 20


def test_a_model_that_reads_a_dict_is_told_apart_from_a_wrong_shape():
    class DictIn(nn.Module):  # a user's model whose forward takes {"x": ...}
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, batch):
            return self.fc(batch["x"])

    with pytest.raises(TypeError) as torch_says:  # the oracle: the forward itself refuses one tensor
        DictIn()(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"DictIn failed in its own forward before any layer ran, on a zero input "
                                         r"of shape \(1, 4\).*a forward that reads a dict") as ours:
        summarize(DictIn(), (4,))
    assert str(torch_says.value).splitlines()[0] in str(ours.value)
    class TensorIn(DictIn):  # the same layer, reading a tensor of the wrong width
        def forward(self, x):
            return self.fc(x)

    with pytest.raises(ValueError, match=r"\(1, 5\).*in its layer 'fc': give one example's shape"):
        summarize(TensorIn(), (5,))


@pytest.mark.parametrize(("kernel", "stride", "dilation", "field"), [(4, 2, 1, 2), (3, 2, 1, 2), (5, 2, 1, 3),
                                                                    (3, 1, 2, 5), (4, 3, 2, 3)])
def test_a_transposed_conv_counts_its_scattered_mult_adds_and_the_inputs_an_output_sees(kernel, stride, dilation,
                                                                                        field):
    class Decoder(nn.Module):  # a user's upsampling head: a transposed conv, then a 1x1 conv
        def __init__(self):
            super().__init__()
            self.up = nn.ConvTranspose2d(6, 4, kernel, stride=stride, dilation=dilation)
            self.out = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.out(torch.relu(self.up(x)))

    torch.manual_seed(0)
    model = Decoder()
    rows = summarize(model, (6, 7, 7))
    with FlopCounterMode(display=False) as flops:
        model.up(torch.zeros(1, 6, 7, 7))
    assert rows[0].mult_adds == flops.get_total_flops() // 2
    assert rows[0].params_unshared == rows[0].mult_adds + rows[0].neurons  # one weight per connection, one bias
    assert rows[0].receptive_field == rows[1].receptive_field == (field, field)
    x = torch.randn(1, 6, 7, 7, requires_grad=True)  # the oracle: the widest input patch an output's gradient reaches
    out = model.up(x)
    widest = 0
    for o in range(out.shape[-1] // 2, out.shape[-1] // 2 + stride):
        x.grad = None
        out[0, 0, o, o].backward(retain_graph=True)
        reached = (x.grad[0].abs().sum(0).sum(0) > 0).nonzero().flatten()
        widest = max(widest, int(reached.max() - reached.min()) + 1)
    assert widest == field
