"""A model whose forward takes each row's id beside its features (kept for logging, or for a lookup it does not
use) while the features are a few binary sensor flags: rows with equal flags get the very same output, and their
ids differ. The ids are not inputs the forward drops: watch does not name dropped inputs. A bag classifier given
lengths for its offsets, and the same row ids, still drops its documents' tokens and is named."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainwell import doctor

NAME = "loop: inputs reach the outputs"


class FlagClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))

    def forward(self, flags, row_id):
        return self.net(flags)


@pytest.mark.slow  # 0.28 s each on a 2-core CPU (RESULTS §51)
def test_rows_with_equal_features_and_their_own_ids_are_not_dropped_inputs():
    torch.manual_seed(0)
    flags = (torch.randn(1024, 4) > 0).float()
    y = (flags.sum(1) > 2).long()
    loader = DataLoader(TensorDataset(flags, torch.arange(1024), y), batch_size=32, shuffle=True)
    model = FlagClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            for xb, ids, yb in loader:
                loss = F.cross_entropy(model(xb, ids), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=yb)
    assert NAME not in [v.check for v in w.report() if v.status in ("warn", "fail")]


class BagClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(200, 16, mode="mean")
        self.fc = nn.Linear(16, 3)

    def forward(self, ids, offsets, doc_id):
        return self.fc(self.bag(ids, offsets))


@pytest.mark.parametrize("cumsum", [True, False])
@pytest.mark.slow  # 0.21 s each on a 2-core CPU (RESULTS §51)
def test_bag_offsets_left_as_lengths_are_named_beside_row_ids(cumsum):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (512,), generator=g)
    docs = []
    for c in labels.tolist():
        length = int(torch.randint(5, 20, (1,), generator=g))
        docs.append(torch.cat([torch.randint(0, 200, (length,), generator=g),
                               torch.randint(0, 20, (length // 2,), generator=g) + 20 * c]))
    model = BagClassifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with doctor.watch(model, opt, every=5) as w:
        for _ in range(2):
            order = torch.randperm(len(docs))
            for i in range(0, len(docs), 32):
                batch = order[i : i + 32]
                lengths = torch.tensor([0] + [len(docs[k]) for k in batch[:-1].tolist()])
                ids = torch.cat([docs[k] for k in batch.tolist()])
                loss = F.cross_entropy(model(ids, lengths.cumsum(0) if cumsum else lengths, batch), labels[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.step(loss, y=labels[batch])
    alarms = [v.check for v in w.report() if v.status in ("warn", "fail")]
    assert (NAME in alarms) is not cumsum
