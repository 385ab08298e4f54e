"""Training runs as jobs of the studio's queue: queue one, and run one to its end.

A `train` row shares the render queue (one job at a time on the device). `queue_training`
checks the request before a row exists; `run_training` is the queue's runner for the
`train` kind (and what `train lora` calls), inside the one job lifecycle.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprod_studio.errors import BadInput
from aiprod_studio.training import TrainConfig
from engine.device.plan import memory_gb
from engine.jobs.lifecycle import job_lifecycle
from engine.training import dataset as ds
from engine.training.loop import TrainProgress, train

if TYPE_CHECKING:
    from engine.jobs.queue import QueueWorker
    from engine.studio import Studio


def queue_training(worker: QueueWorker, config: TrainConfig) -> int:
    """Queue a LoRA training run; it runs between renders, one job at a time."""
    worker.studio.vault.check_new_name(config.name)
    if not str(config.dataset).strip():
        raise BadInput("dataset is required: the folder of clips (or images) and captions to train on", field="dataset")
    if not Path(config.dataset).is_dir():
        raise BadInput(f"dataset {config.dataset!r} is not a folder", field="dataset")
    # the same check the run starts with, before it waits in the queue: a folder with nothing usable
    # is refused now, naming every finding, not minutes later as a failed run
    size = (config.width, config.height, config.num_frames)
    ds.require_items(ds.check(config.dataset, memory_gb(worker.studio.plan), size))
    return worker.submit(lambda history: history.create_train_job(config))


def run_training(
    studio: Studio,
    job_id: int,
    progress: Callable[[TrainProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Run a `train` job whose row is already `running`; the row ends done / cancelled / failed."""
    history = studio.history
    config = TrainConfig.model_validate(history.get(job_id)["recipe"])
    cancel = cancel if cancel is not None else threading.Event()  # also set by a cancel from elsewhere
    with job_lifecycle(
        history, job_id, cancel, interrupted="interrupted by the user; resume to continue from the last checkpoint"
    ) as run:
        run.started()
        result = train(studio, job_id, config, progress, cancel)
        run.done(result["file"])
    return history.get(job_id) | {"result": result}
