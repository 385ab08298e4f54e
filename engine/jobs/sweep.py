"""While the studio runs: a job whose worker process died becomes `interrupted` within seconds.

Every reader of the queue already turns such a row `interrupted` when it looks; the sweep
makes it happen with nobody looking, so a worker killed mid-job (`kill -9`, out of memory)
shows in the queue panel as interrupted — resumable — a moment later, and the partial file
it was writing is removed. `History.recover_interrupted` touches only rows whose owner is
gone, each by a conditional update, so any number of processes may sweep at once.
"""

from __future__ import annotations

import logging
import threading

from aiprod_studio.files import partials
from aiprod_studio.jobs.history import History

log = logging.getLogger(__name__)

SWEEP_S = 2.0  # how often the rows are checked (the heartbeat's own period)


def sweep_once(history: History) -> list[int]:
    """Mark the jobs of dead workers interrupted now and remove their partial files; returns their ids."""
    found = history.recover_interrupted()
    for job_id in found:
        row = history.get(job_id)
        log.warning("job %s: %s; marked interrupted (Resume it in the queue)", job_id, row["error"])
        if row.get("target_path"):
            partials.sweep([partials.temp_path_for(row["target_path"])])
    return found


class Sweeper:
    """`sweep_once` every `every` seconds in a daemon thread, from `start()` until `stop()`."""

    def __init__(self, history: History, every: float = SWEEP_S):
        self.history, self.every = history, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aiprod-sweep", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                sweep_once(self.history)
            except Exception:  # noqa: BLE001 - a busy database or a closing studio: the next sweep retries
                log.debug("sweep failed", exc_info=True)
            if self._stop.wait(self.every):
                return
