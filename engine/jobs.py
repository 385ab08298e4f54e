"""Running a render in the background and watching it through typed events.

`start_render` runs `Studio.render` on a worker thread and returns a handle whose
`events()` yields `Progress`, then exactly one of `Done`, `Failed` or `Stopped`. A UI
only turns those events into widget updates; `cancel()` stops the render at the next
denoising step and the partial file is removed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiprod_studio.errors import Cancelled, StudioError
from aiprod_studio.recipe import Recipe


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    elapsed_s: float

    @property
    def eta_s(self) -> float | None:
        return self.elapsed_s / self.step * (self.total - self.step) if self.step else None


@dataclass(frozen=True)
class Done:
    row: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    error: str
    exit_code: int


@dataclass(frozen=True)
class Stopped:
    reason: str


Event = Progress | Done | Failed | Stopped


class RenderHandle:
    def __init__(self, studio: Any, recipe: Recipe):
        self.recipe = recipe
        self._studio = studio
        self._events: queue.Queue[Event] = queue.Queue()
        self._cancel = threading.Event()
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="aiprod-render", daemon=True)

    def _run(self) -> None:
        def on_progress(step: int, total: int) -> None:
            self._events.put(Progress(step, total, time.perf_counter() - self._started))

        try:
            row = self._studio.render(self.recipe, progress=on_progress, cancel=self._cancel)
        except Cancelled as exc:
            self._events.put(Stopped(str(exc)))
        except StudioError as exc:
            self._events.put(Failed(str(exc), exc.exit_code))
        except Exception as exc:  # noqa: BLE001 - reported to the user, recorded in the job row
            self._events.put(Failed(f"{type(exc).__name__}: {exc}", 1))
        else:
            self._events.put(Done(row))

    def start(self) -> "RenderHandle":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def events(self, poll_s: float = 0.1) -> Iterator[Event]:
        """Yield events until the final one; never blocks longer than `poll_s` without checking."""
        while True:
            try:
                event = self._events.get(timeout=poll_s)
            except queue.Empty:
                continue
            yield event
            if not isinstance(event, Progress):
                return

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


def start_render(studio: Any, recipe: Recipe) -> RenderHandle:
    return RenderHandle(studio, recipe).start()
