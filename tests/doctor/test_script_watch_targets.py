"""``trainwell watch train.py`` on losses whose targets the explicit ``doctor.watch`` is given and the command must
read itself: a soft Dice written out by hand (no loss call of torch's, so no saved target: its binary targets are
read back from the gradient it sends), and a multi-task model's dict of heads trained on a sum of loss calls (each
call's target handed over per head). Healthy twins: the Dice on a softmax, every head's labels 0-based, and a DQN
regressing ``q * one_hot(actions)`` (a one-hot in the graph that is no target of the outputs). And a class-index
loss told to ignore one of the model's classes (``ignore_index=0`` where 0 is a class), read from its call."""

import gc
import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

#: a user's script: argv[1] plants one bug, or its healthy twin
SCRIPT = """
import sys
import torch
import torch.nn.functional as F
from torch import nn

KIND = sys.argv[1]
torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :4] + torch.tensor([0.6, 0.2, 0.0, -0.3])).argmax(1)  # 4 classes, imbalanced


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU())
        self.head = nn.Linear(32, 4)
        self.rest = nn.Linear(32, 4 if KIND == "tasks_one_based" else 3) if KIND.startswith("tasks") else None

    def forward(self, inputs):
        h = self.body(inputs)
        if KIND.startswith("tasks"):
            return {"label": self.head(h), "rest": self.rest(h)}
        return self.head(h)


def soft_dice(scores, t):  # a per-class soft Dice over the batch, smoothing 1
    probs = scores if KIND == "dice_raw" else scores.softmax(1)
    onehot = F.one_hot(t, 4).float()
    overlap = (probs * onehot).sum(0)
    return 1 - ((2 * overlap + 1) / (probs.sum(0) + onehot.sum(0) + 1)).mean()


model = Net()
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for epoch in range(4):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        idx = perm[i:i + 32]
        out = model(x[idx])
        if KIND.startswith("tasks"):  # the second task: y % 3, numbered 1..3 by mistake in "tasks_one_based"
            rest = y[idx] % 3 + (KIND == "tasks_one_based")
            loss = F.cross_entropy(out["label"], y[idx]) + F.cross_entropy(out["rest"], rest)
        elif KIND.startswith("ignore"):  # ignore_index=0 "for the background" where 0 is a class, or torch's -100
            loss = F.cross_entropy(out, y[idx], ignore_index=0 if KIND == "ignore0" else -100)
        elif KIND == "dqn":  # Q-learning: the taken action's value regressed on a return
            actions, returns = y[idx], x[idx, 3]
            loss = F.smooth_l1_loss((out * F.one_hot(actions, 4)).sum(1), returns)
        else:
            loss = soft_dice(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _alarms(reports):
    return {v.check: v for report in reports for v in report if v.status in ("warn", "fail")}


@pytest.fixture(scope="module")
def alarms(tmp_path_factory):
    """Each kind of the script under the script watch: its warnings and fails."""
    path = tmp_path_factory.mktemp("targets") / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    out = {}
    for kind in ("dice_raw", "dice", "tasks_one_based", "tasks", "dqn", "ignore0", "ignore_default"):
        runner = ScriptWatch(every=8)
        out[kind] = _alarms(runner.run(str(path), [kind]))
        assert runner.error is None, runner.error
        del runner
        gc.collect()
    return out


@pytest.mark.slow  # ~8 s, shared: seven runs of a 64-step script
def test_a_hand_written_soft_dice_on_raw_scores_is_named_from_its_gradient(alarms):
    found = alarms["dice_raw"]["loop: loss input"]
    assert found.status == "fail" and "soft Dice loss" in found.value and "raw scores" in found.value
    assert "loop: loss input" not in alarms["dice"]


@pytest.mark.slow  # shares the runs above
def test_a_one_hot_regressed_in_a_dqn_is_not_read_as_a_dice(alarms):
    assert "loop: loss input" not in alarms["dqn"]


@pytest.mark.slow  # shares the runs above
def test_one_task_s_one_based_labels_are_read_against_their_own_head(alarms):
    found = alarms["tasks_one_based"]["loop: labels"]
    assert "task ['rest']" in found.value and "class 0 never appears" in found.value
    assert not alarms["tasks"]


@pytest.mark.slow  # shares the runs above
def test_an_ignore_index_that_is_one_of_the_classes_is_named_from_the_loss_call(alarms):
    found = alarms["ignore0"]["loop: targets"]
    assert found.status == "fail" and "ignore_index=0" in found.value and "4 classes" in found.value
    assert not alarms["ignore_default"]
