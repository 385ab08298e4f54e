"""Quantized copies: saved once with quanto's serialization, loaded without re-quantizing."""

from __future__ import annotations

import json

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.vault.verify import verify
from engine.models import pipelines
from engine.models.quantized import QMAP_NAME, WEIGHTS_NAME, save_quantized
from engine.render import media


@pytest.mark.parametrize("to", ["int8", "fp8"])
def test_quantized_copy_renders_like_on_the_fly_quantization(own_studio, tmp_path, monkeypatch, to):
    studio = own_studio
    source = studio.vault.get("aiprod-tiny-ltx2")
    a = studio.render(  # quantized on the fly: the vault has no copy yet
        studio.build_recipe({"prompt": "a boat", "seed": 5, "quantization": to}), out_path=tmp_path / "fly.mp4"
    )
    entry = save_quantized(studio.vault, "aiprod-tiny-ltx2", to, f"tiny-{to}")
    # 1. a new entry with its own hashes, recording where it came from
    assert entry.quantization == to and entry.derived_from == f"aiprod-tiny-ltx2@{source.digest}"
    assert entry.digest != source.digest and verify(studio.vault, deep=True).ok
    folder = studio.vault.entry_dir(entry) / "transformer"
    qmap = json.loads((folder / QMAP_NAME).read_text())
    assert (
        qmap["quantization"] == to
        and qmap["map"]
        and all(v["weights"] == {"int8": "qint8", "fp8": "qfloat8_e4m3fn"}[to] for v in qmap["map"].values())
    )
    original = studio.vault.entry_dir(source) / "transformer" / WEIGHTS_NAME
    assert (folder / WEIGHTS_NAME).stat().st_size < 0.6 * original.stat().st_size
    # the other components are shared with the source, not duplicated
    assert (studio.vault.entry_dir(entry) / "vae/config.json").stat().st_ino == (
        studio.vault.entry_dir(source) / "vae/config.json"
    ).stat().st_ino
    # 2. rendering the copy equals quantizing the original on the fly, and quantizes nothing
    monkeypatch.setattr(pipelines, "quantize_transformer", lambda *a, **k: pytest.fail("re-quantized on load"))
    b = studio.render(
        studio.build_recipe({"prompt": "a boat", "seed": 5, "model": f"tiny-{to}"}), out_path=tmp_path / "saved.mp4"
    )
    assert media.compare(a["output_path"], b["output_path"])["identical"]
    assert b["model_digest"] == entry.digest
    # 3. asking the original for the same quantization now loads the stored copy: nothing quantized
    loaded = []
    real = pipelines.load_pipeline
    monkeypatch.setattr(
        pipelines, "load_pipeline", lambda vault, e, *rest: loaded.append(e.name) or real(vault, e, *rest)
    )
    studio.device.clear()
    c = studio.render(
        studio.build_recipe({"prompt": "a boat", "seed": 5, "quantization": to}), out_path=tmp_path / "again.mp4"
    )
    assert loaded == [f"tiny-{to}"] and media.compare(a["output_path"], c["output_path"])["identical"]
    assert c["model_digest"] == source.digest  # the recipe still names the model the user chose


def test_bad_requests_are_refused(own_studio):
    vault = own_studio.vault
    with pytest.raises(BadInput) as info:
        save_quantized(vault, "aiprod-tiny-ltx2", "int4", "x")
    assert info.value.field == "to"
    with pytest.raises(BadInput) as info:
        save_quantized(vault, "nope", "int8", "x")
    assert info.value.field == "name"
    with pytest.raises(BadInput) as info:
        save_quantized(vault, "aiprod-tiny-ltx2", "int8", "aiprod-tiny-ltx2")
    assert info.value.field == "new_name"
    save_quantized(vault, "aiprod-tiny-ltx2", "int8", "q8")
    with pytest.raises(BadInput, match="already a int8 copy"):
        save_quantized(vault, "q8", "fp8", "q8-again")
    with pytest.raises(BadInput) as info:  # refused before anything is queued
        own_studio.build_recipe({"prompt": "x", "model": "q8", "quantization": "fp8"})
    assert info.value.field == "quantization" and "stored quantized as int8" in str(info.value)
    assert own_studio.build_recipe({"prompt": "x", "model": "q8"}).quantization == "int8"  # recorded as it runs
    recipe = own_studio.build_recipe({"prompt": "x", "model": "q8"}).model_copy(update={"quantization": "fp8"})
    with pytest.raises(BadInput) as info:  # a hand-edited recipe is refused when it loads
        own_studio.render(recipe)
    assert info.value.field == "quantization" and "stored quantized as int8" in str(info.value)
    assert [e.name for e in vault.entries("pipeline")] == ["aiprod-tiny-ltx2", "q8"]
    assert not list((vault.root / "pipelines").glob(".*"))
