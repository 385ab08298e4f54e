"""Vault verify: quick (stat cache) and deep (threads, progress, cancel), every problem kind."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.vault.folder import load_state
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.verify import last_results, verify


def make_vault(root, names=("a",), size=1000):
    vault = Vault(root)
    for name in names:
        folder = root / "pipelines" / name
        (folder / "transformer").mkdir(parents=True)
        (folder / "model_index.json").write_text('{"_class_name": "LTX2Pipeline"}')
        save_file({"w": np.arange(size, dtype=np.float32)}, str(folder / "transformer" / "w.safetensors"))
        vault.record(name, "pipeline", "ltx2", f"pipelines/{name}")
    return vault


def flip_byte(path, offset=-10):
    """Change one byte in place, keeping size (and then the mtime, to beat the stat cache)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def kinds(report):
    return sorted((p.kind, p.path) for e in report.entries for p in e.problems)


def test_healthy_vault_is_ok_quick_and_deep(tmp_path):
    vault = make_vault(tmp_path, ("a", "b"))
    quick = verify(vault)
    assert quick.ok and quick.mode == "quick" and quick.hashed_bytes == 0  # all served by the stat cache
    deep = verify(vault, deep=True)
    assert deep.ok and deep.hashed_bytes == sum(e.total_size for e in vault.entries())
    assert {n: r["status"] for n, r in last_results(vault).items()} == {"a": "ok", "b": "ok"}
    assert last_results(vault)["a"]["mode"] == "deep"


def test_flipped_byte_is_caught_by_deep_and_then_remembered_by_quick(tmp_path):
    vault = make_vault(tmp_path)
    w = tmp_path / "pipelines/a/transformer/w.safetensors"
    os.utime(w, ns=(0, 0))
    vault.record("a", "pipeline", "ltx2", "pipelines/a")  # cache keyed on the restored stat
    st = w.stat()
    data = bytearray(w.read_bytes())
    data[-10] ^= 0xFF
    w.write_bytes(bytes(data))
    # a tamperer restoring mtime still moves ctime: quick re-hashes the file and finds it
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    quick = verify(vault)
    assert kinds(quick) == [("hash", "pipelines/a/transformer/w.safetensors")]
    deep = verify(vault, deep=True)
    assert kinds(deep) == [("hash", "pipelines/a/transformer/w.safetensors")]
    assert "pipelines/a/transformer/w.safetensors" in deep.failures()[0]
    # the bad hash is remembered against the stat key: quick keeps failing without re-hashing
    again = verify(vault)
    assert kinds(again) == [("hash", "pipelines/a/transformer/w.safetensors")] and again.hashed_bytes == 0
    assert last_results(vault)["a"]["status"] == "failed"
    with pytest.raises(IntegrityError, match="hash mismatch pipelines/a/transformer/w.safetensors"):
        vault.require_ok(vault.get("a"))


def test_quick_rehashes_only_changed_files(tmp_path):
    vault = make_vault(tmp_path, ("a", "b"))
    (tmp_path / "pipelines/b/model_index.json").write_text('{"_class_name": "LTX2Pipeline"}')  # same bytes, new mtime
    report = verify(vault)
    assert report.ok
    assert {e.name: e.hashed_files for e in report.entries} == {"a": 0, "b": 1}
    assert verify(vault).hashed_bytes == 0  # learned


def test_each_problem_kind_is_reported(tmp_path):
    vault = make_vault(tmp_path, ("trunc", "gone", "extra", "link"))
    w = "transformer/w.safetensors"
    with open(tmp_path / "pipelines/trunc" / w, "r+b") as f:
        f.truncate(100)
    (tmp_path / "pipelines/gone" / w).unlink()
    (tmp_path / "pipelines/extra/notes.txt").write_text("hello")
    os.symlink("/etc", tmp_path / "pipelines/link/etc")
    (tmp_path / "pipelines/stray").mkdir()
    report = verify(vault, deep=True)
    assert not report.ok
    assert kinds(report) == [
        ("extra", "pipelines/extra/notes.txt"),
        ("missing", "pipelines/gone/" + w),
        ("size", "pipelines/trunc/" + w),
        ("symlink", "pipelines/link/etc"),
    ]
    link = next(p for e in report.entries for p in e.problems if p.kind == "symlink")
    assert "leaves the vault" in link.detail and "/etc" in link.detail
    assert [(p.kind, p.path) for p in report.unrecorded] == [("extra", "pipelines/stray")]
    assert verify(vault, ["extra"]).unrecorded == []  # only a whole-vault check lists strays
    assert {n: r["status"] for n, r in last_results(vault).items()} == {
        "extra": "failed",
        "gone": "failed",
        "link": "failed",
        "trunc": "failed",
    }


