"""Import (copy, hard-link, bundles) and export of vault entries; nothing half-done survives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import numpy as np
import pytest
from safetensors.numpy import save_file

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.transfer import export_bundle, import_path
from aiprod_studio.vault.verify import verify


def pipeline_folder(root, name="dl", size=1000):
    folder = root / name
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "LTX2Pipeline"}')
    save_file({"w": np.arange(size, dtype=np.float32)}, str(folder / "transformer" / "w.safetensors"))
    return folder


def lora_file(root, name="style.safetensors"):
    root.mkdir(parents=True, exist_ok=True)
    save_file({"lora_A.weight": np.ones((4, 8), dtype=np.float32)}, str(root / name))
    return root / name


def leftovers(vault_root):
    return sorted(
        p.name
        for p in vault_root.rglob(".*")
        if p.name.endswith((".importing", ".exporting", ".import.json", ".import.lock"))
    )


def test_import_copies_with_progress_and_seeds_the_quick_check(tmp_path):
    src = pipeline_folder(tmp_path / "src", size=400_000)
    vault = Vault(tmp_path / "vault")
    seen = []
    entry = import_path(vault, src, "real", license="Apache-2.0", progress=seen.append)
    assert seen[-1].done_bytes == seen[-1].total_bytes == entry.total_size and seen[-1].files_done == 2
    copied = tmp_path / "vault/pipelines/real/transformer/w.safetensors"
    assert copied.read_bytes() == (src / "transformer/w.safetensors").read_bytes()
    assert os.stat(copied).st_ino != os.stat(src / "transformer/w.safetensors").st_ino
    report = verify(vault)
    assert report.ok and report.hashed_bytes == 0  # hashes taken while copying feed the stat cache


def test_link_import_shares_the_bytes_and_verify_sees_edits_of_the_source(tmp_path):
    src = pipeline_folder(tmp_path / "src")
    vault = Vault(tmp_path / "vault")
    import_path(vault, src, "linked", link=True)
    linked = tmp_path / "vault/pipelines/linked/transformer/w.safetensors"
    assert os.stat(linked).st_ino == os.stat(src / "transformer/w.safetensors").st_ino
    assert verify(vault, deep=True).ok
    with open(src / "transformer/w.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\xff\xff\xff\xff")
    report = verify(vault)
    assert [(p.kind, p.path) for p in report.entries[0].problems] == [
        ("hash", "pipelines/linked/transformer/w.safetensors")
    ]


def test_single_lora_file_import_and_checksums_path(tmp_path):
    f = lora_file(tmp_path / "src")
    vault = Vault(tmp_path / "vault")
    entry = import_path(vault, f, "style", kind="lora")
    assert verify(vault).hashed_bytes == 0  # the quick check knows the imported file: nothing to re-hash
    assert entry.path == "loras/style.safetensors" and list(entry.files) == ["style.safetensors"]
    assert (tmp_path / "vault/loras/style.safetensors").is_file()
    line = (tmp_path / "vault/CHECKSUMS.sha256").read_text().strip()
    assert line.endswith("  loras/style.safetensors")
    assert verify(vault, deep=True).ok
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "CHECKSUMS.sha256"], cwd=tmp_path / "vault", check=True, capture_output=True)


def test_interrupted_import_leaves_nothing(tmp_path):
    src = pipeline_folder(tmp_path / "src", size=2_000_000)
    vault = Vault(tmp_path / "vault")

    def interrupt(progress):
        if progress.done_bytes > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_path(vault, src, "half", progress=interrupt)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        import_path(vault, src, "half", cancel=cancel)
    assert vault.entries() == [] and not (tmp_path / "vault/pipelines/half").exists()
    assert leftovers(tmp_path / "vault") == []
    # a later import under the same name works, and clears a stale temp folder from a killed run
    (tmp_path / "vault/pipelines/.half.importing").mkdir()
    import_path(vault, src, "half")
    assert [e.name for e in vault.entries()] == ["half"] and leftovers(tmp_path / "vault") == []


def test_import_whose_record_fails_leaves_nothing(tmp_path, monkeypatch):
    src = pipeline_folder(tmp_path / "src")
    vault = Vault(tmp_path / "vault")
    with pytest.raises(BadInput, match="bogus"):  # a bad field is refused before a byte is copied
        import_path(vault, src, "late", bogus=1)
    assert leftovers(tmp_path / "vault") == [] and not (tmp_path / "vault/pipelines/late").exists()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Vault, "record", disk_full)  # fails after the copy is renamed into place
    with pytest.raises(OSError, match="No space left"):
        import_path(vault, src, "late")
    assert not (tmp_path / "vault/pipelines/late").exists() and leftovers(tmp_path / "vault") == []
    monkeypatch.undo()
    assert vault.entries() == [] and verify(vault).ok
    assert import_path(vault, src, "late").name == "late" and leftovers(tmp_path / "vault") == []


def test_bad_names_and_paths(tmp_path):
    src = pipeline_folder(tmp_path / "src")
    vault = Vault(tmp_path / "vault")
    for name in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(BadInput) as info:
            import_path(vault, src, name)
        assert info.value.field == "name"
    with pytest.raises(BadInput, match="does not exist"):
        import_path(vault, tmp_path / "nope", "x")
    with pytest.raises(BadInput, match="no model_index.json"):
        import_path(vault, lora_file(tmp_path / "l"), "x")


def test_bundle_round_trip_verifies_and_keeps_provenance(tmp_path, tiny_vault):
    vault = Vault(tiny_vault)
    bundle = export_bundle(vault, "aiprod-tiny-ltx2", tmp_path / "usb")
    assert bundle == tmp_path / "usb/aiprod-tiny-ltx2" and leftovers(tmp_path / "usb") == []
    assert sorted(p.name for p in bundle.iterdir()) == ["CHECKSUMS.sha256", "MANIFEST.json", "README.txt", "files"]
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "-c", "CHECKSUMS.sha256"], cwd=bundle, check=True, capture_output=True)
    target = Vault(tmp_path / "other")
    entry = import_path(target, bundle)
    original = vault.get("aiprod-tiny-ltx2")
    assert entry.name == original.name and entry.digest == original.digest and entry.files == original.files
    assert entry.test_model and entry.defaults == original.defaults and entry.license == original.license
    assert verify(target, deep=True).ok
    renamed = import_path(target, bundle, "tiny-copy")
    assert renamed.digest == original.digest and renamed.path == "pipelines/tiny-copy"
    with pytest.raises(BadInput, match="already exists"):
        export_bundle(vault, "aiprod-tiny-ltx2", tmp_path / "usb")


def test_tampered_bundle_is_refused_before_anything_is_registered(tmp_path, tiny_vault):
    bundle = export_bundle(Vault(tiny_vault), "aiprod-tiny-ltx2", tmp_path / "usb")
    config = bundle / "files/transformer/config.json"
    config.write_text(config.read_text().replace("2", "3", 1))
    target = Vault(tmp_path / "other")
    with pytest.raises(IntegrityError, match="files/transformer/config.json"):
        import_path(target, bundle)
    assert target.entries() == [] and not (tmp_path / "other/pipelines/aiprod-tiny-ltx2").exists()
    assert leftovers(tmp_path / "other") == []


@pytest.mark.parametrize("attack", ["dotdot", "absolute", "symlink", "unlisted"])
def test_crafted_bundles_cannot_escape(tmp_path, attack):
    vault = Vault(tmp_path / "src-vault")
    import_path(vault, lora_file(tmp_path / "src"), "style", kind="lora")
    bundle = export_bundle(vault, "style", tmp_path / "usb")
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    entry = manifest["entries"][0]
    if attack == "dotdot":
        entry["path"] = "files/../../x"
    elif attack == "absolute":
        entry["files"] = {"/etc/passwd": entry["files"]["style.safetensors"]}
    elif attack == "symlink":
        os.symlink("/etc/passwd", bundle / "files" / "passwd")
    elif attack == "unlisted":
        (bundle / "files" / "extra.safetensors").write_bytes(b"\0" * 16)
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest))
    target = Vault(tmp_path / "vault")
    with pytest.raises(IntegrityError):
        import_path(target, bundle)
    assert target.entries() == [] and not (tmp_path / "vault" / "x").exists()


def test_export_of_a_damaged_entry_is_refused(tmp_path):
    vault = Vault(tmp_path / "vault")
    import_path(vault, pipeline_folder(tmp_path / "src"), "real")
    w = tmp_path / "vault/pipelines/real/transformer/w.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="damaged"):
        export_bundle(vault, "real", tmp_path / "usb")
    assert not (tmp_path / "usb/real").exists() and leftovers(tmp_path / "usb") == []
