"""A CTC model (Graves et al. 2006): (T, B, C) log-probabilities, examples along axis 1 as ``F.ctc_loss`` wants,
and (B, S) label sequences that never hold class 0, the blank. Neither is a fault; the same batch mixed across
examples, or a classifier's 1-based labels, still are."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor
from trainwell.doctor.batch_independence import batch_independence

T, C, S = 16, 6, 4


class FrameTagger(nn.Module):
    def __init__(self, mix_batch=False):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(8, 32, batch_first=True)
        self.out = nn.Linear(32, C)
        self.mix_batch = mix_batch

    def forward(self, x):
        h, _ = self.rnn(x)
        if self.mix_batch:  # normalized with the batch's statistics, in eval mode too
            h = h - h.mean(0, keepdim=True)
        return self.out(h).log_softmax(-1).transpose(0, 1)  # (T, B, C)


def _data(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(1, C, (n, S), generator=g)
    x = torch.randn(n, T, 8, generator=g) * 0.3
    for k in range(S):  # each symbol shown in 4 frames
        x[torch.arange(n)[:, None], torch.arange(4 * k, 4 * k + 4)[None], labels[:, k : k + 1]] += 2.0
    return x, labels


def ctc(logp, labels):
    n = logp.shape[1]
    return F.ctc_loss(logp, labels, torch.full((n,), T, dtype=torch.long), torch.full((n,), S, dtype=torch.long))


@pytest.mark.parametrize("mix_batch, status", [(False, "pass"), (True, "fail")])
def test_batch_independence_reads_each_example_along_the_time_first_outputs_batch_axis(mix_batch, status):
    x, _ = _data(64)
    assert batch_independence(FrameTagger(mix_batch), x).status == status


@pytest.mark.slow
def test_check_passes_a_healthy_ctc_model():
    x, labels = _data(256)
    model = FrameTagger()
    report = doctor.check(model, x, labels, ctc, optimizer=torch.optim.Adam(model.parameters(), 3e-3))
    assert not report.failed and report["batch independence"].status == "pass"


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_ctc_label_sequences_without_the_blank_are_not_one_based_labels():
    x, labels = _data(1024)
    model = FrameTagger()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, len(x), 32):
            loss = ctc(model(x[i : i + 32]), labels[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=labels[i : i + 32])
    verdict = w.report()["loop: labels"]
    assert verdict.status == "pass", verdict


class SoftmaxTagger(FrameTagger):
    """Softmax probabilities where F.ctc_loss reads log-probabilities."""

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.out(h).softmax(-1).transpose(0, 1)


def test_the_best_constant_output_keeps_the_examples_on_axis_1_and_log_probabilities_over_the_classes():
    from trainwell.doctor.fitting import _free_outputs

    x, labels = _data(64)
    const = _free_outputs(FrameTagger(), x, labels, ctc, per_example=False)(64)
    assert const.shape == (T, 64, C)
    torch.testing.assert_close(const.logsumexp(-1), torch.zeros(T, 64), atol=1e-5, rtol=0)
    assert torch.equal(const[:, 0], const[:, 63])  # one output for every example
    # no log-probabilities do better on these labels than the fitted constant: a uniform one is above it
    uniform = torch.full((T, 64, C), -torch.log(torch.tensor(float(C))))
    assert float(ctc(const, labels)) <= float(ctc(uniform, labels)) + 1e-4


@pytest.mark.slow
def test_check_runs_the_input_independent_baseline_on_time_first_log_probabilities():
    x, labels = _data(256)
    model = FrameTagger()
    report = doctor.check(model, x, labels, ctc, optimizer=torch.optim.Adam(model.parameters(), 3e-3))
    assert report["input-independent baseline"].status == "pass", report["input-independent baseline"]
    assert report["overfit a tiny subset"].status == "pass", report["overfit a tiny subset"]


@pytest.mark.slow
def test_check_names_softmax_probabilities_given_to_ctc_loss_and_defers_the_gradient_check_to_it():
    x, labels = _data(256)
    model = SoftmaxTagger()
    report = doctor.check(model, x, labels, ctc, optimizer=torch.optim.Adam(model.parameters(), 3e-3))
    fed = report["loss input"]
    assert fed.status == "fail" and "probabilities" in str(fed.value) and "log_softmax" in fed.advice, fed
    for v in report:
        if v.check.startswith("gradient check") and v.status == "fail":
            assert "custom backward" not in v.advice and "'loss input'" in v.advice, v


@pytest.mark.parametrize("model, status", [(FrameTagger(), "pass"), (SoftmaxTagger(), "fail")])
def test_watch_names_softmax_probabilities_given_to_ctc_loss(model, status):
    x, labels = _data(256)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for i in range(0, len(x), 32):
            loss = ctc(model(x[i : i + 32]), labels[i : i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=labels[i : i + 32])
    report = w.report()
    fed = report["loop: loss input"] if status == "fail" else None
    assert (fed is not None and "log_softmax" in fed.advice) or \
        (status == "pass" and not any(v.check == "loop: loss input" for v in report)), report


class RawScoreTagger(FrameTagger):
    """The linear layer's raw scores where F.ctc_loss reads log-probabilities."""

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.out(h).transpose(0, 1)


