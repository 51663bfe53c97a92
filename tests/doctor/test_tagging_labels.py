"""``loop: labels`` on (B, T) integer targets. A sequence tagger's tags numbered from 1 (tags 1..K under an output of
width K + 1, output 0 never a target) are 1-based labels, as for a classifier; a language model's targets are
tokens of its own input vocabulary (an embedding as wide as its output), whose id 0, a start or padding token, may
never be a target."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainwell import doctor

WORDS, TAGS, LENGTH, BATCH = 500, 6, 12, 16


class Tagger(nn.Module):
    """A part-of-speech-style tagger: word embeddings, an LSTM, one score per tag at every position."""

    def __init__(self, outputs):
        super().__init__()
        self.emb = nn.Embedding(WORDS, 32)
        self.rnn = nn.LSTM(32, 32, batch_first=True)
        self.head = nn.Linear(32, outputs)

    def forward(self, words):
        return self.head(self.rnn(self.emb(words))[0])


class LanguageModel(nn.Module):
    """A small character-level language model: it scores the next token over its own input vocabulary."""

    def __init__(self, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, 32)
        self.rnn = nn.LSTM(32, 32, batch_first=True)
        self.head = nn.Linear(32, vocab)

    def forward(self, ids):
        return self.head(self.rnn(self.emb(ids))[0])


def _train(model, x, y, loss_fn, steps=40):
    """A user's loop over random batches; returns the ``loop: labels`` verdict."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(steps):
            i = torch.randint(0, len(x), (BATCH,))
            loss = loss_fn(model(x[i]), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            w.step(loss, y=y[i])
    return w.report()["loop: labels"]


def _sentences(n=640, seed=0):
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(1, WORDS, (n, LENGTH), generator=g)
    return words, words % TAGS  # a tag per word: 0..TAGS - 1


def _per_position(ignore_index=-100):
    return lambda scores, tags: F.cross_entropy(scores.transpose(1, 2), tags, ignore_index=ignore_index)


@pytest.mark.slow  # ~0.2 s: a watched loop or check run
def test_a_taggers_tags_numbered_from_1_are_named_as_1_based_labels():
    torch.manual_seed(0)
    words, tags = _sentences()
    verdict = _train(Tagger(TAGS + 1), words, tags + 1, _per_position())  # tags 1..6, output 0 never a target
    assert verdict.status == "warn" and "class 0 never appears" in verdict.value, verdict.value


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.slow  # 0.24 s each on a 2-core CPU (RESULTS §51)
def test_a_taggers_tags_from_0_pass_also_with_tag_0_as_ignored_padding(padded):
    torch.manual_seed(0)
    words, tags = _sentences()
    if padded:  # tag 0 pads the shorter sentences and the loss ignores it; the real tags are 1..6
        tags = tags + 1
        lengths = torch.randint(5, LENGTH + 1, (len(words),), generator=torch.Generator().manual_seed(1))
        pad = torch.arange(LENGTH)[None] >= lengths[:, None]
        words, tags = words.masked_fill(pad, 0), tags.masked_fill(pad, 0)
    model = Tagger(TAGS + 1 if padded else TAGS)
    verdict = _train(model, words, tags, _per_position(ignore_index=0 if padded else -100))
    assert verdict.status == "pass", verdict.value


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_a_small_language_model_whose_id_0_is_never_a_target_passes(padded):
    vocab = 30
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, vocab, (640, LENGTH + 1), generator=g)  # id 0: the start token, or the padding
    if padded:
        lengths = torch.randint(5, LENGTH + 2, (640,), generator=g)
        tokens = tokens.masked_fill(torch.arange(LENGTH + 1)[None] >= lengths[:, None], 0)
    else:
        tokens[:, 0] = 0
    torch.manual_seed(0)
    verdict = _train(LanguageModel(vocab), tokens[:, :-1], tokens[:, 1:],
                     _per_position(ignore_index=0 if padded else -100))
    assert verdict.status == "pass", verdict.value
