"""``trainwell watch`` on a script whose optimizer steps tensors that no nn.Module holds (an ensemble trained with
torch.func: stack_module_state's stacked tensors, vmap over functional_call) says so, not that it never stepped."""
import textwrap

import pytest

from trainwell.cli import main

ENSEMBLE = textwrap.dedent("""
    import copy
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.func import functional_call, stack_module_state, vmap

    torch.manual_seed(0)
    x, y = torch.randn(64, 2), torch.randint(0, 2, (64,))
    members = [nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)) for _ in range(3)]
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    opt = torch.optim.Adam(list(params.values()), lr=1e-2)
    for step in range(6):
        logits = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, None))(params, buffers, x)
        loss = F.cross_entropy(logits.reshape(-1, 2), y.repeat(3))
        opt.zero_grad()
        loss.backward()
        opt.step()
""")


@pytest.mark.slow  # ~5 s: the command line, torch.func
def test_an_optimizer_of_tensors_no_module_holds_is_named(tmp_path, capsys):
    path = tmp_path / "ensemble.py"
    path.write_text(ENSEMBLE)
    assert main(["watch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "stepped 1 optimizer(s) on tensors that no nn.Module holds" in err
    assert "never called optimizer.step()" not in err
