"""The vault manifest: hashes, checksums file, quick check, safetensors-by-content."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess

import pytest

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.vault.manifest import check_safetensors, entry_digest
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.transfer import import_path


def make_entry(root, name="demo"):
    import numpy as np
    from safetensors.numpy import save_file

    folder = root / "pipelines" / name
    (folder / "unet").mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text('{"_class_name": "X"}')
    save_file({"w": np.arange(6, dtype=np.float32)}, str(folder / "unet" / "w.safetensors"))
    return Vault(root).record(name, "pipeline", "ltx2", f"pipelines/{name}", license="MIT")


def test_record_writes_manifest_and_checksums(tmp_path):
    entry = make_entry(tmp_path)
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    [e] = manifest["entries"]
    assert e["name"] == "demo" and e["kind"] == "pipeline" and e["license"] == "MIT"
    data = (tmp_path / "pipelines/demo/unet/w.safetensors").read_bytes()
    assert e["files"]["unet/w.safetensors"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert entry.digest == entry_digest(entry.files)
    lines = (tmp_path / "CHECKSUMS.sha256").read_text().splitlines()
    assert f"{hashlib.sha256(data).hexdigest()}  pipelines/demo/unet/w.safetensors" in lines


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils sha256sum")
def test_sha256sum_verifies_the_vault_without_the_studio(tmp_path):
    make_entry(tmp_path, "a")
    make_entry(tmp_path, "b")
    ok = subprocess.run(["sha256sum", "-c", "CHECKSUMS.sha256"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "pipelines/a/model_index.json").write_text('{"_class_name": "Y"}')
    bad = subprocess.run(["sha256sum", "-c", "CHECKSUMS.sha256"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode != 0 and "pipelines/a/model_index.json: FAILED" in bad.stdout


def test_quick_check_names_missing_and_resized_files(tmp_path):
    entry = make_entry(tmp_path)
    vault = Vault(tmp_path)
    assert vault.quick_check(entry) == []
    (tmp_path / "pipelines/demo/model_index.json").write_text('{"_class_name": "Longer name"}')
    (tmp_path / "pipelines/demo/unet/w.safetensors").unlink()
    problems = vault.quick_check(entry)
    assert any("missing file pipelines/demo/unet/w.safetensors" in p for p in problems)
    assert any("size mismatch pipelines/demo/model_index.json" in p for p in problems)
    with pytest.raises(IntegrityError, match="unet/w.safetensors"):
        vault.require_ok(entry)


def test_get_unknown_model_names_it_and_the_known_ones(tmp_path):
    make_entry(tmp_path)
    with pytest.raises(BadInput) as info:
        Vault(tmp_path).get("nope")
    assert info.value.field == "model" and "'nope'" in str(info.value) and "demo" in str(info.value)


def test_pickle_renamed_safetensors_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    fake = tmp_path / "evil.safetensors"
    fake.write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(IntegrityError, match="not a safetensors file"):
        check_safetensors(fake)
    folder = tmp_path / "loras"
    folder.mkdir()
    shutil.copy(fake, folder / "evil.safetensors")
    with pytest.raises(IntegrityError):
        Vault(tmp_path).record("evil", "lora", "ltx2", "loras/evil.safetensors")
    assert not (tmp_path / "MANIFEST.json").exists()


def test_offsets_outside_the_file_are_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    f = tmp_path / "short.safetensors"
    f.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 8)
    with pytest.raises(IntegrityError, match="outside the file"):
        check_safetensors(f)


def test_non_safetensors_weights_are_refused(tmp_path):
    folder = tmp_path / "pipelines" / "x"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(IntegrityError, match="only safetensors"):
        Vault(tmp_path).record("x", "pipeline", "ltx2", "pipelines/x")


def test_rerecording_replaces_the_entry(tmp_path):
    make_entry(tmp_path)
    make_entry(tmp_path)
    assert [e.name for e in Vault(tmp_path).entries()] == ["demo"]


def test_import_folder_copies_hashes_and_records(tmp_path):
    src_root = tmp_path / "src"
    make_entry(src_root, "downloaded")
    folder = src_root / "pipelines" / "downloaded"
    vault = Vault(tmp_path / "vault")
    entry = import_path(vault, folder, "ltx2-real", license="LTX-2 Community License")
    assert (tmp_path / "vault/pipelines/ltx2-real/unet/w.safetensors").read_bytes() == (
        folder / "unet/w.safetensors"
    ).read_bytes()
    assert entry.license == "LTX-2 Community License" and set(entry.files) == {"model_index.json", "unet/w.safetensors"}
    assert vault.quick_check(vault.get("ltx2-real")) == []
    with pytest.raises(BadInput, match="already an entry"):
        import_path(vault, folder, "ltx2-real")


def test_import_refuses_unsafe_weights_and_leaves_no_half_entry(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "model_index.json").write_text("{}")
    (folder / "weights.safetensors").write_bytes(pickle.dumps([1, 2, 3]))
    vault = Vault(tmp_path / "vault")
    with pytest.raises(IntegrityError):
        import_path(vault, folder, "bad")
    assert vault.entries() == []
    pipelines = tmp_path / "vault" / "pipelines"
    assert not pipelines.exists() or list(pipelines.iterdir()) == []


def test_import_needs_a_pipeline_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInput, match="no model_index.json"):
        import_path(Vault(tmp_path / "vault"), tmp_path / "empty", "x")
    with pytest.raises(BadInput, match="does not exist"):
        import_path(Vault(tmp_path / "vault"), tmp_path / "nope", "x")


def test_pickles_and_torch_archives_are_refused_whatever_their_name(tmp_path):
    folder = tmp_path / "pipelines" / "x"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "weights.dat").write_bytes(pickle.dumps({"w": [1, 2, 3]}, protocol=4))
    with pytest.raises(IntegrityError, match="looks like a pickle"):
        Vault(tmp_path).record("x", "pipeline", "ltx2", "pipelines/x")
    (folder / "weights.dat").write_bytes(b"PK\x03\x04" + b"\0" * 60)  # torch.save's zip container
    with pytest.raises(IntegrityError, match="looks like a pickle"):
        Vault(tmp_path).record("x", "pipeline", "ltx2", "pipelines/x")
    (folder / "weights.dat").write_text("plain text is fine")
    assert Vault(tmp_path).record("x", "pipeline", "ltx2", "pipelines/x").files["weights.dat"].size == 18


def test_the_engine_check_writes_the_state_only_when_something_changed(tmp_path):
    entry = make_entry(tmp_path)
    vault = Vault(tmp_path)
    vault.require_ok(entry)
    before = vault.state_path.stat().st_mtime_ns
    for _ in range(3):
        vault.require_ok(entry)
    assert vault.state_path.stat().st_mtime_ns == before
