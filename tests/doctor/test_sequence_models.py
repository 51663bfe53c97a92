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


@pytest.mark.slow
@pytest.mark.parametrize("frozen_output, status", [(False, "pass"), (True, "fail")])
def test_a_left_to_right_model_is_held_to_what_its_prefixes_allow(frozen_output, status):
    seq = _sentences()
    x, y = seq[:, :-1], seq[:, 1:]
    assert causal_ceiling(x[:20], y[:20]) < 0.97  # second tokens cannot be told from the first
    verdict = overfit_tiny_subset(LSTMLanguageModel(frozen_output), x, y, _lm_loss)
    assert verdict.status == status


class TinyGPT(nn.Module):
    """A user's decoder-only transformer; ``mask``: 'causal' (healthy), 'none' or 'inverted' (each position sees the
    future)."""

    def __init__(self, mask="causal", padding_idx=None):
        super().__init__()
        torch.manual_seed(0)
        self.mask = mask
        self.emb = nn.Embedding(V, 16, padding_idx=padding_idx)
        self.pos = nn.Parameter(torch.randn(T, 16) * 0.1)
        self.block = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.out = nn.Linear(16, V)

    def forward(self, x):
        t = x.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        mask = {"causal": causal, "none": None, "inverted": torch.where(causal == 0, float("-inf"), 0.0)
                .fill_diagonal_(0.0)}[self.mask]
        return self.out(self.block(self.emb(x) + self.pos[:t], src_mask=mask))


def _next_token_report(model, x, y, loss_fn=_lm_loss):
    report = doctor.check(model, x, y, loss_fn)
    return next((v for v in report.verdicts if v.check == "next-token targets"), None)


@pytest.mark.slow
def test_targets_equal_to_the_inputs_are_named():
    seq = _sentences()
    verdict = _next_token_report(LSTMLanguageModel(), seq[:, :-1], seq[:, :-1])
    assert verdict is not None and verdict.status == "fail" and "shift the targets by one" in verdict.advice
    assert _next_token_report(LSTMLanguageModel(), seq[:, :-1], seq[:, 1:]) is None


@pytest.mark.slow
@pytest.mark.parametrize("mask, fails", [("causal", False), ("none", True), ("inverted", True)])
def test_a_model_that_reads_later_tokens_under_next_token_targets_is_named(mask, fails):
    seq = _sentences()
    verdict = _next_token_report(TinyGPT(mask), seq[:, :-1], seq[:, 1:])
    assert (verdict is not None and verdict.status == "fail" and "causal mask" in verdict.advice) == fails


@pytest.mark.slow
@pytest.mark.parametrize("ignored", [False, True])
def test_padding_counted_in_the_targets_is_named_unless_the_loss_ignores_it(ignored):
    seq = _sentences() % (V - 1) + 1  # ids 1..V-1, 0 is padding
    seq[:, 6:] = 0  # every sentence padded after 6 tokens
    x, y = seq[:, :-1], seq[:, 1:]

    def loss_fn(out, t):
        return F.cross_entropy(out.reshape(-1, V), t.reshape(-1), ignore_index=0 if ignored else -100)

    verdict = _next_token_report(TinyGPT("causal", padding_idx=0), x, y, loss_fn)
    assert (verdict is not None and verdict.status == "warn" and "ignore_index=0" in verdict.advice) == (not ignored)


def test_sequence_scores_given_to_cross_entropy_without_transposing_get_the_conversion():
    seq = _sentences()
    report = doctor.check(LSTMLanguageModel(), seq[:, :-1], seq[:, 1:], nn.CrossEntropyLoss())
    first = report.verdicts[0]
    assert first.check == "forward and loss run" and first.status == "fail"
    assert "out.transpose(1, 2)" in first.advice and f"out.reshape(-1, {V})" in first.advice


