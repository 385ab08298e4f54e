"""Cancel points inside a model's forward pass, so a cancel acts within one block.

A diffusion step of a large video model can take minutes, and a VAE decode of a long clip
as long; checking a cancel flag only between steps leaves the device busy that long.
`cancel_points` registers a forward pre-hook on every block of the given modules (every
child of every `nn.ModuleList` inside them: transformer blocks, text-encoder layers, VAE
encoder/decoder blocks and their resnets, vocoder blocks — plus each given module itself)
that raises `Cancelled` as soon as the event is set. A tiled or chunked VAE decode calls its
decoder blocks once per tile, so a cancel there stops between tiles too.

The hooks are plain `torch.nn.Module` pre-hooks: they cost one `Event.is_set()` per block
call, never synchronise the device, and are all removed when the `with` block ends —
normally or by any exception — so a warm, cached pipeline keeps none of them.

    with cancel_points([pipe.transformer, pipe.vae], cancel):
        pipe(...)             # raises Cancelled at the first block after cancel.set()

    with cancel_points(transformer, cancel):   # a training loop: forward (and a
        loss = step(batch)                     # checkpointed recompute) checks too
        loss.backward()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from aiprod_studio.errors import Cancelled

DEFAULT_MESSAGE = "render cancelled"


def cancel_targets(modules: torch.nn.Module | Iterable[Any]) -> list[torch.nn.Module]:
    """The modules `cancel_points` hooks: each given module (non-modules are skipped), then
    every child of every `nn.ModuleList` inside it, each module once, in a stable order."""
    roots = [modules] if isinstance(modules, torch.nn.Module) else list(modules)
    seen: set[int] = set()
    targets: list[torch.nn.Module] = []

    def add(module: torch.nn.Module) -> None:
        if id(module) not in seen:
            seen.add(id(module))
            targets.append(module)

    for root in roots:
        if not isinstance(root, torch.nn.Module):
            continue
        add(root)
        for module in root.modules():
            if isinstance(module, torch.nn.ModuleList):
                for child in module:
                    add(child)
    return targets


@contextlib.contextmanager
def cancel_points(
    modules: torch.nn.Module | Iterable[Any],
    cancel: threading.Event | None,
    message: str = DEFAULT_MESSAGE,
) -> Iterator[int]:
    """Raise `Cancelled(message)` at the next block call once `cancel` is set.

    `modules`: one module or any iterable of objects (a pipeline's `components.values()` may
    be passed as is: tokenizers, schedulers and `None` are skipped). `cancel`: the event a
    cancel sets; `None` hooks nothing. Yields the number of cancel points registered. Every
    hook is removed on exit, also when the body raises (`Cancelled` included, which then
    propagates unchanged).
    """
    if cancel is None:
        yield 0
        return

    def check(_module: torch.nn.Module, _args: Any) -> None:
        if cancel.is_set():
            raise Cancelled(message)

    handles = []
    try:
        for module in cancel_targets(modules):
            handles.append(module.register_forward_pre_hook(check))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()