def test_pickle_swapped_in_is_reported_unsafe_and_never_unpickled(tmp_path):
    import pickle

    vault = make_vault(tmp_path)
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    w = tmp_path / "pipelines/a/transformer/w.safetensors"
    payload = pickle.dumps(Boom())
    w.write_bytes(payload + b"\0" * (w.stat().st_size - len(payload)))  # same size: only content tells
    for deep in (False, True):
        report = verify(vault, deep=deep)
        [problem] = report.entries[0].problems
        assert (problem.kind, problem.path) == ("unsafe", "pipelines/a/transformer/w.safetensors")
        assert "not a safetensors file" in problem.detail
    assert not marker.exists()


def test_progress_is_reported_and_cancel_stops(tmp_path):
    vault = make_vault(tmp_path, ("a", "b", "c"), size=300_000)
    seen = []
    verify(vault, deep=True, threads=2, progress=seen.append, progress_every=0.0)
    assert seen and seen[-1].done_bytes == seen[-1].total_bytes == sum(e.total_size for e in vault.entries())
    assert seen[-1].files_done == seen[-1].files_total == 6 and seen[-1].bytes_per_s > 0
    before = load_state(vault)["entries"]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        verify(vault, deep=True, cancel=cancel)
    assert load_state(vault)["entries"] == before  # a cancelled check records no verdict


def test_unknown_name_is_bad_input(tmp_path):
    vault = make_vault(tmp_path)
    with pytest.raises(BadInput) as info:
        verify(vault, ["nope"])
    assert info.value.field == "name" and "'nope'" in str(info.value)


def test_manifest_paths_cannot_leave_the_vault(tmp_path):
    vault = make_vault(tmp_path)
    text = vault.manifest_path.read_text().replace('"path": "pipelines/a"', '"path": "../../etc"')
    vault.manifest_path.write_text(text)
    with pytest.raises(IntegrityError, match="not a plain relative path"):
        verify(vault)


def test_leftovers_of_killed_imports_are_reported_as_staging(tmp_path):
    vault = make_vault(tmp_path / "vault")
    pipelines, loras = tmp_path / "vault/pipelines", tmp_path / "vault/loras"
    (pipelines / ".half.importing/transformer").mkdir(parents=True)
    (pipelines / ".half.importing/transformer/w.safetensors").write_bytes(b"\0" * 100)
    (pipelines / ".half.import.lock").touch()  # its import is dead: nobody holds the lock
    loras.mkdir()
    (loras / ".style.safetensors.import.json").write_text("{}")
    (loras / ".gone.safetensors.import.lock").touch()
    (pipelines / ".live.importing").mkdir()  # an import running right now holds its lock
    with open(pipelines / ".live.import.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for deep in (False, True):
            report = verify(vault, deep=deep)
            assert not report.ok and report.entries[0].ok
            assert [(p.kind, p.path) for p in report.unrecorded] == [
                ("staging", "loras/.gone.safetensors.import.lock"),
                ("staging", "loras/.style.safetensors.import.json"),
                ("staging", "pipelines/.half.importing"),
            ]
        assert "100 bytes" in report.unrecorded[2].detail and "re-running the import" in report.unrecorded[2].detail
        assert str(report.unrecorded[2]).startswith("import leftover pipelines/.half.importing: partial copy")
        assert verify(vault, ["a"]).ok  # as with stray folders, only a whole-vault check lists them
        env = {**os.environ, "AIPROD_MODELS_DIR": str(tmp_path / "vault"), "AIPROD_DATA_DIR": str(tmp_path / "data")}
        root = Path(__file__).resolve().parent.parent
        proc = subprocess.run(
            [sys.executable, "-m", "aiprod_studio", "vault", "verify", "--json"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert proc.returncode == 3 and out["ok"] is False and out["entries"][0]["status"] == "ok"
        assert [(p["kind"], p["file"]) for p in out["unrecorded"]] == [(p.kind, p.path) for p in report.unrecorded]
        text = subprocess.run(
            [sys.executable, "-m", "aiprod_studio", "vault", "verify"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert text.returncode == 3 and "FAILED  import leftover pipelines/.half.importing: partial copy" in text.stdout
        assert ".live" not in text.stdout and "3 problems" in text.stdout
