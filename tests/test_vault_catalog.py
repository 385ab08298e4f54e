"""models/catalog.json: the known models, their generations, variants, gating, and memory needs.

The memory needs (`min_memory_gb`) are checked against what the studio's memory model computes
now (`benchmarks/catalog_memory.py`), so a change to the estimator or to the published facts
fails here until the catalogue is rewritten (`benchmarks/catalog_memory.py --write`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from aiprod_studio.errors import StudioError
from aiprod_studio.generations import VERSIONS
from aiprod_studio.presets import hardware_profiles
from aiprod_studio.vault.provision import load_catalog
from aiprod_studio.vault.store import Vault

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "models" / "catalog.json"


def catalog_memory():
    spec = importlib.util.spec_from_file_location("catalog_memory", ROOT / "benchmarks" / "catalog_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def items():
    return {i.name: i for i in load_catalog(Vault(Path("/nonexistent-vault")))}


def test_the_catalogue_names_every_generation_and_its_repo(items):
    assert list(items) == [
        "ltx-2",
        "ltx-2-upsampler",
        "ltx-2.3",
        "ltx-2.3-distilled",
        "ltx-2.5",
        "ltx-video",
        "clip-vit-b32",
    ]
    upsampler = items["ltx-2-upsampler"]  # Upscale 2×'s latent upsampler, from the LTX-2 repository's own folder
    assert (upsampler.repo, upsampler.kind, upsampler.family, upsampler.allow) == (
        "Lightricks/LTX-2",
        "upsampler",
        "ltx2",
        ["latent_upsampler/*"],
    )
    repos = {n: (i.repo, i.generation, i.variant, i.gated) for n, i in items.items()}
    assert repos["ltx-2"] == ("Lightricks/LTX-2", "2.0", None, False)
    assert repos["ltx-2.3"] == ("diffusers/LTX-2.3-Diffusers", "2.3", None, False)
    assert repos["ltx-2.3-distilled"] == ("diffusers/LTX-2.3-Distilled-Diffusers", "2.3", "distilled", False)
    assert repos["ltx-2.5"] == ("Lightricks/LTX-2.5-Diffusers", "2.5", None, True)
    assert repos["ltx-video"][1:] == (None, None, False)
    ltx2x = [i for i in items.values() if i.generation]
    assert {i.generation for i in ltx2x} == set(VERSIONS)
    assert {i.license for i in ltx2x} == {"LTX-2 Community License"}
    assert all(i.family == "ltx2" and i.kind == "pipeline" and i.approx_size_gb for i in ltx2x)
    # 22 B in bf16 (44 GB) and a 12 B text encoder: 70–85 GB each
    assert all(70 <= i.approx_size_gb <= 85 for i in ltx2x if i.generation != "2.0")


def test_each_generation_lists_what_every_hardware_profile_needs(items):
    profiles = [p.id for p in hardware_profiles("cuda")] + [p.id for p in hardware_profiles("cpu")]
    for item in items.values():
        if not item.generation:
            assert item.min_memory_gb == {}  # no published facts for it in the memory model
            continue
        assert list(item.min_memory_gb) == profiles, item.name
        for profile, need in item.min_memory_gb.items():
            assert (need.gpu is None) == profile.startswith("cpu") and need.ram > 0
    ltx23 = items["ltx-2.3"].min_memory_gb
    # everything on the GPU needs the whole pipeline there; streaming blocks needs a few GiB of it
    assert 65 < ltx23["gpu-80gb"].gpu < 80 and ltx23["gpu-24gb"].gpu < 12 and ltx23["gpu-8gb"].gpu < 8
    # a distilled model runs one transformer pass a step (no guidance): never more memory than its base
    distilled = items["ltx-2.3-distilled"].min_memory_gb
    assert all(distilled[p].gpu <= ltx23[p].gpu for p in profiles if ltx23[p].gpu)
    assert distilled["gpu-48gb"].gpu < ltx23["gpu-48gb"].gpu


def test_the_catalogue_numbers_are_what_the_memory_model_computes_now():
    module = catalog_memory()
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    computed = module.catalog_needs(catalog)
    written = {m["name"]: m["min_memory_gb"] for m in catalog["models"] if "min_memory_gb" in m}
    assert computed == written, "run `.venv/bin/python benchmarks/catalog_memory.py --write`"
    # --write would leave the file as it is, byte for byte
    for m in catalog["models"]:
        if m["name"] in computed:
            m["min_memory_gb"] = computed[m["name"]]
    assert module.dump(catalog) + "\n" == CATALOG.read_text(encoding="utf-8")


def test_the_script_prints_the_needs(capsys):
    assert catalog_memory().main(["--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ltx-2.5"]["gpu-80gb"]["gpu"] > printed["ltx-2.5"]["gpu-48gb"]["gpu"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"colour": "blue"}, "colour"),
        ({"variant": "turbo"}, "variant must be one of distilled"),
        ({"generation": "3.0"}, "generation"),
        ({"gated": "maybe"}, "gated"),
        ({"min_memory_gb": {"gpu-24gb": {"gpu": 5, "ram": 60, "vram": 1}}}, "vram"),
        ({"min_memory_gb": {"gpu-24gb": {"gpu": 5}}}, "ram"),
    ],
    ids=["unknown field", "variant", "generation", "gated", "unknown need", "ram missing"],
)
def test_a_catalogue_with_a_bad_field_is_refused(tmp_path, change, says):
    entry = {"name": "m", "repo": "owner/m", **change}
    (tmp_path / "catalog.json").write_text(json.dumps({"models": [entry]}))
    with pytest.raises(StudioError) as info:
        load_catalog(Vault(tmp_path))
    assert "unreadable catalogue" in str(info.value) and says in str(info.value)


def test_the_readme_table_shows_the_catalogue_numbers(items):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    profiles = ["gpu-80gb", "gpu-48gb", "gpu-24gb", "gpu-12gb", "gpu-8gb", "cpu"]
    for item in items.values():
        if not item.generation:
            continue
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{item.name}`"))
        need = item.min_memory_gb
        cells = [f"{need[p].gpu} / {need[p].ram}" if need[p].gpu else f"{need[p].ram}" for p in profiles]
        assert row.split(" | ")[-len(profiles) :] == [*cells[:-1], cells[-1] + " |"], item.name
