"""Following a job: the one polling loop (`watch`) and the typed events built on it."""

from __future__ import annotations

import pytest

from engine.jobs.events import Done, Failed, Progress, Stopped, events, watch


def scripted(*rows):
    """A `read` that returns the given rows in turn, then repeats the last one."""
    it = iter(rows)
    last = {}

    def read():
        nonlocal last
        last = next(it, last)
        return dict(last)

    return read


def row(status, step=0, total=4, **kw):
    return {"id": 7, "status": status, "step": step, "total_steps": total, "position": None, **kw}


def test_watch_yields_each_change_once_and_ends_on_a_final_status():
    read = scripted(
        row("queued"),
        row("queued"),
        row("running", 1),
        row("running", 1),
        row("running", 2),
        row("done", 4, output_path="/x.mp4"),
    )
    seen = [(r["status"], r["step"]) for r in watch(read, poll_s=0)]
    assert seen == [("queued", 0), ("running", 1), ("running", 2), ("done", 4)]


def test_watch_with_its_own_key_sees_what_the_caller_cares_about():
    read = scripted(row("running", 1, metrics=[1]), row("running", 1, metrics=[1, 2]), row("failed", 1, metrics=[1, 2]))
    seen = [len(r["metrics"]) for r in watch(read, key=lambda r: (r["status"], len(r["metrics"])), poll_s=0)]
    assert seen == [1, 2, 2]


def test_watch_gives_up_after_its_timeout():
    with pytest.raises(TimeoutError, match="job 7 still running"):
        list(watch(scripted(row("running")), poll_s=0.01, timeout_s=0.05))


@pytest.mark.parametrize(
    "final, kind", [("done", Done), ("failed", Failed), ("cancelled", Stopped), ("interrupted", Stopped)]
)
def test_events_end_with_the_event_of_the_final_status(final, kind):
    out = list(events(scripted(row("queued", position=2), row("running", 2), row(final, 3, error="boom")), poll_s=0))
    assert [type(e) for e in out] == [Progress, Progress, kind]
    assert (out[0].status, out[0].position, out[1].step, out[1].total) == ("queued", 2, 2, 4)
    assert out[-1].row["status"] == final
    if kind is Failed:
        assert out[-1].error == "boom"
