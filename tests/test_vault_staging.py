"""Import staging: a killed import (SIGKILL mid-copy, or between its rename and its record) is
cleared or finished by recovery and by the next import; a running import is never touched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from aiprod_studio.errors import BadInput
from aiprod_studio.vault.manifest import sha256_file
from aiprod_studio.vault.staging import recover_staging
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.transfer import import_path
from aiprod_studio.vault.verify import verify

ROOT = Path(__file__).resolve().parent.parent

# `python -c` wrappers around the real CLI (`aiprod_studio.cli.main`), run from the repository root.
# This one stops the copy for good once 8 MB are written (mid-file for a 20 MB weights file), and says so.
STOP_MID_COPY = """
import sys, time
from pathlib import Path
import aiprod_studio.vault.transfer as transfer
real_add = transfer.Meter.add
def add(self, n):
    real_add(self, n)
    if self.done >= 8 * 1024 * 1024:
        Path(sys.argv[1]).write_text(str(self.done))
        time.sleep(3600)
transfer.Meter.add = add
from aiprod_studio.cli import main
sys.exit(main(sys.argv[2:]))
"""
# This one dies (as abruptly as a kill) when the import is about to write the manifest.
DIE_BEFORE_RECORD = """
import os, sys
from aiprod_studio.vault.store import Vault
Vault.record = lambda *args, **kwargs: os._exit(9)
from aiprod_studio.cli import main
sys.exit(main(sys.argv[1:]))
"""


def pipeline_folder(root, size):
    folder = root / "src"
    (folder / "transformer").mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "LTX2Pipeline"}')
    save_file({"w": np.arange(size, dtype=np.float32)}, str(folder / "transformer" / "w.safetensors"))
    return folder


def cli(vault_root, *args, script=None, extra=(), **popen):
    """The CLI in a subprocess (optionally through a wrapper script), against `vault_root`."""
    env = {**os.environ, "AIPROD_MODELS_DIR": str(vault_root), "AIPROD_DATA_DIR": str(vault_root.parent / "data")}
    cmd = [sys.executable, "-m", "aiprod_studio"] if script is None else [sys.executable, "-c", script, *extra]
    return cmd + list(args), dict(env=env, cwd=ROOT, **popen)


def run(vault_root, *args, script=None):
    cmd, kw = cli(vault_root, *args, script=script)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    return proc.returncode, (json.loads(proc.stdout.strip().splitlines()[-1]) if "--json" in args else proc.stderr)


def start_stopped_import(tmp_path, vault_root, src, name):
    """A real `vault import` subprocess, stopped mid-copy (alive, holding its lock)."""
    marker = tmp_path / f"{name}.copying"
    cmd, kw = cli(vault_root, "vault", "import", str(src), "--name", name, script=STOP_MID_COPY, extra=(str(marker),))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"the import ended before the copy stopped: {proc.communicate()}")
        assert time.monotonic() < deadline, "the import never started copying"
        time.sleep(0.02)
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("how", ["recover", "reimport"])
def test_import_killed_mid_copy_is_cleared_and_the_reimport_verifies(tmp_path, how):
    src = pipeline_folder(tmp_path, size=5_000_000)  # 20 MB: the copy is stopped after its first 8 MB
    vault_root = tmp_path / "vault"
    kill(start_stopped_import(tmp_path, vault_root, src, "big"))
    staged = vault_root / "pipelines/.big.importing/transformer/w.safetensors"
    assert 0 < staged.stat().st_size < (src / "transformer/w.safetensors").stat().st_size  # killed mid-copy
    vault = Vault(vault_root)
    assert vault.entries() == [] and not (vault_root / "pipelines/big").exists()
    # verify names the leftover (exit 3, JSON under "unrecorded", kind "staging")
    code, out = run(vault_root, "vault", "verify", "--json")
    assert code == 3 and out["ok"] is False
    [problem] = out["unrecorded"]
    assert (problem["kind"], problem["file"]) == ("staging", "pipelines/.big.importing")
    assert "interrupted import" in problem["detail"] and "starting the studio" in problem["detail"]
    if how == "recover":
        report = recover_staging(vault)
        assert report.removed == ["pipelines/.big.importing", "pipelines/.big.import.lock"] and report.busy == []
        assert hidden(vault_root / "pipelines") == [] and verify(vault).ok
        assert recover_staging(vault).to_json() == {
            "removed": [],
            "finished": [],
            "rolled_back": [],
            "busy": [],
            "errors": [],
        }  # idempotent
    code, out = run(vault_root, "vault", "import", str(src), "--name", "big", "--json")
    assert code == 0 and out["name"] == "big", out
    assert hidden(vault_root / "pipelines") == []
    code, out = run(vault_root, "vault", "verify", "--deep", "--json")
    assert code == 0 and out["ok"] and out["unrecorded"] == [] and out["entries"][0]["status"] == "ok"
    assert vault.get("big").files["transformer/w.safetensors"].sha256 == sha256_file(src / "transformer/w.safetensors")


def test_a_running_import_is_never_touched(tmp_path):
    src = pipeline_folder(tmp_path, size=5_000_000)
    vault_root = tmp_path / "vault"
    vault = Vault(vault_root)
    proc = start_stopped_import(tmp_path, vault_root, src, "busy")
    try:
        staged = vault_root / "pipelines/.busy.importing/transformer/w.safetensors"
        size = staged.stat().st_size
        report = recover_staging(vault)
        assert report.busy == ["pipelines/busy"] and report.removed == []
        assert staged.stat().st_size == size and (vault_root / "pipelines/.busy.import.lock").exists()
        assert verify(vault).ok  # work in progress, not a problem
        with pytest.raises(BadInput, match="already running"):  # and a second import of it waits, then refuses
            import_path(vault, src, "busy")
        assert staged.stat().st_size == size
    finally:
        kill(proc)
    assert [p.path for p in verify(vault).unrecorded] == ["pipelines/.busy.importing"]  # now it is a leftover
    assert recover_staging(vault).removed == ["pipelines/.busy.importing", "pipelines/.busy.import.lock"]


@pytest.mark.parametrize("how", ["reimport", "recover"])
def test_crash_between_rename_and_record_is_finished_from_the_journal(tmp_path, how):
    src = pipeline_folder(tmp_path, size=300_000)
    vault_root = tmp_path / "vault"
    vault = Vault(vault_root)
    code, _ = run(
        vault_root, "vault", "import", str(src), "--name", "gap", "--license", "MIT", script=DIE_BEFORE_RECORD
    )
    assert code == 9
    assert (vault_root / "pipelines/gap/transformer/w.safetensors").is_file() and vault.entries() == []
    assert hidden(vault_root / "pipelines") == [".gap.import.json", ".gap.import.lock"]
    code, out = run(vault_root, "vault", "verify", "--json")
    assert code == 3 and sorted((p["kind"], p["file"]) for p in out["unrecorded"]) == [
        ("extra", "pipelines/gap"),
        ("staging", "pipelines/.gap.import.json"),
    ]
    if how == "reimport":  # the same command again just works, without copying again
        code, out = run(vault_root, "vault", "import", str(src), "--name", "gap", "--license", "MIT", "--json")
        assert code == 0 and out["name"] == "gap" and out["license"] == "MIT", out
    else:
        report = recover_staging(vault)
        assert report.finished == ["gap"] and report.rolled_back == []
        assert report.removed == ["pipelines/.gap.import.json", "pipelines/.gap.import.lock"]
    assert hidden(vault_root / "pipelines") == []
    entry = vault.get("gap")
    assert entry.license == "MIT" and set(entry.files) == {"model_index.json", "transformer/w.safetensors"}
    assert entry.files["transformer/w.safetensors"].sha256 == sha256_file(src / "transformer/w.safetensors")
    code, out = run(vault_root, "vault", "verify", "--deep", "--json")
    assert code == 0 and out["ok"] and out["unrecorded"] == []
    if how == "reimport":
        with pytest.raises(BadInput, match="already an entry"):  # a finished import is not done twice
            import_path(vault, src, "gap", license="MIT")


def test_a_journal_that_no_longer_matches_its_target_is_rolled_back(tmp_path):
    src = pipeline_folder(tmp_path, size=300_000)
    vault_root = tmp_path / "vault"
    vault = Vault(vault_root)
    code, _ = run(vault_root, "vault", "import", str(src), "--name", "gap", script=DIE_BEFORE_RECORD)
    assert code == 9
    with open(vault_root / "pipelines/gap/transformer/w.safetensors", "r+b") as f:
        f.truncate(1000)
    report = recover_staging(vault)
    assert report.finished == [] and report.rolled_back == ["pipelines/gap"]
    assert not (vault_root / "pipelines/gap").exists() and hidden(vault_root / "pipelines") == []
    assert vault.entries() == [] and verify(vault).ok
    assert import_path(vault, src, "gap").name == "gap" and verify(vault, deep=True).ok


def test_a_journal_whose_copy_was_never_renamed_goes_with_its_copy(tmp_path):
    src = pipeline_folder(tmp_path, size=300_000)
    vault_root = tmp_path / "vault"
    vault = Vault(vault_root)
    code, _ = run(vault_root, "vault", "import", str(src), "--name", "gap", script=DIE_BEFORE_RECORD)
    assert code == 9
    os.rename(vault_root / "pipelines/gap", vault_root / "pipelines/.gap.importing")  # as if killed before it
    (vault_root / "pipelines/gap").mkdir()  # and then something else took the name: not ours to delete
    report = recover_staging(vault)
    assert report.removed == ["pipelines/.gap.importing", "pipelines/.gap.import.json", "pipelines/.gap.import.lock"]
    assert report.finished == report.rolled_back == []
    assert (vault_root / "pipelines/gap").is_dir() and hidden(vault_root / "pipelines") == []


def test_a_target_without_a_journal_is_left_alone_and_still_reported(tmp_path):
    src = pipeline_folder(tmp_path, size=300_000)
    vault_root = tmp_path / "vault"
    vault = Vault(vault_root)
    code, _ = run(vault_root, "vault", "import", str(src), "--name", "gap", script=DIE_BEFORE_RECORD)
    assert code == 9
    (vault_root / "pipelines/.gap.import.json").unlink()  # a folder the user put there looks like this
    report = recover_staging(vault)
    assert report.finished == report.rolled_back == [] and report.removed == ["pipelines/.gap.import.lock"]
    assert (vault_root / "pipelines/gap/transformer/w.safetensors").is_file()
    assert [(p.kind, p.path) for p in verify(vault).unrecorded] == [("extra", "pipelines/gap")]
    with pytest.raises(BadInput, match="already exists but is not in the manifest"):
        import_path(vault, src, "gap")
    assert (vault_root / "pipelines/gap/transformer/w.safetensors").is_file()


def test_a_journal_left_after_the_record_is_only_removed(tmp_path, monkeypatch):
    import aiprod_studio.vault.transfer as transfer

    src = pipeline_folder(tmp_path, size=1000)
    vault = Vault(tmp_path / "vault")
    monkeypatch.setattr(transfer, "clear_journal", lambda target: None)  # as if killed right after the record
    entry = import_path(vault, src, "done")
    assert hidden(tmp_path / "vault/pipelines") == [".done.import.json"]
    assert [p.path for p in verify(vault).unrecorded] == ["pipelines/.done.import.json"]
    report = recover_staging(vault)
    assert report.removed == ["pipelines/.done.import.json"] and report.finished == report.rolled_back == []
    assert vault.get("done") == entry and verify(vault, deep=True).ok and hidden(tmp_path / "vault/pipelines") == []


def test_recovery_of_a_clean_or_missing_vault_does_nothing(tmp_path):
    assert not recover_staging(Vault(tmp_path / "none")).changed and not (tmp_path / "none").exists()
    vault = Vault(tmp_path / "vault")
    import_path(vault, pipeline_folder(tmp_path, size=1000), "a")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "vault").rglob("*"))
    assert not recover_staging(vault).changed
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "vault").rglob("*")) == before
