"""The noise schedule a render runs with, set on the pipeline for one call and given back after."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.render.upscale import refine_scheduler

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline


def scheduler_for_steps(scheduler: Any, steps: int) -> Any:
    """The scheduler a render of `steps` steps runs with: `scheduler` itself, except for one step.

    A flow-matching schedule stretched to a terminal sigma (`shift_terminal`, as LTX-2's)
    maps its last sigma onto that terminal value. With a single step the first sigma is
    also the last: the stretch divides 0 by 0 (sigma NaN, NaN frames) or, for any sigma
    list one could pass instead, starts denoising at the terminal sigma (0.1) from pure
    noise. One step must go from sigma 1 to 0, which is the same schedule without the
    stretch; so for one step the scheduler is a copy of `scheduler` with no terminal.
    """
    config = getattr(scheduler, "config", None)
    if steps == 1 and config is not None and config.get("shift_terminal"):
        return type(scheduler).from_config(config, shift_terminal=None)
    return scheduler


@contextlib.contextmanager
def schedule(pipe: Pipeline, steps: int, stage_two: bool = False) -> Iterator[None]:
    """Run the pipeline with `scheduler_for_steps` (or, `stage_two`, the upscale's refine scheduler);
    the warm pipeline gets its own back after."""
    original = getattr(pipe, "scheduler", None)
    replacement = scheduler_for_steps(original, steps) if original is not None else None
    if stage_two and original is not None:
        replacement = refine_scheduler(original)
    if replacement is original:
        yield
        return
    pipe.scheduler = replacement
    try:
        yield
    finally:
        pipe.scheduler = original
