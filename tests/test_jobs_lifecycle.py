"""One job lifecycle for every kind of job: started, done, cancelled, interrupted, failed."""

from __future__ import annotations

import threading

import pytest

from aiprod_studio.errors import BadInput, Cancelled
from engine.jobs.lifecycle import job_lifecycle


def running_job(history, studio) -> int:
    return history.create_job(studio.build_recipe({"prompt": "a job"}), status="running")


def test_a_finished_job_is_done_with_its_output_and_wall_time(studio):
    history = studio.history
    job = running_job(history, studio)
    with job_lifecycle(history, job, threading.Event()) as run:
        run.started(target="/tmp/clip.mp4")
        assert history.get(job)["target_path"] == "/tmp/clip.mp4"
        run.done("/tmp/clip.mp4")
    row = history.get(job)
    assert (row["status"], row["output_path"], row["error"]) == ("done", "/tmp/clip.mp4", None)
    assert row["wall_s"] >= 0 and row["target_path"] is None


@pytest.mark.parametrize(
    "exc, status, error",
    [
        (Cancelled("stopped at step 3"), "cancelled", "stopped at step 3"),
        (KeyboardInterrupt(), "cancelled", "interrupted by the user"),
        (
            BadInput("width must be a multiple of 32, got 33", field="width"),
            "failed",
            "width must be a multiple of 32, got 33",
        ),
    ],
)
def test_a_job_that_stops_says_why_and_the_error_goes_on(studio, exc, status, error):
    history = studio.history
    job = running_job(history, studio)
    with pytest.raises(type(exc)):
        with job_lifecycle(history, job, threading.Event()) as run:
            run.started()
            raise exc
    row = history.get(job)
    assert (row["status"], row["error"]) == (status, error)


def test_the_interrupted_message_is_the_callers(studio):
    history = studio.history
    job = running_job(history, studio)
    with pytest.raises(KeyboardInterrupt):
        with job_lifecycle(history, job, threading.Event(), interrupted="resume to continue"):
            raise KeyboardInterrupt
    assert history.get(job)["error"] == "resume to continue"


def test_a_block_that_ends_without_a_result_is_a_failure(studio):
    history = studio.history
    job = running_job(history, studio)
    with job_lifecycle(history, job, threading.Event()) as run:
        run.started()
    row = history.get(job)
    assert (row["status"], row["error"]) == ("failed", "the job ended without a result")


def test_a_cancel_asked_from_elsewhere_reaches_the_running_job(studio):
    history = studio.history
    job = running_job(history, studio)
    cancel = threading.Event()
    with job_lifecycle(history, job, cancel) as run:
        run.started()
        assert history.request_cancel(job)
        assert cancel.wait(10)  # the next heartbeat saw the request
        run.done("/tmp/x.mp4")
