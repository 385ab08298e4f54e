"""Long vault work in a thread (hashing gigabytes, copying): its progress as text, and its Cancel button.

The handler only turns the thread's progress events into text, and Cancel sets the event the
core checks between chunks. Each browser session keeps the task it started in a `gr.State`,
so its Cancel stops only that.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import gradio as gr

from aiprod_studio.errors import StudioError
from aiprod_studio.vault.cli import human_bytes
from ui.errors import refused


def progress_text(label: str, p: Any) -> str:
    eta = f", about {p.eta_s:,.0f}s left" if p.eta_s is not None else ""
    return (
        f"{label}: {p.fraction:.0%} — {human_bytes(p.done_bytes)} of {human_bytes(p.total_bytes)}, "
        f"{p.files_done}/{p.files_total} files, {human_bytes(p.bytes_per_s)}/s{eta}"
    )


class Tracked:
    """Runs `fn(progress, cancel)` in a thread; `updates()` yields its progress events."""

    def __init__(self, fn: Callable[[Callable[[Any], None], threading.Event], Any]):
        self._events: queue.Queue = queue.Queue()
        self._result: dict[str, Any] = {}
        self.cancel = cancel = threading.Event()

        def target() -> None:
            try:
                self._result["value"] = fn(self._events.put, cancel)
            except BaseException as exc:  # noqa: BLE001 - handed to the handler thread below
                self._result["error"] = exc
            finally:
                self._events.put(None)

        threading.Thread(target=target, daemon=True, name="vault-task").start()

    @property
    def running(self) -> bool:
        return not self._result and not self.cancel.is_set()

    def updates(self) -> Iterator[Any]:
        while (item := self._events.get()) is not None:
            while not self._events.empty():  # skip to the newest event
                nxt = self._events.get()
                if nxt is None:
                    yield item
                    return
                item = nxt
            yield item

    def result(self) -> Any:
        if "error" in self._result:
            exc = self._result["error"]
            raise refused(exc) if isinstance(exc, StudioError) else exc
        return self._result.get("value")


def track(label: str, fn: Callable[[Callable[[Any], None], threading.Event], Any]) -> Iterator[Any]:
    """Yields (progress text, the task) — at once, so Cancel can reach it — and returns its result."""
    job = Tracked(fn)
    yield f"{label}: starting…", job
    for p in job.updates():
        yield progress_text(label, p), job
    try:
        return job.result()
    except gr.Error as exc:  # the status says so too, not the last progress line
        yield f"{label} failed: {exc.message}", None
        raise


def on_vault_cancel(job: Tracked | None) -> str:
    if job is None or not job.running:
        return "Nothing is running from this page."
    job.cancel.set()
    return "Cancelling…"