def test_a_recurrent_state_passed_as_an_input_is_recognized_in_the_error():
    class Stateful(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.out = nn.LSTM(4, 8, batch_first=True), nn.Linear(8, 3)

        def forward(self, x, h, c):
            return self.out(self.rnn(x, (h, c))[0][:, -1])

    x, state = torch.randn(16, 5, 4), torch.zeros(1, 16, 8)
    with pytest.raises(ValueError, match=r"x\[1\] has the batch on dim 1, as a recurrent state"):
        doctor.check(Stateful(), (x, state, state), torch.randint(0, 3, (16,)), nn.CrossEntropyLoss())


@pytest.mark.slow
def test_a_token_autoencoder_that_reads_the_whole_sequence_may_reconstruct_its_input():
    seq = _sentences()
    assert _next_token_report(TinyGPT("none"), seq[:, :-1], seq[:, :-1]) is None  # reconstruction by design
    verdict = _next_token_report(TinyGPT("causal"), seq[:, :-1], seq[:, :-1])
    assert verdict is not None and verdict.status == "fail"  # a left-to-right model copying its input


class _Seq2Seq(nn.Module):
    """A decoder over the target-side input (teacher forcing), given the source too."""

    def __init__(self, mask):
        super().__init__()
        self.decoder = TinyGPT(mask)

    def forward(self, src, tgt_in):
        return self.decoder(tgt_in)


@pytest.mark.slow
@pytest.mark.parametrize("mask, fails", [("causal", False), ("none", True)])
def test_a_decoders_input_is_found_among_several_token_inputs_and_ignored_targets_are_left_out(mask, fails):
    seq = _sentences()
    src = torch.randint(0, V, seq[:, :-1].shape, generator=torch.Generator().manual_seed(1))
    y = seq[:, 1:].clone()
    y[:, -4:] = -100  # padding the loss ignores
    verdict = _next_token_report(_Seq2Seq(mask), (src, seq[:, :-1]), y,
                                 lambda out, t: F.cross_entropy(out.reshape(-1, V), t.reshape(-1)))
    assert (verdict is not None and "causal mask" in verdict.advice) == fails


def test_a_taggers_tag_0_is_not_read_as_the_embeddings_padding():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, V, (64, T), generator=g)
    ids[:, -3:] = 0  # padding tokens
    tags = (ids >= 6).long()  # tag 0 ('O') is a real class, most tokens' tag
    tags[:, -3:] = -100

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.emb, self.rnn = nn.Embedding(V, 16, padding_idx=0), nn.LSTM(16, 16, batch_first=True)
            self.out = nn.Linear(16, 2)

        def forward(self, x):
            return self.out(self.rnn(self.emb(x))[0])

    assert _next_token_report(Tagger(), ids, tags, lambda o, t: F.cross_entropy(o.transpose(1, 2), t)) is None


@pytest.mark.parametrize("sequence", [True, False])
@pytest.mark.slow  # 0.17-0.30 s each on a 2-core CPU (RESULTS §51)
def test_labels_from_1_are_named_for_a_classifier_but_not_for_token_sequences_whose_id_0_starts_them(sequence):
    torch.manual_seed(0)
    vocab, steps, n = 6, 4, 640
    tokens = torch.randint(1, vocab, (n, steps))  # ids 1..5; id 0 is the decoder's start token, never a target
    step = nn.Linear(vocab, vocab)  # a decoder step: the previous token -> the next token's scores
    opt = torch.optim.Adam(step.parameters(), lr=1e-2)
    with doctor.watch(step, opt, every=5) as w:
        for i in range(0, n, 64):
            target = tokens[i : i + 64] if sequence else tokens[i : i + 64, 0]  # (B, T), or labels 1..5 (B,)
            previous = torch.zeros(len(target), dtype=torch.long)
            loss = 0.0
            for t in range(steps if sequence else 1):
                y_t = target[:, t] if sequence else target
                loss = loss + F.cross_entropy(step(F.one_hot(previous, vocab).float()), y_t)
                previous = y_t
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=target)
    verdict = w.report()["loop: labels"]
    assert (verdict.status == "warn", "class 0 never appears" in verdict.value) == (not sequence, not sequence)
