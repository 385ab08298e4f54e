"""ui/context.py: a handler bound to the app's services is seen by Gradio exactly as it was written."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest
from gradio import helpers

from ui.context import Services, bind


def on_plain(services: Services, name: str, count: int = 2) -> str:
    """A plain handler."""
    return f"{services.studio}:{name * count}"


def on_stream(services: Services, verb: str, job_id: int, request: gr.Request):
    yield f"{services.worker} {verb} {job_id} for {request.session_hash}"
    yield "done"


def on_select(services: Services, ids: list[int], evt: gr.SelectData) -> int:
    return ids[evt.index]


SERVICES = Services(studio="studio", worker="worker")  # type: ignore[arg-type]


def test_a_bound_handler_keeps_its_name_parameters_and_result():
    handler = bind(on_plain, SERVICES)
    assert handler.__name__ == "on_plain" and handler.__doc__ == "A plain handler."
    assert list(inspect.signature(handler).parameters) == ["name", "count"]
    assert handler("ab") == "studio:abab" and handler("x", count=3) == "studio:xxx"


def test_gradio_still_finds_the_request_and_the_event_data():
    stream = bind(on_stream, SERVICES, "paused", name="on_stream_paused")
    assert stream.__name__ == "on_stream_paused" and inspect.isgeneratorfunction(stream)
    inputs, _, _, _ = helpers.special_args(stream, [7], request="the request")
    assert inputs == [7, "the request"]  # injected after the job id, as for the unbound function
    select = bind(on_select, SERVICES)
    inputs, _, event_index, _ = helpers.special_args(
        select, [[4, 5]], event_data=gr.SelectData(None, {"index": 1, "value": 5})
    )
    assert event_index == 1 and select(*inputs) == 5


def test_a_bound_generator_streams_and_closes_like_the_original():
    class Request:
        session_hash = "s1"

    stream = bind(on_stream, SERVICES, "cancelled")
    assert list(stream(3, Request())) == ["worker cancelled 3 for s1", "done"]
    started = stream(4, request=Request())
    assert next(started).startswith("worker cancelled 4")
    started.close()


def test_binding_more_arguments_than_the_handler_takes_is_refused():
    with pytest.raises(TypeError, match="on_select does not take 4 leading"):
        bind(on_select, SERVICES, [1], None, "x")
