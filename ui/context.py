"""What the tabs' handlers work on, and how they get it.

One app serves many browser sessions: the studio and the queue worker are shared by all of
them (`Services`), while what belongs to one session stays in a `gr.State` or is keyed by the
request's session hash. Handlers are module-level functions taking the services first;
`bind` hands them to Gradio as if that argument were not there.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from engine.jobs.queue import QueueWorker
from engine.studio import Studio
from ui.errors import untouched


@dataclass(frozen=True)
class Services:
    """The app's shared studio and queue worker (both safe to use from several threads)."""

    studio: Studio
    worker: QueueWorker


def bind(fn: Callable[..., Any], *leading: Any, name: str | None = None) -> Callable[..., Any]:
    """`fn` with its first arguments fixed to `leading`, as Gradio must see it.

    Not `functools.partial`: Gradio finds `gr.Request`, `gr.SelectData` and `gr.Progress`
    parameters through the handler's type hints, which a partial hides. The handler keeps
    `fn`'s name (its event's private api_name; `name` overrides it), its remaining
    parameters, their type hints, and whether it is a generator.

    A refusal (`gr.Error`) the handler raises becomes a warning toast and a skip of every
    output: raising it from an event would mark every output as failed and hide the work
    (a handler that has a status line puts the message there itself, with `errors.kept`).
    """
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    if len(params) < len(leading) or any(
        p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params[: len(leading)]
    ):
        raise TypeError(f"{fn.__name__} does not take {len(leading)} leading positional parameters")
    fixed = {p.name for p in params[: len(leading)]}
    hints = {k: v for k, v in typing.get_type_hints(fn).items() if k not in fixed}

    if inspect.isgeneratorfunction(fn):

        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from fn(*leading, *args, **kwargs))
            except gr.Error as error:
                yield untouched(error)
    else:

        def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*leading, *args, **kwargs)
            except gr.Error as error:
                return untouched(error)

    handler.__name__ = handler.__qualname__ = name or fn.__name__
    handler.__module__, handler.__doc__ = fn.__module__, fn.__doc__
    handler.__signature__ = signature.replace(parameters=params[len(leading) :])  # type: ignore[attr-defined]
    handler.__annotations__ = hints
    return handler
