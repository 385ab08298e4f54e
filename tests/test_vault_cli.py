"""The `vault` and `report` commands end to end, in a subprocess, on a copy of the tiny vault."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

W = "pipelines/aiprod-tiny-ltx2/transformer/diffusion_pytorch_model.safetensors"


@pytest.fixture
def models(tiny_vault, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(tiny_vault, root)
    return root


def test_commands_have_help(cli):
    for cmd in (
        ["vault", "verify"],
        ["vault", "import"],
        ["vault", "export"],
        ["vault", "provision"],
        ["vault", "quantize"],
        ["report"],
    ):
        r = cli(*cmd, "--help")
        assert r.returncode == 0 and "usage: aiprod-studio" in r.stdout, cmd


def test_flipped_byte_fails_verify_with_exit_3_and_render_refuses(cli, models, tmp_path):
    ok = cli("vault", "verify", "--deep", "--json", models_dir=models)
    assert ok.returncode == 0 and ok.json["ok"] and ok.json["entries"][0]["status"] == "ok"
    with open(models / W, "r+b") as f:
        f.seek(-1, 2)
        byte = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    bad = cli("vault", "verify", "--deep", models_dir=models)
    assert bad.returncode == 3 and "FAILED" in bad.stdout and f"hash mismatch {W}" in bad.stdout
    as_json = cli("vault", "verify", "--json", models_dir=models)
    assert as_json.returncode == 3 and as_json.json["ok"] is False
    damaged = next(e for e in as_json.json["entries"] if e["name"] == "aiprod-tiny-ltx2")
    assert damaged["problems"][0] | {"detail": ""} == {"kind": "hash", "file": W, "detail": ""}
    render = cli("render", "--prompt", "a boat", "--out", str(tmp_path / "x.mp4"), models_dir=models)
    assert render.returncode == 3 and W in render.stderr and "failed its check" in render.stderr
    assert not (tmp_path / "x.mp4").exists()
    listed = cli("vault", "list", "--json", models_dir=models).json
    assert next(e for e in listed["entries"] if e["name"] == "aiprod-tiny-ltx2")["last_check"]["status"] == "failed"


def test_each_damage_is_named(cli, models):
    folder = models / "pipelines/aiprod-tiny-ltx2"
    with open(folder / "vae/diffusion_pytorch_model.safetensors", "r+b") as f:
        f.truncate(64)
    (folder / "vocoder/config.json").unlink()
    (folder / "notes.txt").write_text("not in the manifest")
    os.symlink("/etc", folder / "etc")
    r = cli("vault", "verify", "--json", models_dir=models)
    assert r.returncode == 3
    damaged = next(e for e in r.json["entries"] if e["name"] == "aiprod-tiny-ltx2")
    found = {(p["kind"], p["file"]) for p in damaged["problems"]}
    assert found == {
        ("size", "pipelines/aiprod-tiny-ltx2/vae/diffusion_pytorch_model.safetensors"),
        ("missing", "pipelines/aiprod-tiny-ltx2/vocoder/config.json"),
        ("extra", "pipelines/aiprod-tiny-ltx2/notes.txt"),
        ("symlink", "pipelines/aiprod-tiny-ltx2/etc"),
    }


def test_export_import_round_trip_and_pickle_refusal(cli, models, tmp_path):
    exported = cli("vault", "export", "aiprod-tiny-ltx2", "--to", str(tmp_path / "usb"), "--json", models_dir=models)
    assert exported.returncode == 0, exported.stderr
    other = tmp_path / "other"
    imported = cli("vault", "import", exported.json["bundle"], "--json", models_dir=other)
    assert imported.returncode == 0, imported.stderr
    assert imported.json["digest"] == exported.json["digest"] and imported.json["test_model"] is True
    assert cli("vault", "verify", "--deep", models_dir=other).returncode == 0
    # a LoRA file that is really a pickle with a payload: refused, payload never runs
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(Boom()))
    r = cli("vault", "import", str(evil), "--name", "evil", "--kind", "lora", "--json", models_dir=other)
    assert r.returncode == 3 and "not a safetensors file" in r.json["error"] and not marker.exists()
    assert [e["name"] for e in cli("vault", "list", "--json", models_dir=other).json["entries"]] == ["aiprod-tiny-ltx2"]


def test_bad_input_names_the_field(cli, models, tmp_path):
    cases = [
        (["vault", "verify", "nope"], "name"),
        (["vault", "import", str(tmp_path / "none"), "--name", "x"], "path"),
        (["vault", "import", str(models / "pipelines/aiprod-tiny-ltx2"), "--name", "../x"], "name"),
        (["vault", "export", "nope", "--to", str(tmp_path)], "name"),
        (["vault", "provision", "no-such-model"], "repo"),
        (["vault", "provision", "Lightricks/LTX-2", "--name", "x"], "revision"),
        (["vault", "quantize", "aiprod-tiny-ltx2", "--to", "int8", "--name", "aiprod-tiny-ltx2"], "new_name"),
        (["vault", "verify", "--threads", "0"], "threads"),
        (["report", "--no-self-test", "--out", str(tmp_path / "r.txt")], "out"),
    ]
    for args, field in cases:
        r = cli(*args, "--json", models_dir=models)
        assert r.returncode == 2 and r.json["field"] == field, (args, r.stdout, r.stderr)


def test_quantize_command_makes_a_loadable_entry(cli, models, tmp_path):
    r = cli("vault", "quantize", "aiprod-tiny-ltx2", "--to", "fp8", "--name", "tiny-fp8", "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    assert r.json["quantization"] == "fp8" and r.json["derived_from"].startswith("aiprod-tiny-ltx2@")
    out = tmp_path / "q.mp4"
    rendered = cli(
        "render", "--prompt", "a lamp", "--model", "tiny-fp8", "--out", str(out), "--json", models_dir=models
    )
    assert rendered.returncode == 0, rendered.stderr and out.is_file()


def test_report_lists_models_and_passes_the_network_self_test(cli, models, tmp_path):
    out = tmp_path / "sovereignty.md"
    r = cli("report", "--out", str(out), "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    data = r.json
    assert data["self_test"]["ok"] is True and data["self_test"]["attempts"] == [] and data["self_test"]["frames"] == 17
    model = next(m for m in data["models"] if m["name"] == "aiprod-tiny-ltx2")
    assert {m["name"] for m in data["models"]} == {"aiprod-tiny-ltx2", "aiprod-tiny-clip"}
    assert model["name"] == "aiprod-tiny-ltx2" and model["license"] == "Apache-2.0" and model["last_check"] == "ok"
    assert data["offline"]["environment_ok"] is True and data["offline"]["environment"]["HF_HUB_OFFLINE"] == "1"
    names = {d["name"].lower(): d for d in data["dependencies"]}
    assert names["torch"]["version"] == "2.14.1" and names["diffusers"]["license"] != ""
    text = out.read_text()
    assert text.startswith("# AIPROD Studio sovereignty report")
    assert "PASSED" in text and "| aiprod-tiny-ltx2 | pipeline/ltx2 |" in text and "| torch | 2.14.1 |" in text
    assert json.loads(json.dumps(data))  # serialisable as is
