"""Presets: the shipped files load, bad files are refused naming the file and the field."""

from __future__ import annotations

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.presets import load_preset, load_presets


def test_shipped_presets_cover_the_basics():
    presets = {p.id: p for p in load_presets()}
    for required in ("draft", "480p", "720p-landscape", "portrait-9x16"):
        assert presets[required].kind == "render"
    assert presets["portrait-9x16"].settings["height"] > presets["portrait-9x16"].settings["width"]
    hardware = [p for p in presets.values() if p.kind == "hardware"]
    assert {p.settings["offload"] for p in hardware} == {"none", "model", "group", "sequential"}
    assert {p.id for p in hardware if p.device == "cuda"} == {f"gpu-{n}gb" for n in (8, 12, 24, 48, 80)}
    assert {p.id for p in hardware if p.device == "cpu"} == {"cpu", "cpu-lean"}


def test_hardware_profiles_sort_fastest_first_and_auto_cannot_be_a_file(tmp_path):
    from aiprod_studio.errors import BadInput
    from aiprod_studio.presets import hardware_profiles

    assert [p.id for p in hardware_profiles("cuda")] == ["gpu-80gb", "gpu-48gb", "gpu-24gb", "gpu-12gb", "gpu-8gb"]
    (tmp_path / "auto.toml").write_text('name = "x"\nkind = "hardware"\n[settings]\noffload = "none"\n')
    with pytest.raises(BadInput, match="'auto' is the automatic choice"):
        load_preset(tmp_path / "auto.toml")
    (tmp_path / "mine.toml").write_text(
        'name = "x"\nkind = "hardware"\n[settings]\nquantization = "int8"\noffload = "sequential"\n'
    )
    with pytest.raises(BadInput, match="mine.toml: offload 'sequential' cannot move int8 weights"):
        load_preset(tmp_path / "mine.toml")


@pytest.mark.parametrize(
    ("text", "suffix", "fragment"),
    [
        ('{"name": "x", "kind": "render", "settings": {"width": 50}}', ".json", "width must be a multiple of 32"),
        ('{"name": "x", "kind": "render", "settings": {"quantization": "fp8"}}', ".json", "unknown render setting"),
        ('name = "x"\nkind = "hardware"\n[settings]\noffload = "disk"\n', ".toml", "offload"),
        ('{"name": "x", "kind": "look"}', ".json", "kind"),
        ("{nope", ".json", "preset bad.json"),
    ],
)
def test_bad_presets_name_the_file_and_field(tmp_path, text, suffix, fragment):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(BadInput, match=fragment) as info:
        load_preset(path)
    assert path.name in str(info.value)