class CutTagger(FrameTagger):
    """Log-probabilities of each utterance up to its length, padded with zeros after it (``pad_sequence``)."""

    def forward(self, x, lengths):
        h, _ = self.rnn(x)
        logp = self.out(h).log_softmax(-1)
        return nn.utils.rnn.pad_sequence([logp[i, : lengths[i]] for i in range(len(x))])  # (T, B, C)


def _ctc_loop(model, loss_fn=None):
    """A user's CTC loop over a DataLoader with ``nn.CTCLoss``: every other utterance is 4 frames shorter."""
    x, labels = _data(256)
    lengths = torch.full((256,), T, dtype=torch.long)
    lengths[1::2] = T - 4
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, labels, lengths), batch_size=32)
    criterion = nn.CTCLoss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=10) as w:
        for xb, yb, lb in loader:
            out = model(xb, lb) if isinstance(model, CutTagger) else model(xb)
            loss = criterion(out, yb, lb, torch.full((len(yb),), S, dtype=torch.long))
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=yb)
    return w.report()


@pytest.mark.parametrize("model, named", [(RawScoreTagger(), True), (FrameTagger(), False), (CutTagger(), False)])
def test_watch_names_raw_scores_given_to_ctc_loss_and_not_zero_padding_after_the_input_lengths(model, named):
    report = _ctc_loop(model)
    fed = next((v for v in report if v.check == "loop: loss input"), None)
    assert (fed is not None) is named, report
    if named:
        assert fed.status == "fail" and "not log-probabilities" in str(fed.value) and "log_softmax" in fed.advice
        # the softmax over the raw scores' classes is not 1 at any position: logsumexp != 0 is read, not a sign
        assert "logsumexp" in str(fed.value)
        curve = report["learning rate (loss curve)"]
        assert curve.status == "info" or "loop: loss input" in str(curve.value), curve


def test_check_reads_ctc_log_probabilities_only_within_the_input_lengths():
    from trainwell.doctor.loss_inputs import read_loss_inputs

    x, labels = _data(8)
    lengths = torch.tensor([T, T - 4] * 4)
    logp = CutTagger()(x, lengths)
    assert bool((logp[T - 4 :, 1] == 0).all())  # the padding: exp(0) summed over C classes is C, not 1

    def loss_fn(out, y):
        return F.ctc_loss(out, y, lengths, torch.full((8,), S, dtype=torch.long))

    assert read_loss_inputs(loss_fn, logp.detach(), labels) is None
    assert read_loss_inputs(loss_fn, logp.detach().exp(), labels).status == "fail"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_log_probabilities_rounded_to_the_input_dtype_are_read_as_log_probabilities(dtype):
    from trainwell.doctor.loss_inputs import ctc_input_verdict

    scores = torch.randn(T, 8, 30, generator=torch.Generator().manual_seed(0)) * 3
    assert ctc_input_verdict(scores.to(dtype).log_softmax(-1)) is None
    assert ctc_input_verdict(scores.to(dtype)).status == "fail"
    assert ctc_input_verdict(scores.to(dtype).softmax(-1)).status == "fail"
