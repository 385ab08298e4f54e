"""Cancel points: a set event stops a forward pass at the next block, and no hook outlives the block."""

from __future__ import annotations

import threading

import pytest
import torch

from aiprod_studio.errors import Cancelled
from engine.models.interrupt import cancel_points, cancel_targets


class Block(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.proj = torch.nn.Linear(width, width)
        self.parts = torch.nn.ModuleList([torch.nn.Linear(width, width), torch.nn.GELU()])

    def forward(self, x):
        x = self.proj(x)
        for part in self.parts:
            x = part(x)
        return x


class Stack(torch.nn.Module):
    def __init__(self, depth: int = 4, width: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.head = torch.nn.Linear(width, width)
        self.blocks = torch.nn.ModuleList([Block(width) for _ in range(depth)])

    def forward(self, x):
        x = self.head(x)
        for block in self.blocks:
            x = block(x)
        return x


def all_pre_hooks(*modules) -> int:
    return sum(len(m._forward_pre_hooks) for root in modules for m in root.modules())


def test_targets_are_the_modules_and_every_module_list_child_once():
    a, b = Stack(depth=3), Stack(depth=2)
    targets = cancel_targets([a, None, "tokenizer", b, a])
    # each root, its 3 (2) blocks, and each block's 2 parts; the Linear `head`/`proj` are inside a target
    assert len(targets) == (1 + 3 + 3 * 2) + (1 + 2 + 2 * 2)
    assert targets[0] is a and a.blocks[0] in targets and a.blocks[2].parts[1] in targets
    assert a.head not in targets and a.blocks[0].proj not in targets
    assert len({id(t) for t in targets}) == len(targets)
    assert cancel_targets(a) == cancel_targets([a])


def test_a_set_event_stops_at_the_next_block_and_every_hook_goes():
    model, cancel = Stack(depth=4), threading.Event()
    ran = []

    def count(module, _args, _out):
        ran.append(module)
        if len(ran) == 2:  # from inside the second block: the third must not run
            cancel.set()

    counters = [blk.register_forward_hook(count) for blk in model.blocks]
    with pytest.raises(Cancelled, match="training cancelled"):
        with cancel_points(model, cancel, message="training cancelled") as points:
            assert points == 1 + 4 + 4 * 2 and all_pre_hooks(model) == points
            model(torch.ones(1, 8))
    assert ran == [model.blocks[0], model.blocks[1]]
    assert all_pre_hooks(model) == 0  # removed although the body raised
    for handle in counters:
        handle.remove()


def test_an_event_set_before_the_call_stops_at_the_module_itself():
    model, cancel = Stack(), threading.Event()
    cancel.set()
    head_calls = []
    model.head.register_forward_hook(lambda *_: head_calls.append(1))
    with pytest.raises(Cancelled):
        with cancel_points([model], cancel):
            model(torch.ones(1, 8))
    assert head_calls == []  # the root's own pre-hook fired before anything ran


def test_unset_event_changes_nothing_forward_or_backward():
    x = torch.linspace(-1, 1, 16).reshape(2, 8)
    plain = Stack()
    plain(x).square().sum().backward()
    hooked, cancel = Stack(), threading.Event()
    with cancel_points(hooked, cancel) as points:
        out = hooked(x)
        out.square().sum().backward()
    assert points > 0 and all_pre_hooks(hooked) == 0
    assert torch.equal(out, plain(x))
    for p, q in zip(plain.parameters(), hooked.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)


def test_no_event_means_no_hooks():
    model = Stack()
    with cancel_points(model, None) as points:
        assert points == 0 and all_pre_hooks(model) == 0
        model(torch.ones(1, 8))


def test_an_error_in_the_body_propagates_unchanged_and_removes_the_hooks():
    model = Stack()
    with pytest.raises(ZeroDivisionError):
        with cancel_points(model, threading.Event()):
            raise ZeroDivisionError
    assert all_pre_hooks(model) == 0
