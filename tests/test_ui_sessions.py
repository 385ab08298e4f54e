"""Several people on one studio (`--listen --auth`): each browser session's Cancel and Pause reach only its own work.

The studio is served for real; each `Page` is one logged-in browser tab driving the page's
(private) events over HTTP the way the page does: `/gradio_api/queue/join` with its own
session hash, the event's `fn_index` and its inputs' current values, answers read from
`/gradio_api/queue/data`.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import httpx
import pytest
from servers import serve_in_process
from training_data import make_dataset

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def served(tiny_vault, tmp_path_factory):
    data = tmp_path_factory.mktemp("sessions-data")
    models = data / "models"  # a copy: a verify records its results in the vault
    shutil.copytree(tiny_vault, models)
    with serve_in_process(models, data, auth=[("alice", PASSWORD), ("bob", PASSWORD)]) as s:
        yield s.studio, s.url


class Page:
    """One browser tab: a login, a Gradio session of its own, the page's widget values, events by name."""

    def __init__(self, url: str, user: str):
        self.http = httpx.Client(base_url=url, timeout=60)
        self.http.post("login", data={"username": user, "password": PASSWORD}).raise_for_status()
        config = self.http.get("config").json()
        self.values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
        self.labels = {c["id"]: c.get("props", {}).get("label") or "" for c in config["components"]}
        self.events = {d["api_name"]: d for d in config["dependencies"] if d.get("backend_fn")}
        self.session = uuid.uuid4().hex[:11]
        self._deps: dict[str, dict] = {}
        self._messages: dict[str, list[dict]] = defaultdict(list)
        self._stream: Any = None
        self._lines: Any = None

    def click(self, name: str, typed: dict[str, Any] | None = None) -> str:
        """Fire event `name` with the page's current values; `typed` sets inputs first, by label (prefix)."""
        dep = self.events[name]
        data = [self.values.get(i) for i in dep["inputs"]]
        for label, value in (typed or {}).items():
            data[next(k for k, i in enumerate(dep["inputs"]) if self.labels[i].startswith(label))] = value
        answer = self.http.post(
            "gradio_api/queue/join",
            json={
                "data": data,
                "fn_index": dep["id"],
                "trigger_id": dep["targets"][0][0],
                "session_hash": self.session,
                "event_data": None,
            },
        )
        answer.raise_for_status()
        event_id = answer.json()["event_id"]
        self._deps[event_id] = dep
        return event_id

    def wait(self, event_id: str, msg: str = "process_completed", timeout_s: float = 180) -> dict:
        """The event's first message of kind `msg`; full outputs also update the page's values."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            found = next((m for m in self._messages[event_id] if m["msg"] == msg), None)
            if found is not None:
                dep = self._deps[event_id]
                full = msg == "process_generating" or not dep["types"]["generator"]  # later chunks are diffs
                if full and found.get("success", True) and found.get("output", {}).get("data") is not None:
                    self.values.update(zip(dep["outputs"], found["output"]["data"], strict=False))
                return found
            self._read()
        raise AssertionError(f"no {msg} for {self._deps[event_id]['api_name']} in {timeout_s}s")

    def result(self, event_id: str) -> list[Any]:
        done = self.wait(event_id)
        assert done["success"], done["output"]
        return done["output"]["data"]

    def _read(self) -> None:
        if self._lines is None:
            request = self.http.build_request("GET", "gradio_api/queue/data", params={"session_hash": self.session})
            self._stream = self.http.send(request, stream=True)
            self._lines = self._stream.iter_lines()
        line = next(self._lines, None)
        message = json.loads(line[5:]) if line and line.startswith("data:") else {}
        if line is None or message.get("msg") == "close_stream":  # nothing pending: reopened on the next event
            self._stream.close()
            self._lines = None
        elif message.get("event_id"):
            self._messages[message["event_id"]].append(message)


def wait_until(check, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while not check():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def newest_job(studio) -> int:
    return next((row["id"] for row in studio.history.jobs(limit=1)), 0)


def test_storyboard_cancel_stops_only_the_render_of_its_own_session(served):
    studio, url = served
    alice, bob = Page(url, "alice"), Page(url, "bob")
    script = "Title: Fog\n" + "\n".join(f"Shot {i}: a lantern in the fog, take {i} (1s)" for i in range(1, 9))
    alice.result(alice.click("on_sb_split", {"Script": script}))
    before = newest_job(studio)
    render = alice.click("on_sb_render")
    first = alice.wait(render, "process_generating")  # the shots are in the queue
    assert first["output"]["data"][2].startswith("Rendering shots [1, 2, 3")
    own = list(range(before + 1, newest_job(studio) + 1))
    assert len(own) == 8

    assert bob.result(bob.click("on_sb_cancel"))[0] == "Nothing is rendering from this page."
    assert "cancelled" not in [studio.history.get(j)["status"] for j in own]

    said = alice.result(alice.click("on_sb_cancel"))[0]
    assert said.startswith("Cancelling jobs [")
    alice.wait(render)
    statuses = [studio.history.get(j)["status"] for j in own]
    assert "cancelled" in statuses and set(statuses) <= {"done", "cancelled"}
    assert all(str(j) in said for j, s in zip(own, statuses, strict=False) if s == "cancelled")


def test_training_pause_reaches_only_the_run_of_its_own_session(served, tmp_path):
    studio, url = served
    folder = make_dataset(tmp_path / "ds", n=4)
    alice, bob = Page(url, "alice"), Page(url, "bob")
    before = newest_job(studio)
    start = alice.click(
        "on_train_start",
        {
            "Dataset folder": str(folder),
            "LoRA name": "alice-lora",
            "Trigger": "sqz",
            "Rank": 4,
            "Learning rate": 1e-3,
            "Steps": 300,
            "Save every": 10,
            "Warmup": 2,
        },
    )
    first = alice.wait(start, "process_generating")
    run = newest_job(studio)
    assert run > before and studio.history.get(run)["kind"] == "train"
    wait_until(lambda: len(studio.history.metrics(run)) >= 2)

    for verb in ("on_train_paused", "on_train_cancelled"):
        assert bob.result(bob.click(verb))[0] == "No training run started from this page."
    steps = len(studio.history.metrics(run))
    wait_until(lambda: len(studio.history.metrics(run)) >= steps + 3)  # still training
    assert studio.history.get(run)["status"] == "running"

    said = alice.result(alice.click("on_train_paused"))[0]
    assert said.startswith(f"Run {run}: pausing at the end of this step")
    alice.wait(start)
    row = studio.history.get(run)
    assert row["status"] == "cancelled" and len(studio.history.metrics(run)) < 300
    assert first["output"]["data"][2] == str(run)  # alice's Run box: the run her page follows


def test_vault_cancel_stops_only_the_verify_of_its_own_session(served, monkeypatch):
    from aiprod_studio.vault import verify

    gate = threading.Event()  # holds each file's hashing until the test has pressed the buttons
    real = verify.hash_with_stat

    def held(path, **kwargs):
        gate.wait(60)
        return real(path, **kwargs)

    monkeypatch.setattr(verify, "hash_with_stat", held)
    alice, bob = Page(served[1], "alice"), Page(served[1], "bob")

    checking = alice.click("on_vault_verify", {"Check": "deep"})
    alice.wait(checking, "process_generating")
    assert bob.result(bob.click("on_vault_cancel"))[0] == "Nothing is running from this page."
    gate.set()
    assert alice.wait(checking)["success"]  # alice's verify ran to its end

    gate.clear()
    checking = alice.click("on_vault_verify", {"Check": "deep"})
    alice.wait(checking, "process_generating")
    assert alice.result(alice.click("on_vault_cancel"))[0] == "Cancelling…"
    gate.set()
    stopped = alice.wait(checking)  # a refusal, not a failure: a warning toast, the outputs kept
    toasts = [m for m in alice._messages[checking] if m["msg"] == "log" and m.get("level") == "warning"]
    assert stopped["success"] and any("verify cancelled" in m.get("log", "") for m in toasts), toasts
