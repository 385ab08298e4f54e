"""The one owner of the compute device: every GPU user takes a lease, one model stays warm.

A render, a training run, a LoRA export, a quantization (and QA later) all run inside

    with studio.device_lease("render") as lease:
        pipe = lease.warm(key, load)      # kept warm for the next lease that asks the same key
        model = lease.own(load)           # for this lease only: the warm model is freed first

so the device does one thing at a time, and a model is never loaded while another one
still holds the memory: asking for a different key frees the warm model before loading,
and `own`/`free` free it for work that needs the whole device. The lease knows nothing
of pipelines; `engine/models/pipelines.py` gives it keys and loaders.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Hashable, Iterator
from typing import TypeVar

from engine.device.plan import DevicePlan, free_memory

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeviceOwner:
    def __init__(self, plan: DevicePlan):
        self.plan = plan
        self._lock = threading.RLock()  # re-entrant: a job may render a sample inside its own lease
        self._warm: object | None = None
        self._warm_key: Hashable | None = None
        self.holder: str | None = None  # what holds the device now, for logs and the UI

    @contextlib.contextmanager
    def lease(self, purpose: str) -> Iterator[DeviceLease]:
        """Wait for the device, then hold it until the block ends."""
        with self._lock:
            before, self.holder = self.holder, purpose
            lease = DeviceLease(self, purpose)
            try:
                yield lease
            finally:
                self.holder = before
                if lease.owned:  # a model loaded for this lease alone: its memory goes back now
                    lease.owned = False
                    free_memory(self.plan.device)

    @property
    def warm_key(self) -> Hashable | None:
        return self._warm_key

    def clear(self, wait_s: float = 5.0) -> None:
        """Free the warm model (the studio is closing). A lease still held after `wait_s` keeps
        the device: closing does not wait for a job that will not stop."""
        if not self._lock.acquire(timeout=wait_s):
            log.warning("the device is still held by %s; not waiting for it to close", self.holder)
            return
        try:
            self._drop()
        finally:
            self._lock.release()

    def _drop(self) -> None:
        if self._warm is not None:
            log.debug("freeing the warm model %s", self._warm_key)
            self._warm = self._warm_key = None
            free_memory(self.plan.device)


class DeviceLease:
    """The device, held by one user until its `with` block ends."""

    def __init__(self, owner: DeviceOwner, purpose: str):
        self._owner, self.purpose = owner, purpose
        self.owned = False

    @property
    def plan(self) -> DevicePlan:
        return self._owner.plan

    def warm(self, key: Hashable, load: Callable[[], T], still_ok: Callable[[], None] | None = None) -> T:
        """The warm model if its key is `key` (after `still_ok()` passes), else the warm one is
        freed and `load()` becomes the warm model."""
        owner = self._owner
        if owner._warm is not None and owner._warm_key == key:
            if still_ok is not None:
                still_ok()
            return owner._warm  # type: ignore[return-value]
        owner._drop()
        model = load()
        owner._warm, owner._warm_key = model, key
        return model

    def own(self, load: Callable[[], T]) -> T:
        """A model for this lease alone (the caller may change it): the warm model is freed
        first, and the memory is given back when the lease ends."""
        self.free()
        self.owned = True
        return load()

    def free(self) -> None:
        """Free the warm model: the work that follows needs the whole device."""
        self._owner._drop()
