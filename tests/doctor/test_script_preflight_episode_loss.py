"""``trainwell watch --check`` on REINFORCE with a baseline: the loss is the script's own arithmetic, and it makes
a tensor of one episode's rows itself (``torch.tensor(actions)``), so its replay cannot score the joined episodes
the pre-flight runs on; the pre-flight says so and reads the structure only, instead of failing 'forward and loss
run' with an error the loop never raised."""
import textwrap

import pytest

from trainwell.doctor.script_watch import ScriptWatch

REINFORCE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    L = 6

    def feats(pos):
        v = torch.zeros(L + 1)
        v[pos] = 1.0
        return v

    class ActorCritic(nn.Module):
        def __init__(self):
            super().__init__()
            self.policy = nn.Sequential(nn.Linear(L + 1, 16), nn.Tanh(), nn.Linear(16, 2))
            self.value = nn.Sequential(nn.Linear(L + 1, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, s):
            return self.policy(s), self.value(s).squeeze(-1)

    model = ActorCritic()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for episode in range(40):
        pos, states, actions, rewards = 0, [], [], []
        for t in range(12 + episode % 5):
            s = feats(pos)
            with torch.no_grad():
                a = torch.distributions.Categorical(logits=model(s)[0]).sample().item()
            states.append(s)
            actions.append(a)
            pos = min(max(0, pos + (1 if a == 1 else -1)), L)
            rewards.append(1.0 if pos == L else -0.02)
        returns, g = [], 0.0
        for r in reversed(rewards):
            g = r + 0.97 * g
            returns.append(g)
        returns = torch.tensor(returns[::-1])
        logits, values = model(torch.stack(states))
        logp = F.log_softmax(logits, -1).gather(1, torch.tensor(actions).unsqueeze(1)).squeeze(1)
        loss = -(logp * (returns - values.detach())).mean() + 0.5 * F.mse_loss(values, returns)
        opt.zero_grad()
        loss.backward()
        opt.step()
""")


@pytest.mark.slow  # ~3 s: a script run under the watch with its pre-flight
def test_a_loss_that_makes_one_episodes_rows_itself_is_not_replayed_on_the_joined_episodes(tmp_path):
    path = tmp_path / "reinforce.py"
    path.write_text(REINFORCE)
    [report] = ScriptWatch(every=10, check=True).run(str(path), [])
    pre = [v for v, phase in zip(report.verdicts, report.phases, strict=True) if phase == "pre"]
    assert pre[0].status == "skip" and "on the model's structure only" in pre[0].value
    assert "replayed on these" in pre[0].value and "raised RuntimeError" in pre[0].value
    assert not [v for v in pre if v.status == "fail"]
