"""doctor.watch(model, opt) on a loop that calls ``compiled = torch.compile(model)`` rather than the model (made
before the watch or inside it, or ``model.compile()`` inside it): the steps the watch observes run the uncompiled
forward (monitors and mode read, no graph break in the watch's hooks), the other steps run the compiled graph.
Run in a subprocess: importing torch's compiler changes what the optimizers of the other tests go through."""

import json
import subprocess
import sys

import pytest

from trainwell.doctor.observed_steps import phased_step

LOOP = """
import json, warnings
import torch, torch.nn.functional as F
from torch import nn
from torch import compile as compile_fn  # taken before the watch: the watch's torch.compile is not this one
from trainwell import doctor

runs = []
def counting(gm, example_inputs):  # dynamo's graph run as it is: counts the steps that ran compiled
    def run(*args):
        runs.append(1)
        return gm.forward(*args)
    return run

torch.manual_seed(0)
centers = 3 * torch.randn(4, 8)
y = torch.randint(0, 4, (1024,))
x = centers[y] + torch.randn(1024, 8)
model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 4))
WHERE = "{where}"  # the loop compiles the model before the watch, inside it, or in place inside it
if WHERE == "alias_loaded":
    import torch._dynamo  # the compiler imported before the watch; with "alias" the compile inside imports it
if WHERE == "before":
    compiled = torch.compile(model, backend=counting)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
EVAL_BUG = {bug}
with warnings.catch_warnings(record=True) as shown:
    warnings.simplefilter("always")
    with doctor.watch(model, opt, every=20) as w:
        if WHERE == "inside":
            compiled = torch.compile(model, backend=counting)
        elif WHERE.startswith("alias"):
            compiled = compile_fn(model, backend=counting)
        elif WHERE == "in_place":
            model.compile(backend=counting)
            compiled = model
        for epoch in range(4):
            if epoch == 0 or not EVAL_BUG:
                compiled.train()
            for i in range(0, 1024, 64):
                loss = F.cross_entropy(compiled(x[i:i + 64]), y[i:i + 64])
                opt.zero_grad(); loss.backward(); opt.step()
                w.step(loss, y=y[i:i + 64])
            compiled.eval()  # left in eval mode when EVAL_BUG
            with torch.no_grad():
                w.validate(F.cross_entropy(compiled(x[:256]), y[:256]).item())
report = w.report()
from torch._dynamo.utils import counters
breaks = [k.splitlines()[0] for k in counters["graph_break"] if "torch.compiler.disable" not in k]
print(json.dumps({{"mode": report["loop: train/eval mode"].status, "monitors": report["monitors"].status,
                   "observed": sum("activations" in r for r in w.monitor.records), "breaks": breaks,
                   "warnings": [str(m.message)[:200] for m in shown], "compiled_runs": len(runs),
                   "compiles": counters["frames"]["ok"]}}))
"""


def _run(bug: bool, where: str = "before") -> dict:
    done = subprocess.run([sys.executable, "-c", LOOP.format(bug=bug, where=where)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Graph break" not in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # 4 s each
@pytest.mark.parametrize("where", ["before", "inside", "in_place", "alias", "alias_loaded"])
def test_a_loop_calling_the_compiled_wrapper_is_observed_uncompiled_and_runs_compiled_otherwise(where):
    """Also when the loop compiles the model inside the watch (``torch.compile(model)``, ``model.compile()``, or
    ``compile`` imported from torch before the watch, with torch's compiler imported by then or not): the watch
    takes the compiled module as it is made, from the first step on."""
    got = _run(bug=False, where=where)
    assert got["breaks"] == [] and got["warnings"] == [], got
    assert got["mode"] == "pass" and got["monitors"] == "pass", got
    assert got["observed"] == 3, got  # steps 19, 39, 59 of 64: the monitor's hooks saw each one's activations
    # 64 training steps, those the watch reads (the first 3, then 1 in 20 at a phase moving by block:
    # observed_steps.py) or the monitor observes (the last of each block of 20) run uncompiled, the rest compiled,
    # and so do the 4 validations (up to 4 more runs uncompiled around them); a compile for training and one for
    # evaluation
    uncompiled = sum(k < 3 or phased_step(k, 20) or (k + 1) % 20 == 0 for k in range(64))
    assert uncompiled == 8
    assert got["compiled_runs"] >= 64 + 4 - uncompiled - 4, got
    assert got["compiles"] <= 4, got


@pytest.mark.slow  # 4 s each
@pytest.mark.parametrize("where", ["before", "inside"])
def test_eval_mode_left_on_through_the_compiled_wrapper_is_named(where):
    got = _run(bug=True, where=where)
    assert got["breaks"] == [] and got["warnings"] == [], got
    assert got["mode"] == "fail", got


def test_the_watch_puts_torch_compile_back():
    """torch.compile and nn.Module.compile are the functions torch defines after a watch closes, nested watches
    and a loop that raises included; nothing is left on sys.meta_path."""
    import torch
    from torch import nn

    from trainwell import doctor

    compile_function, compile_method, finders = torch.compile, nn.Module.compile, list(sys.meta_path)
    model = nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError), doctor.watch(model, opt), doctor.watch(model, opt):
        raise ValueError("the loop failed")
    assert torch.compile is compile_function and nn.Module.compile is compile_method
    assert sys.meta_path == finders
