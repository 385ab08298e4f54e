"""The one device owner: a lease per user, one warm pipeline, never two pipelines at once."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
from training_data import make_dataset

from aiprod_studio.training import make_train_config
from engine.device.lease import DeviceOwner
from engine.device.plan import resolve
from engine.models import pipelines
from engine.training.jobs import run_training


@pytest.fixture
def counted_loads(monkeypatch):
    """Every pipeline load, with how many loaded pipelines were still alive just before it."""
    alive: weakref.WeakSet = weakref.WeakSet()
    loads: list[dict] = []
    real = pipelines.load_pipeline

    def load(*args, **kwargs):
        gc.collect()
        loads.append({"alive_before": len(alive), "quantization": args[3] if len(args) > 3 else "none"})
        pipe = real(*args, **kwargs)
        alive.add(pipe)
        return pipe

    monkeypatch.setattr(pipelines, "load_pipeline", load)
    return loads


def test_render_then_train_then_render_never_holds_two_pipelines(own_studio, counted_loads, tmp_path):
    studio = own_studio
    first = studio.render(studio.build_recipe({"prompt": "before training", "steps": 2}))
    assert first["status"] == "done" and len(counted_loads) == 1

    cfg = make_train_config(
        {
            "dataset": str(make_dataset(tmp_path / "squares", n=4)),
            "name": "leased",
            "rank": 4,
            "steps": 3,
            "save_every": 3,
            "lr": 1e-3,
            "warmup_steps": 1,
        }
    )
    job = studio.history.create_train_job(cfg, status="running")
    trained = run_training(studio, job)
    assert trained["status"] == "done" and trained["result"]["modules"] > 0
    assert len(counted_loads) == 2  # training loaded its own pipeline; the export loaded none

    again = studio.render(studio.build_recipe({"prompt": "after training", "steps": 2}))
    assert again["status"] == "done"
    assert [load["alive_before"] for load in counted_loads] == [0, 0, 0]  # every load found the device empty


def test_the_warm_pipeline_is_reused_and_freed_before_another_is_loaded(own_studio, counted_loads):
    studio = own_studio
    for seed in (1, 2):
        studio.render(studio.build_recipe({"prompt": "same model", "steps": 2, "seed": seed}))
    assert len(counted_loads) == 1  # the second render took the warm pipeline
    studio.render(studio.build_recipe({"prompt": "int8 now", "steps": 2, "quantization": "int8"}))
    assert [(load["alive_before"], load["quantization"]) for load in counted_loads] == [(0, "none"), (0, "int8")]
    assert studio.device.warm_key[4] == "int8"


def test_a_lease_waits_for_the_one_before_it():
    owner = DeviceOwner(resolve("cpu"))
    order: list[str] = []
    inside = threading.Event()

    def first():
        with owner.lease("render"):
            order.append("render starts")
            inside.set()
            time.sleep(0.2)
            order.append("render ends")

    t = threading.Thread(target=first)
    t.start()
    inside.wait(5)
    with owner.lease("train"):
        assert owner.holder == "train"
        order.append("train starts")
    t.join()
    assert order == ["render starts", "render ends", "train starts"]
    assert owner.holder is None


def test_own_frees_the_warm_model_and_keeps_none_after_the_lease():
    owner = DeviceOwner(resolve("cpu"))
    made: list[str] = []

    class Model:
        def __init__(self, name):
            made.append(name)

    with owner.lease("render") as lease:
        warm = lease.warm("a", lambda: Model("a"))
        assert lease.warm("a", lambda: Model("again")) is warm
    ref = weakref.ref(warm)
    del warm
    with owner.lease("train") as lease:
        mine = lease.own(lambda: Model("b"))
        gc.collect()
        assert ref() is None and owner.warm_key is None  # the warm one was freed before `b` loaded
        del mine
    with owner.lease("render") as lease:
        lease.warm("a", lambda: Model("a"))
    assert made == ["a", "b", "a"]


def test_closing_does_not_wait_for_a_lease_that_is_still_held():
    owner = DeviceOwner(resolve("cpu"))
    holding, release = threading.Event(), threading.Event()

    def job():
        with owner.lease("train") as lease:
            lease.warm("a", object)
            holding.set()
            release.wait(30)

    t = threading.Thread(target=job)
    t.start()
    holding.wait(5)
    started = time.perf_counter()
    owner.clear(wait_s=0.2)
    assert time.perf_counter() - started < 5 and owner.warm_key == "a"  # gave up: the job still holds it
    release.set()
    t.join()
    owner.clear()
    assert owner.warm_key is None
