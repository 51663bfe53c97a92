"""``transformed()`` tells a torch.func transform's code from the loop's own, as functorch's interpreter stack does."""

import torch
from torch.func import grad, jacrev, jvp, vmap

from trainwell.doctor.func_transforms import outside_transforms, transformed


def _stack_nonempty() -> bool:
    return torch._C._functorch.peek_interpreter_stack() is not None


def test_transformed_agrees_with_the_interpreter_stack_inside_and_outside_each_transform():
    seen = []

    def f(x):
        seen.append((transformed(), _stack_nonempty()))
        return (x * x).sum()

    assert transformed() is False
    vmap(f)(torch.randn(3, 2))
    grad(f)(torch.randn(2))
    jacrev(f)(torch.randn(2))
    jvp(f, (torch.randn(2),), (torch.randn(2),))
    vmap(grad(f))(torch.randn(3, 2))
    assert len(seen) == 5
    assert all(ours == stack == True for ours, stack in seen)  # noqa: E712
    assert transformed() is False


def test_a_hook_wrapped_outside_transforms_runs_for_the_batch_forward_only():
    calls = []
    model = torch.nn.Linear(3, 1)
    model.register_forward_hook(outside_transforms(lambda m, i, o: calls.append(o.shape)))
    params = dict(model.named_parameters())

    def loss_of(p, x):
        return torch.func.functional_call(model, p, (x[None],)).pow(2).sum()

    x = torch.randn(4, 3)
    model(x)
    vmap(grad(loss_of), in_dims=(None, 0))(params, x)
    assert calls == [torch.Size([4, 1])]
