"""LoRA training on the tiny model (CPU): loss falls, export loads, resume is exact, datasets are checked."""

from __future__ import annotations

import shutil
import statistics
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from training_data import make_dataset

from aiprod_studio.errors import BadInput, Cancelled
from aiprod_studio.training import make_train_config
from engine.render import media
from engine.training import dataset as ds
from engine.training.jobs import run_training as run_job


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset") / "squares")


def config(dataset, name, **kw):
    return make_train_config(
        {
            "dataset": str(dataset),
            "name": name,
            "rank": 8,
            "steps": 60,
            "save_every": 10,
            "lr": 1e-3,
            "warmup_steps": 5,
            "trigger": "sqz",
            **kw,
        }
    )


def start(studio, cfg, **kw):
    job_id = studio.history.create_train_job(cfg, status="running")
    return job_id, run_job(studio, job_id, **kw)


def test_training_lowers_the_loss_and_exports_a_loadable_lora(own_studio, dataset, tmp_path):
    losses = []
    job_id, row = start(
        own_studio, config(dataset, "squares"), progress=lambda p: losses.append(p.loss) if p.phase == "train" else None
    )
    assert row["status"] == "done" and row["kind"] == "train" and len(losses) == 60
    assert statistics.mean(losses[-10:]) < statistics.mean(losses[:10])
    assert [m["step"] for m in own_studio.history.metrics(job_id)] == list(range(1, 61))
    result = row["result"]
    entry = own_studio.vault.get("squares", kind="lora")
    base = own_studio.vault.get("aiprod-tiny-ltx2")
    assert entry.derived_from == f"aiprod-tiny-ltx2@{base.digest}" and result["modules"] == 16
    with safe_open(result["file"], "pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["aiprod.base_digest"] == base.digest and meta["aiprod.rank"] == "8" and meta["aiprod.trigger"] == "sqz"
    assert all(k.startswith("transformer.transformer_blocks.") and (".attn1." in k or ".attn2." in k) for k in keys)
    comfy = load_file(result["comfyui_file"])
    assert all(k.startswith("diffusion_model.") for k in comfy) and len(comfy) == len(keys)
    run = Path(result["run_dir"])
    assert (run / "dataset.jsonl").read_text().count("\n") == 8
    cache = run.parent / ".precomputed"
    assert len(list(cache.glob("*.latents.safetensors"))) == 8  # one per clip
    assert len(list(cache.glob("*.text.safetensors"))) == 4  # one per distinct caption

    # the LoRA renders: strength 0 is the base, strength 1 is not
    def render(name, **v):
        recipe = own_studio.build_recipe({"prompt": "sqz, a red square", "seed": 2, **v})
        return own_studio.render(recipe, out_path=tmp_path / f"{name}.mp4")["output_path"]

    base_clip, zero, one = render("base"), render("zero", loras=["squares:0"]), render("one", loras=["squares:1"])
    assert media.compare(base_clip, zero)["identical"] and not media.compare(base_clip, one)["identical"]


def test_a_stopped_run_resumes_to_the_same_lora(own_studio, dataset):
    _, full = start(own_studio, config(dataset, "straight"))
    stop = threading.Event()

    def at_30(p):
        if p.phase == "train" and p.step == 30:
            stop.set()

    job_id = own_studio.history.create_train_job(config(dataset, "resumed"), status="running")
    with pytest.raises(Cancelled, match="step 30"):
        run_job(own_studio, job_id, progress=at_30, cancel=stop)
    assert own_studio.history.get(job_id)["status"] == "cancelled"
    assert Path(own_studio.history.get(job_id)["output_path"] or "none").name == "none"  # nothing exported yet
    resumed = run_job(own_studio, job_id)
    assert resumed["status"] == "done"
    a, b = load_file(full["result"]["file"]), load_file(resumed["result"]["file"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    la = [m["loss"] for m in own_studio.history.metrics(full["id"])]
    lb = [m["loss"] for m in own_studio.history.metrics(job_id)]
    assert np.allclose(la, lb, rtol=1e-6, atol=1e-7)


def test_dataset_problems_are_all_reported_at_once(dataset, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset, bad)
    (bad / "clip01.txt").unlink()  # missing caption
    (bad / "clip02.mp4").write_bytes(b"not a video at all")  # corrupt
    make_dataset(tmp_path / "short", n=1, frames=9)
    shutil.copy(tmp_path / "short/clip00.mp4", bad / "short.mp4")  # too short for 17 frames
    (bad / "short.txt").write_text("a short clip")
    (bad / "clip03.txt").write_text("   ")  # empty caption
    report = ds.validate(bad, bucket_frames=17)
    found = {(f.media, f.problem) for f in report.findings}
    assert found == {
        ("clip01.mp4", "missing caption"),
        ("clip02.mp4", "unreadable media"),
        ("short.mp4", "too short"),
        ("clip03.mp4", "empty caption"),
    }
    assert [i.path for i in report.items] == ["clip00.mp4", "clip04.mp4", "clip05.mp4", "clip06.mp4", "clip07.mp4"]
    assert [i.caption for i in report.items][0] == "a red square moves across a dark background"
    assert (bad / "clip00.txt").read_text() == "a red square moves across a dark background"  # never rewritten
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match="no usable items"):
        ds.propose_bucket(ds.validate(empty).items, None)


def test_bucket_proposal_and_jsonl_datasets(dataset, tmp_path):
    report = ds.validate(dataset)
    assert ds.propose_bucket(report.items, None) == (64, 64, 17)
    assert ds.propose_bucket(report.items, 24.0) == (64, 64, 17)  # never larger than the clips
    listed = tmp_path / "listed"
    shutil.copytree(dataset, listed)
    for p in listed.glob("*.txt"):
        p.unlink()
    (listed / "dataset.jsonl").write_text(
        '{"media": "clip00.mp4", "caption": "first"}\n{"media": "clip05.mp4", "caption": "second"}\n'
    )
    assert [(i.path, i.caption) for i in ds.validate(listed).items] == [
        ("clip00.mp4", "first"),
        ("clip05.mp4", "second"),
    ]


def test_bad_settings_name_the_field(own_studio, dataset):
    for data, field in [
        ({"rank": 0}, "rank"),
        ({"num_frames": 20}, "num_frames"),
        ({"name": "../x"}, "name"),
        ({"lr": -1}, "lr"),
    ]:
        with pytest.raises(BadInput) as info:
            make_train_config({"dataset": str(dataset), "name": "ok", **data})
        assert info.value.field == field
    with pytest.raises(BadInput, match="already an entry"):
        start(own_studio, config(dataset, "aiprod-tiny-ltx2"))


def test_cache_is_reused_only_while_its_key_matches(own_studio, dataset):
    start(own_studio, config(dataset, "first", steps=2, save_every=2))
    cache = own_studio.settings.data_dir / "training" / ".precomputed"
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    start(own_studio, config(dataset, "second", steps=2, save_every=2))
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before  # nothing re-encoded
    start(own_studio, config(dataset, "third", steps=2, save_every=2, trigger="other"))
    after = {p.name for p in cache.iterdir()}
    assert len(after) == 16 and set(before) < after  # a new trigger: only the 4 text embeddings are new
    assert all(n.endswith(".text.safetensors") for n in after - set(before))


def test_training_on_a_quantized_base(own_studio, dataset):
    _, row = start(own_studio, config(dataset, "q-lora", steps=4, save_every=4, quantization="int8"))
    assert row["status"] == "done" and row["result"]["modules"] == 16


def test_bad_checkpoints_are_refused():
    from aiprod_studio.errors import IntegrityError
    from engine.training.optim import check_lora

    good = {"a.lora_A.weight": torch.ones(2, 2), "a.lora_B.weight": torch.ones(2, 2)}
    check_lora(good, 10)
    with pytest.raises(IntegrityError, match="NaN/Inf"):
        check_lora(good | {"b.lora_A.weight": torch.tensor([float("nan")])}, 10)
    with pytest.raises(IntegrityError, match="still zero at step 10"):
        check_lora({"a.lora_A.weight": torch.ones(2, 2), "a.lora_B.weight": torch.zeros(2, 2)}, 10)
    check_lora({"a.lora_A.weight": torch.ones(2, 2), "a.lora_B.weight": torch.zeros(2, 2)}, 0)  # before step 1


def test_checkpoint_samples_beside_the_base(own_studio, dataset):
    from engine.training.checkpoints import checkpoint_steps
    from engine.training.samples import render_checkpoint_sample

    job_id, _ = start(own_studio, config(dataset, "sampled", steps=20, save_every=10))
    assert checkpoint_steps(own_studio.settings, job_id, "sampled") == [10, 20]
    base, at10 = render_checkpoint_sample(own_studio, job_id, 10, "sqz, a blue square", seed=4)
    _, at20 = render_checkpoint_sample(own_studio, job_id, 20, "sqz, a blue square", seed=4)
    assert not media.compare(base, at10)["identical"] and not media.compare(at10, at20)["identical"]
    # the final checkpoint is the exported LoRA: rendering it from the vault gives the same clip
    final = own_studio.render(
        own_studio.build_recipe({"prompt": "sqz, a blue square", "seed": 4, "loras": ["sampled"]})
    )["output_path"]
    assert media.compare(final, at20)["psnr"] > 40
    with pytest.raises(BadInput) as info:
        render_checkpoint_sample(own_studio, job_id, 15, "x")
    assert info.value.field == "step"


def test_gradient_checkpointing_gives_the_same_steps(own_studio, dataset):
    _, plain = start(own_studio, config(dataset, "plain", steps=3, save_every=3))
    _, saved = start(own_studio, config(dataset, "ckpt", steps=3, save_every=3, gradient_checkpointing=True))
    a, b = load_file(plain["result"]["file"]), load_file(saved["result"]["file"])
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_pause_inside_a_step_acts_at_once_and_resumes_exactly(own_studio, dataset):
    """Pause while the transformer is inside step 23: no block runs after it, the state of step 22
    is checkpointed, and the resumed run ends with the very LoRA of an uninterrupted one."""
    from diffusers.models.transformers.transformer_ltx2 import LTX2VideoTransformerBlock

    _, full = start(own_studio, config(dataset, "whole", steps=30))
    stop, armed, after = threading.Event(), threading.Event(), []

    def arm_at_22(p):
        if p.phase == "train" and p.step == 22:
            armed.set()

    def block_called(module, _args):
        if isinstance(module, LTX2VideoTransformerBlock) and armed.is_set():
            if stop.is_set():
                after.append(module)
            stop.set()  # the pause arrives while step 23 runs its first block

    job_id = own_studio.history.create_train_job(config(dataset, "paused", steps=30), status="running")
    handle = torch.nn.modules.module.register_module_forward_pre_hook(block_called)
    try:
        with pytest.raises(Cancelled, match="step 22"):
            run_job(own_studio, job_id, progress=arm_at_22, cancel=stop)
    finally:
        handle.remove()
    assert after == []  # not one more block of step 23 ran
    row = own_studio.history.get(job_id)
    assert row["status"] == "cancelled" and row["step"] == 22
    run = Path(full["result"]["run_dir"]).parent / f"{job_id:06d}-paused"
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "step-000022"
    resumed = run_job(own_studio, job_id)
    a, b = load_file(full["result"]["file"]), load_file(resumed["result"]["file"])
    assert resumed["status"] == "done" and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_after_the_first_step_has_learned(own_studio, dataset):
    """Warm-up starts above zero: with a checkpoint every step, step 1 already moved lora_B."""
    from engine.training.optim import lr_factor

    cfg = config(dataset, "everystep", steps=3, save_every=1, warmup_steps=50)
    assert 0 < lr_factor(cfg, 0) < lr_factor(cfg, 1) < lr_factor(cfg, 2) <= 1
    assert lr_factor(cfg, 0, schedule=1) == 0  # a run checkpointed with the old schedule resumes on it
    _, row = start(own_studio, cfg)
    assert row["status"] == "done"
    b = [v for k, v in load_file(row["result"]["file"]).items() if "lora_B" in k]
    assert b and any(float(v.abs().max()) > 0 for v in b)
